"""What a run prints at its end: the summary of what it touched, or what a dry run found."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from doteval._cli.console.tables import STATUS_LABELS, metrics_view, render_lines, short_node_id
from doteval._text import percent

if TYPE_CHECKING:  # types only: `doteval show` (without_option) need not import the run path
    from doteval._repository.manifest import Manifest
    from doteval._running.experiment_run import EvaluationOutcome, Plan


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
    source = next((o.reuse_from for o in outcomes if o.imported), None)
    from_history = reuse_words(sum(o.earlier for o in outcomes), sum(o.imported for o in outcomes), source)
    done = sum(e.done for e in evals)
    total = sum(e.total for e in evals)
    errors = sum(e.errors for e in evals)
    stopped = any(o.interrupted for o in outcomes)
    status = "interrupted" if stopped or done + errors < total else "failed" if errors else "completed"
    name = manifest.experiment
    lines.append(
        f"Experiment {name!r}: {STATUS_LABELS[status]}, {done}/{total} samples ({percent(done, total)}), "
        f"{errors} errors; this run evaluated {evaluated}, reused {reused}{from_history}."
    )
    calls = calls_line(manifest.call_counts) if evaluated else None  # else: an earlier run's
    if calls:
        lines.append(calls + ".")
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


def calls_line(counts: dict[str, int]) -> str | None:
    """``Model calls: N made, M from the cache; tokens: X spent, Y saved`` (None: no @cached call)."""
    if not counts:
        return None
    line = f"Model calls: {counts.get('made', 0)} made, {counts.get('cached', 0)} from the cache"
    spent, saved = counts.get("tokens_spent", 0), counts.get("tokens_saved", 0)
    return line + (f"; tokens: {spent} spent, {saved} saved" if spent or saved else "")


def reuse_words(earlier: int, imported: int, source: str | None = None) -> str:
    """``, reused N from earlier lines, reused M from another experiment``: what a run took from
    history (nothing when it took nothing)."""
    words = f", reused {earlier} from earlier lines" if earlier else ""
    if imported:
        words += f", reused {imported} from " + (f"experiment {source!r}" if source else "another experiment")
    return words


def without_option(command: str, option: str) -> str:
    """``command`` without ``option`` and its value."""
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
            f"{short_node_id(p.node_id)}: {p.total} items: reuse {p.reuse}"
            + (f" ({p.earlier} from earlier lines or --reuse-from)" if p.earlier else "")
            + f", evaluate {p.evaluate} "
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
