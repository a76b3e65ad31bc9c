"""Tables on a terminal, for the CLI's commands and the run summary alike: the output width
rule, a table that becomes lines when it does not fit, the metrics table, status labels."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from doteval._repository.manifest import EvaluationRecord
from doteval._repository.scores import coverage
from doteval._text import format_value

STATUS_LABELS = {
    "completed": "Completed",
    "failed": "Failed",
    "interrupted": "Interrupted",
    "running": "Running",
    "damaged": "Damaged",
}
STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "interrupted": "yellow",
    "running": "cyan",
    "damaged": "red",
}


def short_node_id(node_id: str) -> str:
    """``dir/eval_x.py::eval_a[p]`` → ``eval_x.py::eval_a[p]``, for narrow tables."""
    path, sep, rest = node_id.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


#: The width of output that goes to a file, another program or a CI log.
PIPED_WIDTH = 160


def output_width(terminal_width: int, is_terminal: bool) -> int:
    """The rule docs/reference/cli.md states: ``COLUMNS`` when set, else the
    terminal's width, else (piped) ``PIPED_WIDTH``."""
    try:
        return max(int(os.environ["COLUMNS"]), 1)
    except (KeyError, ValueError):
        return terminal_width if is_terminal else PIPED_WIDTH


def natural_width(renderable: Any) -> int:
    """How wide ``renderable`` is when nothing is wrapped."""
    return _MEASURE.measure(renderable, options=_MEASURE.options.update_width(_UNBOUNDED)).maximum


_UNBOUNDED = 100_000
_MEASURE = Console(file=io.StringIO(), width=_UNBOUNDED, no_color=True)


def fitted(table: Table, stacked: Callable[[], list[str]], width: int) -> RenderableType:
    """``table`` when it fits in ``width`` columns, else the same facts as lines.

    A table squeezed below its natural width folds or cuts its cells; lines
    wrap instead, so no character is ever lost on a narrow terminal.
    """
    if natural_width(table) <= width:
        return table
    return Group(*(Text(line) for line in stacked()))


def metrics_view(evaluations: Sequence[EvaluationRecord], width: int) -> RenderableType:
    """Each metric, its value and which samples it covers (errors are not scored)."""
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False, collapse_padding=True
    )
    table.add_column("Evaluation", no_wrap=True)
    table.add_column("Metric", no_wrap=True)
    table.add_column("Value", justify="right", no_wrap=True)
    table.add_column("Scored", no_wrap=True)
    rows = list(_metric_rows(evaluations))
    for first, ev, label, value, scored in rows:
        table.add_row(
            Text(short_node_id(ev.node_id) if first else ""),
            Text(label),
            value,
            scored,
            style="red" if ev.errors else None,
        )

    def stacked() -> list[str]:
        lines = []
        for first, ev, label, value, scored in rows:
            if first:
                lines.append(short_node_id(ev.node_id))
            lines.append(f"  {label}: {value} ({scored})")
        return lines

    return fitted(table, stacked, width)


def _metric_rows(
    evaluations: Sequence[EvaluationRecord],
) -> Iterator[tuple[bool, EvaluationRecord, str, str, str]]:
    for ev in evaluations:
        for i, m in enumerate(ev.metrics or [{"score": "", "metric": "", "value": None}]):
            label = f"{m['score']}.{m['metric']}" if m["score"] else "-"
            scored = coverage(m.get("n"), done=ev.done, errors=ev.errors, total=ev.total)
            yield i == 0, ev, label, format_value(m["value"]), scored


def render_lines(renderable: Any, *, width: int = 100, color: bool = False) -> list[str]:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, no_color=not color, highlight=False)
    console.print(renderable)
    return buf.getvalue().rstrip("\n").splitlines()
