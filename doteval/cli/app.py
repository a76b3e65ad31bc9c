"""The typer application: one function per command, each parse → call → render.

Commands live in modules by concept (``views``: list, show, log; ``store_cmds``: gc, fsck, push, pull;
``compare``: diff, export; ``manage``: delete, rename); importing this module
registers them all.
"""

from __future__ import annotations

import os
import shlex
from typing import Annotated

import typer

from doteval.cli.common import GlobalOptions, StoreOption, app, escape_unencodable_output, store_path

__all__ = ["app"]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Evaluate nothing: say what would be reused and evaluated, and why."),
    ] = False,
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="I/N", help="Evaluate only shard I of N of the samples.")
    ] = None,
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
    if dry_run:
        options.append("--dry-run")
    if shard is not None:
        options += ["--shard", shard]
    if max_retries is not None:
        options += ["--max-retries", str(max_retries)]
    store = store_path(store)
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
from doteval.cli import views  # noqa: E402, F401, I001
from doteval.cli import compare  # noqa: E402, F401
from doteval.cli import report_cmd  # noqa: E402, F401
from doteval.cli import manage  # noqa: E402, F401
from doteval.cli import store_cmds  # noqa: E402, F401
