"""Rendering with rich, shared by the CLI and the pytest plugin.

Only adapters import this module: the library reports through callbacks and
returns data; here it becomes progress bars, tables and lines.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from doteval.manifest import EvaluationRecord, Manifest
from doteval.text import format_value, percent

if TYPE_CHECKING:
    from doteval.runner import EvaluationOutcome, Plan

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


def metrics_table(evaluations: Sequence[EvaluationRecord]) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False, collapse_padding=True
    )
    table.add_column("Evaluation", overflow="fold")
    table.add_column("Metric", overflow="fold")
    table.add_column("Value", justify="right", no_wrap=True)
    table.add_column("Samples", justify="right", no_wrap=True)
    table.add_column("Errors", justify="right", no_wrap=True)
    for ev in evaluations:
        samples = f"{ev.done}/{ev.total}"
        rows = ev.metrics or [{"score": "", "metric": "", "value": None}]
        for i, m in enumerate(rows):
            label = f"{m['score']}.{m['metric']}" if m["score"] else "-"
            errors = str(ev.errors) if i == 0 else ""
            style = "red" if ev.errors and i == 0 else None
            table.add_row(
                short_node_id(ev.node_id) if i == 0 else "",
                label,
                format_value(m["value"]),
                samples if i == 0 else "",
                errors,
                style=style,
            )
    return table


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
    lines += render_lines(metrics_table(evals), width=width, color=color)
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
        lines.append(f"{errors} sample(s) errored; running the same command retries them: {command}")
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
