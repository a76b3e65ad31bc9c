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


def _option(dest: str) -> Any:
    """``doteval run``'s declaration of a run setting, from the table the pytest plugin declares
    its options from (``doteval._running.settings.RUN_SETTINGS``)."""
    setting = settings.RUN_SETTINGS[dest]
    text = setting.help[0].upper() + setting.help[1:] + "."
    if setting.metavar is None:
        return typer.Option(*setting.run_names, help=text)
    return typer.Option(
        *setting.run_names, metavar=setting.metavar, callback=_checked(setting.check), help=text
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Evaluation files or folders (default: .).")
    ] = None,
    # Values stay the text given (checked here, parsed by pytest): one parameter per run setting.
    experiment: Annotated[str | None, _option("experiment")] = None,
    samples: Annotated[str | None, _option("samples")] = None,
    concurrency: Annotated[str | None, _option("concurrency")] = None,
    sample_timeout: Annotated[str | None, _option("sample_timeout")] = None,
    rerun_changed: Annotated[bool, _option("rerun_changed")] = False,
    reuse_from: Annotated[str | None, _option("reuse_from")] = None,
    max_retries: Annotated[str | None, _option("max_retries")] = None,
    shard: Annotated[str | None, _option("shard")] = None,
    dry_run: Annotated[bool, _option("dry_run")] = False,
    retry_delay: Annotated[str | None, _option("retry_delay")] = None,
    max_errors: Annotated[str | None, _option("max_errors")] = None,
    store: StoreOption = None,
) -> int:
    """Run evaluations (eval_*.py) through pytest into the store; the same command resumes."""
    import pytest  # here, for startup speed: the other commands never load pytest

    args = list(paths or [])
    given = [(s, ctx.params[s.dest]) for s in settings.RUN_SETTINGS.values()]
    options = [a for s, value in given for a in s.args(value)]  # under pytest's names
    shown = [a for s, value in given for a in s.args(value, s.run_names[0])]  # as `doteval run` has them
    store = store_path(store)
    if store is not None:
        options += ["--store", str(store)]
        shown += ["--store", str(store)]
    extra = list(ctx.args)
    command = ["doteval", "run", *args, *shown, *extra]
    pytest_args = [*args, *options, *extra, "--doteval-only", "--doteval-command", shlex.join(command)]
    # doteval is imported already, so pytest cannot rewrite its asserts; it has none to rewrite.
    pytest_args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if not any(a.startswith("-p") for a in extra) and os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args += ["-p", "doteval._pytest_plugin"]
    return int(pytest.main(pytest_args))


def _checked(check: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """A typer callback refusing a value with the shared check's line (see doteval._running.settings);
    a good value is kept as given, for pytest to read."""

    def callback(value: Any) -> Any:
        if value is None or check is None:
            return value
        try:
            check(value)
        except DotevalError as e:
            raise typer.BadParameter(getattr(e, "reason", str(e))) from None
        return value

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
