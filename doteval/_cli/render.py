"""Rendering with rich, shared by the CLI and the pytest plugin.

Only adapters import this module: the library reports through callbacks and
returns data; here it becomes progress bars, tables and lines.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from doteval._repository.manifest import EvaluationRecord, Manifest
from doteval._repository.scores import coverage
from doteval._text import format_value, percent

if TYPE_CHECKING:
    from doteval._running.experiment_run import EvaluationOutcome, Plan

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


def run_summary_lines(
    manifest: Manifest,
    *,
    outcomes: Sequence[EvaluationOutcome],
    command: str,
    width: int = 100,
    color: bool = False,
) -> list[str]:
    """The table and lines printed at the end of a run, about what this run touched."""
    ran = {o.node_id for o in outcomes}
    evals = [e for e in manifest.evaluations if e.node_id in ran] or manifest.evaluations
    lines = ["", "doteval summary"]
    lines += render_lines(metrics_view(evals, width), width=width, color=color)
    evaluated = sum(o.evaluated for o in outcomes)
    reused = sum(o.reused for o in outcomes)
    done = sum(e.done for e in evals)
    total = sum(e.total for e in evals)
    errors = sum(e.errors for e in evals)
    stopped = any(o.interrupted for o in outcomes)
    status = "interrupted" if stopped or done + errors < total else "failed" if errors else "completed"
    name = manifest.experiment
    lines.append(
        f"Experiment {name!r}: {STATUS_LABELS[status]}, {done}/{total} samples ({percent(done, total)}), "
        f"{errors} errors; this run evaluated {evaluated}, reused {reused}."
    )
    others = [e for e in manifest.evaluations if e.node_id not in ran]
    if others and manifest.status != status:
        lines.append(
            f"The experiment as a whole is {STATUS_LABELS.get(manifest.status, manifest.status)} "
            f"({len(others)} other evaluation(s)): `doteval show {name}`."
        )
    plain = without_option(command, "--shard")
    if manifest.shard and not stopped:
        lines.append(
            f"Shard {manifest.shard} is done. The other samples come from the other shards: "
            f"`doteval pull STORE` each of their stores into this one (or run without --shard: {plain})."
        )
    elif status == "interrupted":
        lines.append(f"Resume with: {command if stopped else without_option(command, '--samples')}")
    elif status == "failed":
        lines.append(
            f"{errors} sample(s) errored (`doteval show {name} --errors` lists them); "
            f"running the same command retries them: {command}"
        )
    return lines


def without_option(command: str, option: str) -> str:
    """``command`` without ``option`` and its value."""
    import shlex

    words = shlex.split(command)
    out = []
    skip = False
    for w in words:
        if skip:
            skip = False
        elif w == option:
            skip = True
        elif not w.startswith(option + "="):
            out.append(w)
    return shlex.join(out)


def plan_lines(plans: Sequence[Plan], command: str) -> list[str]:
    """What a dry run found, one block per evaluation."""
    lines = ["", "doteval dry run: nothing was evaluated"]
    for p in plans:
        lines.append(
            f"{short_node_id(p.node_id)}: {p.total} items: reuse {p.reuse}, evaluate {p.evaluate} "
            f"({p.new} new or changed, {p.retry} errors to retry)"
            + (f", {p.dropped} no longer in the dataset" if p.dropped else "")
        )
        for change in p.changed:
            lines.append(f"    {change}")
        if p.blocked:
            lines.append(
                "    the run would stop here: use a new --experiment name, or --rerun-changed "
                "to start a new line of results"
            )
    total = sum(p.evaluate for p in plans)
    if any(p.blocked for p in plans):
        lines.append(
            f"Would evaluate {total} sample(s) under --rerun-changed: {command} --rerun-changed "
            f"(or keep results apart with a new --experiment name)"
        )
    else:
        lines.append(f"Would evaluate {total} sample(s). Run it: {command}")
    return lines
