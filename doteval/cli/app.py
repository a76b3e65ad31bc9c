"""The typer application: one function per command, each parse → call → render."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from doteval.cli.render import (
    STATUS_LABELS,
    STATUS_STYLES,
    format_duration,
    format_time,
    format_value,
    metrics_table,
    percent,
)
from doteval.experiments import (
    ExperimentInfo,
    delete_experiment,
    iter_samples,
    list_experiments,
    open_experiment,
    total_duration,
)
from doteval.objects import Store

app = typer.Typer(
    name="doteval",
    help="Run LLM evaluations and keep every sample in a resumable, content-addressed store.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Results store (default: $DOTEVAL_STORE or ./.doteval).",
        show_default=False,
    ),
]


def _console() -> Console:
    return Console(highlight=False, no_color="NO_COLOR" in os.environ or None)


def _store(path: Path | None) -> Store:
    return Store(path)


def _status(info: ExperimentInfo) -> str:
    return STATUS_LABELS.get(info.status, info.status.capitalize())


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Evaluation files or folders (default: .).")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "-e", help="Experiment to record into; resumes it if it exists."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", min=0, help="Evaluate at most N items of each dataset.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Samples in flight at once.")
    ] = None,
    rerun_changed: Annotated[
        bool, typer.Option("--rerun-changed", help="Start a new line of results for changed evaluations.")
    ] = False,
    max_retries: Annotated[
        int | None, typer.Option("--max-retries", min=0, help="Retries of a transient error (default 3).")
    ] = None,
    store: StoreOption = None,
) -> int:
    """Run evaluations (eval_*.py) through pytest into the store; the same command resumes."""
    import pytest

    args = list(paths or [])
    options: list[str] = []
    if experiment:
        options += ["--experiment", experiment]
    if samples is not None:
        options += ["--samples", str(samples)]
    if concurrency is not None:
        options += ["--concurrency", str(concurrency)]
    if rerun_changed:
        options.append("--rerun-changed")
    if max_retries is not None:
        options += ["--max-retries", str(max_retries)]
    if store is not None:
        options += ["--store", str(store)]
    extra = list(ctx.args)
    command = ["doteval", "run", *args, *options, *extra]
    pytest_args = [*args, *options, *extra, "--doteval-only", "--doteval-command", shlex.join(command)]
    # doteval is imported already, so pytest cannot rewrite its asserts; it has none to rewrite.
    pytest_args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if not any(a.startswith("-p") for a in extra) and os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args += ["-p", "doteval.pytest_plugin"]
    return int(pytest.main(pytest_args))


@app.command("list")
def list_(store: StoreOption = None) -> None:
    """List experiments: status, samples done and when each was last updated."""
    st = _store(store)
    infos = list_experiments(st)
    console = _console()
    if not infos:
        console.print(f"No experiments in {escape(str(st.root))}.")
        return
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False, collapse_padding=True
    )
    table.add_column("Experiment")
    table.add_column("Status")
    table.add_column("Samples", justify="right")
    table.add_column("Errors", justify="right")
    table.add_column("Last updated")
    for info in infos:
        style = STATUS_STYLES.get(info.status)
        table.add_row(
            escape(info.name),
            f"[{style}]{_status(info)}[/]" if style else _status(info),
            f"{info.done}/{info.total} ({percent(info.done, info.total)})",
            str(info.errors),
            format_time(info.last_updated) if info.last_updated else "-",
        )
    console.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    full: Annotated[
        bool, typer.Option("--full", help="Also show every sample: scores, prompt, response, error.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Show an experiment: status, progress, duration and its metrics."""
    st = _store(store)
    info = open_experiment(st, name)
    console = _console()
    lines = [
        f"Session: {info.name}",
        f"Status: {_status(info)}",
        f"Samples: {info.done}/{info.total} ({percent(info.done, info.total)})",
        f"Errors: {info.errors}",
        f"Duration: {format_duration(total_duration(st, name)) if info.manifest else '-'}",
        f"Last updated: {format_time(info.last_updated) if info.last_updated else '-'}",
    ]
    if info.holder:
        h = info.holder
        lines.append(f"Running: pid {h.get('pid', '?')} on {h.get('host', '?')} since {h.get('since', '?')}")
    if info.manifest and info.manifest.git_commit:
        lines.append(f"Git commit: {info.manifest.git_commit[:12]}")
    if info.diverged:
        lines.append("Warning: this experiment has two heads (it moved in two stores); showing the newest")
    for line in lines:
        console.print(escape(line), soft_wrap=True)
    if info.manifest is None:
        return
    console.print()
    console.print(metrics_table(info.manifest.evaluations))
    if info.status in ("interrupted", "failed") and info.manifest.command:
        console.print()
        console.print(escape(f"Resume with: {shlex.join(info.manifest.command)}"), soft_wrap=True)
    if full:
        for ev in info.manifest.evaluations:
            console.print()
            console.print(_samples_table(st, ev))


def _samples_table(st: Store, ev: Any) -> Table:
    table = Table(title=escape(ev.node_id), show_lines=True, header_style="bold", title_justify="left")
    table.add_column("Sample", no_wrap=True)
    table.add_column("Scores")
    table.add_column("Prompt", overflow="fold")
    table.add_column("Response", overflow="fold")
    table.add_column("Error", overflow="fold")
    for sample in iter_samples(st, ev):
        rec = sample.record
        scores = ", ".join(f"{s['name']}={format_value(s['value'])}" for s in rec.get("scores") or [])
        err = rec.get("error") or {}
        error = f"{err.get('type') or 'Error'}: {err.get('message', '')}" if err else ""
        table.add_row(
            sample.key[:12],
            escape(scores),
            escape(_text(rec.get("prompt"))),
            escape(_text(rec.get("response"))),
            f"[red]{escape(error)}[/]" if error else "",
        )
    return table


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    store: StoreOption = None,
) -> None:
    """Delete an experiment's ref; its history stays in the store until gc."""
    st = _store(store)
    delete_experiment(st, name)
    _console().print(f"Deleted experiment {escape(name)!s}.")


def _version_callback(value: bool) -> None:
    if value:
        from doteval import __version__

        print(f"doteval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Run LLM evaluations and keep every sample in a resumable, content-addressed store."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
