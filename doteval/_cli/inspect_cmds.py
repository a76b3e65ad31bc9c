"""Commands that look at experiments: list, show, log."""

from __future__ import annotations

import shlex
import time
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from doteval._cli.common import JsonOption, StoreOption, app, console, open_store, print_json
from doteval._cli.console.run_summary import calls_line, reuse_words, without_option
from doteval._cli.console.tables import STATUS_LABELS, STATUS_STYLES, fitted, metrics_view, short_node_id
from doteval._objects import Store
from doteval._operations.sample_lookup import errors_by_type, find_sample, sample_record, why
from doteval._repository.call_entries import calls_json
from doteval._repository.experiments import ExperimentInfo, iter_samples, list_experiments, open_experiment
from doteval._repository.history import Revision, duration, log, resolve
from doteval._repository.manifest import EvaluationRecord, Manifest
from doteval._repository.results import MESSAGE_ERROR, error_line, result_fields
from doteval._text import clip_text, format_duration, format_param, format_time, format_value, percent
from doteval.errors import ExperimentNotFoundError


def _label(status: str) -> str:
    return STATUS_LABELS.get(status, status.capitalize())


def _styled(status: str) -> str:
    style = STATUS_STYLES.get(status)
    return f"[{style}]{_label(status)}[/]" if style else _label(status)


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts)) if ts else None


