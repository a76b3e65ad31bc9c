"""The pytest plugin: collects ``@foreach`` evaluations and runs them into the store.

Registered through the ``pytest11`` entry point. Every hook delegates to one
``DotevalSession`` kept in ``config.stash``; the session holds the experiment's
run from collection (where code changes are refused before anything runs) to
``pytest_sessionfinish`` (where the run is sealed). It is inert in test
sessions that collect no evaluation.

A ``DotevalError`` stops the session quietly (``Session.Failed``: exit code 1, and no
``Exit:`` or ``!!!`` line of pytest's) and is printed once, at the end, by
``doteval._cli.console.errors``: the same lines as under every ``doteval`` command.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from doteval._objects import Store
from doteval._objects.files import permission_error
from doteval._running import settings
from doteval._running.error_budget import run_errors
from doteval._running.experiment_run import (
    ExperimentRun,
    Plan,
    PreparedEvaluation,
    RunListener,
    RunOptions,
    generated_name,
)
from doteval._running.fingerprint import find_project_root, params_fingerprint
from doteval._running.foreach import get_spec
from doteval._running.retries import RetryPolicy
from doteval.errors import ChangedEvaluationError, DotevalError, DotevalWarning, UsageError

_SESSION = pytest.StashKey["DotevalSession"]()
EVAL_FILE_PATTERN = "eval_*.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("doteval", "doteval: LLM evaluations with a resumable results store")
    for setting in settings.RUN_SETTINGS.values():  # declared by `doteval run` too, from the same table
        if setting.metavar is None:
            group.addoption(setting.flag, action="store_true", help=setting.help)
        else:
            group.addoption(
                setting.flag,
                metavar=setting.metavar,
                type=_checked(setting.check) if setting.check else None,
                default=setting.default,
                help=setting.help,
            )
    group.addoption(
        "--store",
        metavar="PATH",
        help="results store (default: $DOTEVAL_STORE, else the nearest .doteval here or above)",
    )
    # The original doteval's -C/--concurrent: recognised only to point at --concurrency.
    group.addoption(
        "-C",
        "--concurrent",
        dest="doteval_concurrent",
        nargs="?",
        const="",
        help=argparse_suppress(),
        default=None,
    )
    # Set by `doteval run`: the command to show for resuming, and evaluations only.
    group.addoption("--doteval-command", help=argparse_suppress(), default=None)
    group.addoption("--doteval-only", action="store_true", help=argparse_suppress())


def _checked(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An option type that refuses a value with the shared check's own line (not argparse's)."""

    def parse(text: str) -> Any:
        import argparse

        try:
            return check(text)
        except DotevalError as e:
            raise argparse.ArgumentTypeError(getattr(e, "reason", str(e))) from None

    parse.__name__ = check.__name__
    return parse


def _is_terminal(reporter: Any) -> bool:
    try:
        return bool(reporter._tw._file.isatty())
    except Exception:
        return False


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Refuse options this doteval does not have before the session starts (exit code 4, pytest's
    usage error), in the console's form rather than pytest's ``ERROR:``."""
    if config.getoption("doteval_concurrent", None) is not None:
        _print_error(
            UsageError(
                "-C/--concurrent is the original doteval's option: use --concurrency N (samples in flight at once)"
            ),
            config,
        )
        return int(pytest.ExitCode.USAGE_ERROR)
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SESSION] = DotevalSession(config)
    config.addinivalue_line("markers", "doteval: an evaluation run over a dataset by doteval")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.suffix != ".py" or not fnmatch.fnmatch(file_path.name, EVAL_FILE_PATTERN):
        return None
    if parent.session.isinitpath(file_path):
        return None  # pytest collects files named on the command line itself
    patterns = parent.config.getini("python_files")
    if any(fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return None
    return pytest.Module.from_parent(parent, path=file_path)  # type: ignore[no-any-return]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A doteval error raised while a file is imported (a bad ``@foreach(...)`` argument) is
    pytest's collection error for that file, as one line naming where, not a stack of
    doteval's own frames."""
    report = yield
    call = report.__dict__.get("call")  # pytest keeps the CallInfo here until it is reported
    excinfo = getattr(call, "excinfo", None)
    if report.failed and excinfo is not None and isinstance(excinfo.value, DotevalError):
        report.longrepr = _where(excinfo, collector) + str(excinfo.value)
    return report


