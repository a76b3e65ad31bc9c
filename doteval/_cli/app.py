"""The typer application: one function per command, each parse → call → render.

``run`` is here; the other commands live in modules named ``*_cmd(s)`` by concept
(``inspect_cmds``: list, show, log; ``compare_cmds``: diff, export; ``report_cmd``: report;
``manage_cmds``: delete, undelete, rename, keep; ``store_cmds``: gc, fsck, push, pull);
importing this module registers them all.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import Annotated, Any

import typer

from doteval._cli.common import GlobalOptions, StoreOption, app, escape_unencodable_output, store_path
from doteval._running import settings
from doteval.errors import DotevalError

__all__ = ["app"]


def _check_max_errors(value: str | None) -> str | None:
    if value is not None:
        from doteval._running.error_budget import parse_max_errors
        from doteval.errors import DotevalError

        try:
            parse_max_errors(value)
        except DotevalError as e:
            raise typer.BadParameter(str(e)) from None
    return value


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Evaluation files or folders (default: .).")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            callback=_checked(settings.experiment_name),
            help="Experiment to record into; resumes it if it exists.",
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            callback=_checked(settings.sample_limit),
            help="Evaluate at most N items of each dataset.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", callback=_checked(settings.concurrency), help="Samples in flight at once."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            callback=_checked(settings.timeout_seconds),
            help="End a sample that runs longer with a timeout error (retried by the next run).",
        ),
    ] = None,
    rerun_changed: Annotated[
        bool, typer.Option("--rerun-changed", help="Start a new line of results for changed evaluations.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Evaluate nothing: say what would be reused and evaluated, and why."),
    ] = False,
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="I/N", help="Evaluate only shard I of N of the samples.")
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(
            "--max-retries",
            callback=_checked(settings.retry_count),
            help="Retries of a transient error (default 3).",
        ),
    ] = None,
    max_errors: Annotated[
        str | None,
        typer.Option(
            "--max-errors",
            metavar="N",
            callback=_check_max_errors,
            help="Exit 1 when more than N samples (or a fraction, such as 0.05) ended in an error.",
        ),
    ] = None,
    store: StoreOption = None,
) -> int:
    """Run evaluations (eval_*.py) through pytest into the store; the same command resumes."""
    import pytest

    args = list(paths or [])
    options: list[str] = []
    if experiment is not None:
        options += ["--experiment", experiment]
    if samples is not None:
        options += ["--samples", str(samples)]
    if concurrency is not None:
        options += ["--concurrency", str(concurrency)]
    if timeout is not None:
        options += ["--sample-timeout", f"{timeout:g}"]
    if rerun_changed:
        options.append("--rerun-changed")
    if dry_run:
        options.append("--dry-run")
    if shard is not None:
        options += ["--shard", shard]
    if max_retries is not None:
        options += ["--max-retries", str(max_retries)]
    if max_errors is not None:
        options += ["--max-errors", max_errors]
    store = store_path(store)
    if store is not None:
        options += ["--store", str(store)]
    extra = list(ctx.args)
    command = ["doteval", "run", *args, *options, *extra]
    pytest_args = [*args, *options, *extra, "--doteval-only", "--doteval-command", shlex.join(command)]
    # doteval is imported already, so pytest cannot rewrite its asserts; it has none to rewrite.
    pytest_args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if not any(a.startswith("-p") for a in extra) and os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args += ["-p", "doteval._pytest_plugin"]
    return int(pytest.main(pytest_args))


def _checked(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A typer callback refusing a value with the shared check's line (see doteval._running.settings)."""

    def callback(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except DotevalError as e:
            raise typer.BadParameter(getattr(e, "reason", str(e))) from None

    return callback


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
    store: StoreOption = None,
) -> None:
    """Run LLM evaluations and keep every sample in a resumable, content-addressed store."""
    escape_unencodable_output()
    GlobalOptions.store = store  # set on every call: one process may run several commands (tests)
    GlobalOptions.opened = None


# Register the other commands (imported for their side effect on `app`), in the
# order `doteval --help` lists them: look, compare, manage, keep the store.
from doteval._cli import inspect_cmds  # noqa: E402, F401, I001
from doteval._cli import compare_cmds  # noqa: E402, F401
from doteval._cli import report_cmd  # noqa: E402, F401
from doteval._cli import manage_cmds  # noqa: E402, F401
from doteval._cli import store_cmds  # noqa: E402, F401