@app.command("list")
def list_(
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Also list deleted experiments (until gc).")
    ] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """List experiments: status, samples done and when each was last updated."""
    st = open_store(store, reading=True)
    infos = list_experiments(st, include_deleted=deleted)
    if as_json:
        print_json({"store": str(st.root), "experiments": [_info_json(i) for i in infos]})
        return
    out = console()
    if not infos:
        out.print(f"No experiments in {escape(str(st.root))}.")
        return
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False, collapse_padding=True
    )
    table.add_column("Experiment", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Samples", justify="right", no_wrap=True)
    table.add_column("Errors", justify="right", no_wrap=True)
    table.add_column("Last updated", no_wrap=True)
    rows = []
    for info in infos:
        status = "deleted" if info.deleted else info.status
        damaged = bool(info.damage)
        rows.append(
            (
                info.name,
                status,
                "-" if damaged else f"{info.done}/{info.total} ({percent(info.done, info.total)})",
                "-" if damaged else str(info.errors),
                format_time(info.last_updated) if info.last_updated else "-",
            )
        )
        table.add_row(Text(info.name), _styled(status), *rows[-1][2:])

    def stacked() -> list[str]:
        return [
            f"{n}: {_label(st)}, {done} samples, {e} errors, updated {when}" for n, st, done, e, when in rows
        ]

    out.print(fitted(table, stacked, out.width))
    damaged_infos = [i for i in infos if i.damage]
    for info in damaged_infos:
        out.print(f"[red]{escape(info.name)}[/]: {escape(info.damage)}", soft_wrap=True)
    if damaged_infos:
        out.print("Run `doteval fsck` to list every damaged file.")


def _info_json(info: ExperimentInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "status": "deleted" if info.deleted else info.status,
        "done": info.done,
        "total": info.total,
        "errors": info.errors,
        "last_updated": _iso(info.last_updated),
        "id": info.manifest_id,
        "diverged": info.diverged,
        "deleted": info.deleted,
        "holder": info.holder,
        "live": None
        if info.live is None
        else {"ok": info.live.ok, "errors": info.live.errors, "total": info.live.total},
        "damage": info.damage or None,
    }


def _evaluation_json(ev: EvaluationRecord) -> dict[str, Any]:
    return {
        "node_id": ev.node_id,
        "status": ev.status,
        "total": ev.total,
        "done": ev.done,
        "errors": ev.errors,
        "metrics": ev.metrics,
        "fingerprint": ev.fingerprint,
        "params_digest": ev.params_digest,
        "params": ev.params,
        "unfingerprintable": ev.unfingerprintable,
        "columns": ev.columns,
        "line": ev.line,
        "last_run": ev.run,
    }


def _show_json(st: Store, info: ExperimentInfo, rev: Revision) -> dict[str, Any]:
    m = rev.manifest
    return {
        "name": rev.experiment,
        "id": rev.manifest_id,
        "head": rev.is_head,
        "status": info.status if rev.is_head else m.status,
        "done": m.done,
        "total": m.total,
        "errors": m.errors,
        "duration": duration(st, rev),
        "started": _iso(m.started),
        "last_updated": _iso(m.finished),
        "host": m.host,
        "git_commit": m.git_commit,
        "command": m.command,
        "holder": info.holder if rev.is_head else None,
        "diverged": info.diverged,
        "evaluations": [_evaluation_json(ev) for ev in m.evaluations],
        "calls": calls_json(m.call_counts),
    }


@app.command()
def show(
    name: Annotated[
        str, typer.Argument(help="Experiment, as NAME, NAME@REV (a manifest id prefix) or NAME~N.")
    ],
    full: Annotated[
        bool, typer.Option("--full", help="Also show every sample: scores, prompt, response, error.")
    ] = False,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only the errored samples, grouped by error type.")
    ] = False,
    sample: Annotated[
        str | None, typer.Option("--sample", metavar="KEY_PREFIX", help="One sample in full, by key prefix.")
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--why",
            help="With --sample: where its result came from (evaluated, or reused from an earlier line "
            "or another experiment) and which part of its key differs from the nearest earlier result.",
        ),
    ] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Show an experiment: status, progress, duration, its evaluations and metrics."""
    st = open_store(store, reading=True)
    try:
        rev = resolve(st, name)
    except ExperimentNotFoundError:
        info = open_experiment(st, name.split("@")[0].split("~")[0])  # a first run, still live
        print_json(_info_json(info)) if as_json else _print_live(info)
        return
    info = open_experiment(st, rev.experiment)
    if sample is not None:
        ref = find_sample(st, rev.manifest, sample)
        detail = sample_record(st, ref)
        if explain:
            detail["why"] = why(st, rev.experiment, rev.manifest_id, ref)
        print_json(detail) if as_json else _print_sample(detail)
        return
    if explain:
        raise typer.BadParameter("--why goes with --sample KEY_PREFIX", param_hint="--why")
    if errors:
        groups = errors_by_type(st, rev.manifest)
        if as_json:
            print_json({"name": rev.experiment, "id": rev.manifest_id, "errors": groups})
        else:
            _print_errors(rev, groups)
        return
    if as_json:
        doc = _show_json(st, info, rev)
        if full:
            doc["samples"] = [
                {"evaluation": s.evaluation, "key": s.key, "ok": s.ok, **_sample_fields(s.record, ev.columns)}
                for ev in rev.manifest.evaluations
                for s in iter_samples(st, ev)
            ]
        print_json(doc)
        return
    _print_show(st, info, rev)
    if full:
        for ev in rev.manifest.evaluations:
            console().print()
            console().print(_samples_table(st, ev))


def _sample_fields(record: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    # item: column -> value, as --sample and export
    return result_fields(record, columns, ("item", "prompt", "response", "scores", "error"))


def _print_live(info: ExperimentInfo) -> None:
    """A first run that has not been sealed yet: what its journal holds so far."""
    h = info.holder or {}
    out = console()
    for line in [
        f"Session: {info.name}",
        f"Status: {_label(info.status)}",
        f"Samples: {info.done}/{info.total} ({percent(info.done, info.total)})",
        f"Errors: {info.errors}",
        f"Last updated: {format_time(info.last_updated) if info.last_updated else '-'}",
        f"Running: pid {h.get('pid', '?')} on {h.get('host', '?')} since {h.get('since', '?')}"
        if info.holder
        else "Not sealed: the store could not be written (a full disk?); the next command that can write seals it",
    ]:
        out.print(escape(line), soft_wrap=True)


def _print_show(st: Store, info: ExperimentInfo, rev: Revision) -> None:
    m: Manifest = rev.manifest
    status = info.status if rev.is_head else m.status
    lines = [
        f"Session: {rev.experiment}",
        f"Status: {_label(status)}",
        f"Samples: {m.done}/{m.total} ({percent(m.done, m.total)})",
        f"Errors: {m.errors}",
        f"Duration: {format_duration(duration(st, rev))}",
        f"Last updated: {format_time(m.finished)}",
        f"Revision: {rev.manifest_id[:10]}" + ("" if rev.is_head else " (not the newest: see `doteval log`)"),
    ]
    calls = calls_line(m.call_counts)
    if calls:
        lines.append(calls)
    if m.git_commit:
        lines.append(f"Git commit: {m.git_commit[:12]}")
    if m.host:
        lines.append(f"Host: {m.host}")
    if rev.is_head and info.holder:
        h = info.holder
        lines.append(f"Running: pid {h.get('pid', '?')} on {h.get('host', '?')} since {h.get('since', '?')}")
        if info.live is not None:
            lines.append(
                f"This run so far: {info.live.ok + info.live.errors} evaluated, {info.live.errors} errors"
            )
    if rev.is_head and info.unsealed:
        lines.append(
            "Not sealed: its run died; shown from its journal, which the next run (or a command that writes) seals"
        )
    if info.diverged:
        lines.append(
            "Warning: this experiment has two heads (it moved in two stores); "
            + ("showing the newest" if rev.is_head else "showing the revision asked for")
            + f"; `doteval keep {rev.experiment}@REV` chooses one line"
        )
    out = console()
    for line in lines:
        out.print(escape(line), soft_wrap=True)
    out.print()
    out.print(_evaluations_view(m, out.width))
    out.print()
    out.print(metrics_view(m.evaluations, out.width))
    if status in ("interrupted", "failed") and m.command and rev.is_head:
        out.print()
        command = without_option(shlex.join(m.command), "--samples")
        if m.shard:
            out.print(
                f"This store holds shard runs ({m.shard}): `doteval pull STORE` the other shards' stores, "
                f"or finish here without --shard: {escape(without_option(command, '--shard'))}",
                soft_wrap=True,
            )
        else:
            out.print(escape(f"Resume with: {command}"), soft_wrap=True)


def _evaluations_view(m: Manifest, width: int) -> RenderableType:
    """Counts and code per evaluation; params below, as ``name: value`` lines,
    since a model's config is too wide for a table cell on most terminals."""
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False, collapse_padding=True
    )
    table.add_column("Evaluation", no_wrap=True)
    table.add_column("Samples", justify="right", no_wrap=True)
    table.add_column("Errors", justify="right", no_wrap=True)
    table.add_column("Code", no_wrap=True)
    for ev in m.evaluations:
        table.add_row(Text(short_node_id(ev.node_id)), f"{ev.done}/{ev.total}", str(ev.errors), _code(ev))

    def stacked() -> list[str]:
        return [
            f"{short_node_id(ev.node_id)}: {ev.done}/{ev.total} samples, {ev.errors} errors, code {_code(ev)}"
            for ev in m.evaluations
        ]

    params: list[Text] = []
    for ev in m.evaluations:
        lines = _param_lines(ev)
        if lines:
            params.append(Text(f"Params of {short_node_id(ev.node_id)}:"))
            params.extend(Text(f"  {line}") for line in lines)
    if not params:
        return fitted(table, stacked, width)
    return Group(fitted(table, stacked, width), Text(""), *params)