def _where(excinfo: Any, collector: pytest.Collector) -> str:
    """``file:line: `` of the innermost frame in the file being collected (empty if none)."""
    path = str(getattr(collector, "path", ""))
    for entry in reversed(excinfo.traceback):
        if str(entry.path) == path:
            return f"{collector.nodeid}:{entry.lineno + 1}: "
    return ""


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    if get_spec(obj) is None or not isinstance(collector, (pytest.Module, pytest.Class)):
        return None
    return list(collector._genfunctions(name, obj))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("doteval_only"):
        others = [i for i in items if not (isinstance(i, pytest.Function) and get_spec(i.obj))]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [i for i in items if i not in others]
    config.stash[_SESSION].collected(items)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    spec = get_spec(pyfuncitem.obj)
    if spec is None:
        return None
    pyfuncitem.config.stash[_SESSION].call(pyfuncitem)
    return True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    if session.config.stash[_SESSION].error is not None:  # collection was refused: run nothing
        raise session.Failed("doteval: see the error below")  # exit code 1, said by nobody
    return (yield)


class _Stopped(pytest.exit.Exception):  # type: ignore[name-defined]
    """Raised out of an evaluation a ``DotevalError`` stopped. An ``Exit``, so pytest lets it out of
    the test call without a report (the item is no failed test) and without its teardown, as
    ``pytest.exit``; ``pytest_runtest_protocol`` turns it into ``Session.Failed``."""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    try:
        return (yield)
    except _Stopped:
        # Session.Failed ends the session with exit code 1 and says nothing; pytest.exit would
        # add its "!!! _pytest.outcomes.Exit: ... !!!" line under the error.
        raise item.session.Failed("doteval: see the error above") from None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_SESSION].finish(session)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    config.stash[_SESSION].summary(terminalreporter)


def pytest_unconfigure(config: pytest.Config) -> None:
    doteval = config.stash.get(_SESSION, None)
    if doteval is not None:
        doteval.say_error()  # when no terminal summary said it (-p no:terminal)


def evaluation_id(item: pytest.Function) -> str:
    """The evaluation's name in the store: its file relative to the project root, then pytest's
    ``::function[params]``.

    Not pytest's node id as such: that is relative to the rootdir, which pytest picks from
    the command line (``--store PATH`` given as two words can move it), and a changed name
    would look like a new evaluation.
    """
    root = find_project_root(item.path)
    try:
        relative = item.path.resolve().relative_to(root).as_posix()
    except ValueError:
        return item.nodeid
    _, sep, rest = item.nodeid.partition("::")
    return relative + sep + rest


def unique_evaluation_ids(items: list[pytest.Function]) -> dict[str, str]:
    """Each item's evaluation id (by pytest node id); two items with one id are refused, since
    their results would be mixed in one evaluation of the store."""
    ids: dict[str, str] = {}
    first: dict[str, pytest.Function] = {}
    for item in items:
        eid = ids[item.nodeid] = evaluation_id(item)
        other = first.setdefault(eid, item)
        if other is not item:
            here = item.config.invocation_params.dir
            a, b = (os.path.relpath(i.path, here) for i in (other, item))
            raise UsageError(
                f"two evaluations would be stored as {eid!r}: the one in {a} and the one in {b}",
                hint="an evaluation is named by its file's path from its project root (the nearest "
                "folder with a pyproject.toml, .git...); rename one, or run each with its own --experiment",
            )
    return ids


# pytest's own fixtures are plumbing, not parameters of a result.
def _is_builtin_fixture(item: pytest.Function, name: str) -> bool:
    defs = item._fixtureinfo.name2fixturedefs.get(name)
    if not defs:
        return False
    module = getattr(defs[-1].func, "__module__", "") or ""
    return module.startswith(("_pytest", "pytest"))