def _code(ev: EvaluationRecord) -> str:
    return ev.fingerprint[:10] + (f" (line {ev.line})" if ev.line > 1 else "")


def _param_lines(ev: EvaluationRecord) -> list[str]:
    lines = [f"{k}: {format_param(v)}" for k, v in sorted(ev.params.items())]
    if ev.unfingerprintable:
        lines.append("not fingerprinted: " + ", ".join(ev.unfingerprintable))
    return lines


def _samples_table(st: Store, ev: EvaluationRecord) -> Table:
    table = Table(title=escape(ev.node_id), show_lines=True, header_style="bold", title_justify="left")
    table.add_column("Sample", no_wrap=True)
    table.add_column("Scores", overflow="fold")
    table.add_column("Prompt", overflow="fold")
    table.add_column("Response", overflow="fold")
    table.add_column("Error", overflow="fold")
    for s in iter_samples(st, ev):
        f = result_fields(s.record, fields=("item", "prompt", "response", "scores", "error"))
        scores = ", ".join(f"{name}={format_value(value)}" for name, value in f["scores"].items())
        error = error_line(f["error"]) if f["error"] else ""
        table.add_row(
            s.key[:12],
            escape(clip_text(scores)),
            escape(clip_text(_text(f["prompt"] if f["prompt"] is not None else f["item"]))),
            escape(clip_text(_text(f["response"]))),
            f"[red]{escape(clip_text(error))}[/]" if error else "",
        )
    return table


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


def _print_errors(rev: Revision, groups: dict[str, list[dict[str, Any]]]) -> None:
    out = console()
    total = sum(len(v) for v in groups.values())
    if not total:
        out.print(f"No errored samples in {escape(rev.label)}.")
        return
    out.print(f"{total} errored sample(s) in {escape(rev.label)}:")
    for kind, samples in groups.items():
        out.print()
        out.print(f"[bold red]{escape(kind or MESSAGE_ERROR)}[/] ({len(samples)})")
        for s in samples:
            out.print(
                f"  {s['key'][:12]}  {escape(short_node_id(s['evaluation']))}  {escape(s['message'])}",
                soft_wrap=True,
            )