class DotevalSession:
    """All doteval state of one pytest session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.run: ExperimentRun | None = None
        self.prepared: dict[str, PreparedEvaluation] = {}
        self.error: DotevalError | None = None  # what stopped the session, said once at its end
        self.error_said = False
        self.store: Store | None = None
        self.warned: set[str] = set()
        self.store_path: Path | None = None
        self.listener: RunListener | None = None
        self.plans: list[Plan] = []
        self.run_command: list[str] = []
        self.over_budget = ""  # the line saying --max-errors was exceeded

    # -- options ------------------------------------------------------------

    def _opt(self, name: str) -> Any:
        return self.config.getoption(name)

    def command(self, experiment: str) -> list[str]:
        given = self._opt("doteval_command")
        args = shlex.split(given) if given else ["pytest", *self.config.invocation_params.args]
        if not self._opt("experiment"):
            args += ["--experiment", experiment]
        return [a for a in args if a not in ("--rerun-changed", "--dry-run")]

    def command_text(self) -> str:
        return shlex.join(self.run_command)

    # -- hooks --------------------------------------------------------------

    def collected(self, items: list[pytest.Item]) -> None:
        evals = [i for i in items if isinstance(i, pytest.Function) and get_spec(i.obj) is not None]
        if not evals or self.config.option.collectonly:
            return
        given = self._opt("experiment")
        experiment = given if given is not None else generated_name()
        store_opt = self._opt("store")
        self.store_path = Path(store_opt) if store_opt else None
        try:
            store = self.store = Store(self.store_path)
            self.store_path = store.root
            options = RunOptions(
                experiment=experiment,
                samples=self._opt("samples"),
                concurrency=self._opt("concurrency"),
                rerun_changed=bool(self._opt("rerun_changed")),
                dry_run=bool(self._opt("dry_run")),
                shard=self._opt("shard"),  # parsed by settings.shard
                retry=RetryPolicy(base_delay=self._opt("retry_delay")),
                max_retries=self._opt("max_retries"),  # None: @foreach's, else the policy's 3
                command=[],
                timeout=self._opt("sample_timeout"),
                cache=settings.cache_mode(bool(self._opt("no_cache")), bool(self._opt("cache_only"))),
                reuse_from=self._opt("reuse_from"),
            )
            options.command = self.run_command = self.command(experiment)
            self.listener = _make_listener(self.config)
            ids = unique_evaluation_ids(evals)
            run = ExperimentRun(store, options, self.listener)
            run.open()
            self.run = run
            for item in evals:
                spec = get_spec(item.obj)
                assert spec is not None
                self.prepared[item.nodeid] = run.prepare(ids[item.nodeid], spec)
        except DotevalError as e:
            self.abort(e)
        except PermissionError as e:
            self.abort(permission_error(e))

    def abort(self, error: DotevalError) -> None:
        """Stop on ``error``: seal what ran, and keep the error for the end of the session (the
        hook that called this stops the session)."""
        run, self.run = self.run, None
        if run is not None:
            if isinstance(error, ChangedEvaluationError):
                run.stop_requested.set()  # what ran is kept; the rest did not run
            else:
                run.failed = True  # an aborted run is sealed as Failed, never as Completed
            # the seal failed too (a damaged store, a disk still full): say why; the journal
            # keeps every finished sample for the next run
            failed = _sealed(run)
            error = failed if failed is not None and str(failed) != str(error) else error
        self.error = error

    def say_error(self, reporter: Any = None) -> None:
        """Print the error that stopped the session, once, as every doteval command does."""
        if self.error is None or self.error_said:
            return
        self.error_said = True
        if reporter is not None:  # pytest's lines first (stdout), then the error (stderr)
            reporter.ensure_newline()
            reporter.flush()
        capman = self.config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            _print_error(self.error, self.config, self.store)

    def call(self, item: pytest.Function) -> None:
        run = self.run
        prepared = self.prepared.get(item.nodeid)
        if run is None or prepared is None:
            pytest.fail(
                "doteval: this evaluation was not prepared (was collection interrupted?)", pytrace=False
            )
        spec = prepared.spec
        fixtures = {name: item.funcargs[name] for name in spec.fixture_names()}
        params = params_fingerprint({n: v for n, v in fixtures.items() if not _is_builtin_fixture(item, n)})
        for name in params.unfingerprintable:
            if name not in self.warned:
                self.warned.add(name)
                item.warn(
                    DotevalWarning(
                        f"doteval cannot fingerprint fixture {name!r} "
                        f"({type(fixtures[name]).__qualname__}): a change to it will not be detected; "
                        "give its class a __doteval_params__ method returning the settings that "
                        "decide results"
                    )
                )
        if run.options.dry_run:
            try:
                self.plans.append(run.plan(prepared, params))
            except DotevalError as e:
                self.abort(e)
                raise _Stopped("doteval: see the error below") from None
            return
        capman = self.config.pluginmanager.getplugin("capturemanager")
        try:
            with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
                run.run_evaluation(prepared, fixtures, params)
        except DotevalError as e:
            self.abort(e)
        except PermissionError as e:
            self.abort(permission_error(e))
        if self.error is not None:
            raise _Stopped("doteval: see the error below")
        if run.interrupted:
            item.session.shouldstop = "doteval: interrupted; every finished sample is saved"
        # Errored samples do not fail the item: they are data the next run retries (--max-errors).

    def finish(self, session: pytest.Session) -> None:
        run = self.run
        if run is None:
            return
        self.run = None
        failed = _sealed(run)
        if failed is not None:
            self.error = failed  # said by ``summary``, with the exit code of every doteval error
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        if run.interrupted or session.exitstatus == pytest.ExitCode.INTERRUPTED:
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        elif self.too_many_errors(run) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.finished_run = run

    def too_many_errors(self, run: ExperimentRun) -> bool:
        """Whether more samples ended in an error than ``--max-errors`` allows (never without it)."""
        limit: settings.MaxErrors | None = self._opt("max_errors")
        if limit is None or run.manifest is None or run.options.dry_run:
            return False
        errors, samples = run_errors(run.manifest, run.outcomes)
        if not limit.exceeded(errors, samples):
            return False
        self.over_budget = (
            f"doteval: {errors} of {samples} samples ended in an error, more than "
            f"--max-errors {limit.text} allows: exit code 1"
        )
        return True

    def summary(self, reporter: Any) -> None:
        if self.error is not None:  # the run stopped, or could not be sealed: the error alone
            self.say_error(reporter)
            return
        if self.plans:
            from doteval._cli.console.run_summary import plan_lines

            command = self.command_text() + (" --rerun-changed" if self._opt("rerun_changed") else "")
            for line in plan_lines(self.plans, command):
                reporter.write_line(line)
            return
        run = getattr(self, "finished_run", None)
        if run is None or run.manifest is None:
            return
        from doteval._cli.console.run_summary import run_summary_lines
        from doteval._cli.console.tables import output_width

        for line in run_summary_lines(
            run.manifest,
            outcomes=run.outcomes,
            command=" ".join(shlex.quote(a) for a in run.options.command),
            width=output_width(reporter._tw.fullwidth, _is_terminal(reporter)),
            color=reporter._tw.hasmarkup,
        ):
            reporter.write_line(line)
        if self.over_budget:
            reporter.write_line(self.over_budget, red=True)


def _sealed(run: ExperimentRun) -> DotevalError | None:
    """Close (seal) ``run``; the error that kept it from being sealed, if one did."""
    try:
        run.close()
    except DotevalError as e:
        return e
    except PermissionError as e:  # a store file this user may not write, as everywhere else
        return permission_error(e)
    return None


def _make_listener(config: pytest.Config) -> RunListener:
    if os.environ.get("DOTEVAL_PROGRESS", "auto") == "off":
        return RunListener()
    from doteval._cli.console.progress import ProgressListener

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not _one_file(sys.stdout, sys.stderr):
        return ProgressListener()

    def start_line() -> None:  # pytest's line ("eval_x.py ...") is ended first, as for a warning
        reporter.ensure_newline()
        reporter._tw.flush()

    return ProgressListener(start_line)


def _one_file(a: Any, b: Any) -> bool:
    """Whether two streams write to the same file (``> log 2>&1``, a CI log)."""
    try:
        sa, sb = os.fstat(a.fileno()), os.fstat(b.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _print_error(error: DotevalError, config: pytest.Config, store: Store | None = None) -> None:
    from doteval._cli.console.errors import print_error

    color = {"yes": True, "no": False}.get(getattr(config.option, "color", "auto"))
    print_error(error, store=store, color=color)