def _print_sample(d: dict[str, Any]) -> None:
    out = console()
    out.print(f"Sample: {d['key']}")
    out.print(f"Evaluation: {escape(d['evaluation'])}")
    out.print(f"Status: {'ok' if d['ok'] else '[red]error[/]'}")
    for col, value in d["item"].items():
        out.print(f"Item {escape(col)}: {escape(_text(value))}", soft_wrap=True)
    out.print(f"Prompt: {escape(_text(d['prompt']))}", soft_wrap=True)
    out.print(f"Response: {escape(_text(d['response']))}", soft_wrap=True)
    for k, v in d["scores"].items():
        out.print(f"Score {escape(k)}: {escape(format_value(v))}")
    if d["error"]:
        e = d["error"]
        out.print(f"[red]Error: {escape(error_line(e))}[/]", soft_wrap=True)
        if e.get("traceback"):
            out.print(escape(e["traceback"].rstrip()), soft_wrap=True)
    if d["metadata"]:
        out.print(f"Metadata: {escape(repr(d['metadata']))}", soft_wrap=True)
    if d.get("duration") is not None:
        out.print(f"Duration: {d['duration']:.3f}s")
    if d.get("attempts") is not None:
        retried = d["attempts"] - 1
        out.print(
            f"Attempts: {d['attempts']}"
            + (
                f" ({retried} {'retry' if retried == 1 else 'retries'} after a transient error)"
                if retried
                else ""
            )
        )
    w = d.get("why")
    if w:
        out.print()
        out.print(f"Origin: {escape(origin_text(w['origin']))}", soft_wrap=True)
        out.print(f"Why: {escape(w['summary'])}", soft_wrap=True)
        if w["earlier_key"]:
            out.print(f"  earlier sample {w['earlier_key'][:12]} in revision {w['earlier_manifest'][:10]}")


def origin_text(origin: dict[str, Any]) -> str:
    """Where a result came from, as ``show --sample KEY --why`` says it."""
    run = f"run {origin['manifest'][:10]}" + (f" ({format_time(origin['time'])})" if origin["time"] else "")
    if origin["how"] == "earlier line":
        return f"reused from an earlier line: evaluated in {run}"
    if origin["how"] == "experiment":
        return f"reused from experiment {origin['experiment']!r}: evaluated in {run}"
    return f"evaluated in {run}"


@app.command("log")
def log_(
    name: Annotated[
        str | None, typer.Argument(help="Experiment (default: all, interleaved by time).")
    ] = None,
    oneline: Annotated[bool, typer.Option("--oneline", help="One line per entry.")] = False,
    number: Annotated[
        int | None, typer.Option("-n", "--max-count", min=1, help="Show at most N entries.")
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Show the history of runs, newest first, like git log."""
    st = open_store(store, reading=True)
    entries = log(st, name, limit=number)
    if as_json:
        print_json({"entries": [e.to_json() for e in entries]})
        return
    out = console()
    if not entries:
        out.print("No history.")
        return
    lines: list[str] = []  # printed at once: rich costs per call, a log has thousands of lines
    for e in entries:
        short = (e.manifest_id or e.record_id)[:10]
        counts = f"evaluated {e.evaluated}, reused {e.reused}{reuse_words(e.earlier, e.imported)}, errors {e.errors}"
        calls = calls_line(e.calls)
        if calls and oneline:
            counts += f", calls {e.calls.get('made', 0)} made, {e.calls.get('cached', 0)} cached"
        if oneline:
            what = "; ".join(e.changes) if e.changes else (e.note or "")
            detail = counts if e.op == "run" else e.op
            lines.append(
                f"[yellow]{short}[/] {format_time(e.time)} {escape(e.experiment)} {_styled(e.status)} "
                f"{detail}{escape(' · ' + what) if what else ''}"
            )
            continue
        lines.append(
            f"[yellow]run {short}[/] ({escape(e.experiment)})"
            if e.op == "run"
            else f"[yellow]{e.op} {short}[/] ({escape(e.experiment)})"
        )
        lines.append(f"Date:    {format_time(e.time)}")
        lines.append(f"Status:  {_styled(e.status)}")
        if e.op == "run":
            lines.append(f"Samples: {e.done}/{e.total}; this run {counts}")
            if calls:
                lines.append(f"Calls:   {calls.removeprefix('Model calls: ')}")
        if e.host:
            lines.append(f"Host:    {escape(e.host)}")
        if e.git_commit:
            lines.append(f"Commit:  {e.git_commit[:12]}")
        lines.extend(f"    {escape(change)}" for change in e.changes)
        if e.note and e.op != "run" and e.note not in e.changes:
            lines.append(f"    {escape(e.note)}")
        lines.append("")
    out.print("\n".join(lines).rstrip("\n") + ("" if oneline else "\n"), soft_wrap=True)
