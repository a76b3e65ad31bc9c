"""Progress of a run on stderr (the pytest plugin's listener): a rich progress bar per
evaluation in a terminal; without one (a file, a CI log) a plain line every few seconds."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from doteval._running.experiment_run import EvaluationOutcome, Retrying, RunListener
from doteval._text import format_duration

DEFAULT_EVERY = 5.0  # seconds between two plain progress lines


def plain_every() -> float:
    """Seconds between two plain progress lines: ``DOTEVAL_PROGRESS_EVERY``, else 5."""
    try:
        every = float(os.environ.get("DOTEVAL_PROGRESS_EVERY") or DEFAULT_EVERY)
    except ValueError:
        return DEFAULT_EVERY
    return every if every >= 0 else DEFAULT_EVERY


class ProgressListener(RunListener):
    """A rich progress bar per evaluation on stderr; plain lines when not a terminal."""

    def __init__(self, start_line: Callable[[], None] | None = None) -> None:
        # start_line: end a line the test runner left open (stdout and stderr in one log), so a
        # plain line never lands in the middle of one of pytest's
        self.start_line = start_line
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.console: Console | None = None
        self.plain: PlainProgress | None = None

    def _console(self) -> Console:
        if self.console is None:
            self.console = Console(file=sys.stderr)
        return self.console

    def evaluation_started(self, name: str, total: int | None, reused: int, pending: int) -> None:
        self._started = time.monotonic()
        self._count = 0
        self._errors = 0
        console = self._console()
        if not console.is_terminal:
            self.plain = PlainProgress(name, total, reused, plain_every(), self._plain)
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("reused {task.fields[reused]}"),
            TextColumn("[red]errors {task.fields[errors]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[yellow]{task.fields[window]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.progress.start()
        self.tasks[name] = self.progress.add_task(
            name.split("::")[-1], total=total, completed=reused, reused=reused, errors=0, rate="", window=""
        )

    def sample_done(self, name: str, ok: bool) -> None:
        if self.plain is not None:
            self.plain.sample_done(ok)
        if self.progress is None:
            return
        self._count += 1
        self._errors += 0 if ok else 1
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self.progress.update(
            self.tasks[name], advance=1, errors=self._errors, rate=f"{self._count / elapsed:.1f}/s"
        )

    def evaluation_finished(self, name: str, outcome: EvaluationOutcome) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.plain is not None:
            self.plain.finished(outcome.interrupted)
            self.plain = None

    def window_changed(self, name: str, window: int, ceiling: int) -> None:
        if self.plain is not None:
            self.plain.window = window_text(window, ceiling)
        if self.progress is not None and name in self.tasks:
            self.progress.update(self.tasks[name], window=window_text(window, ceiling))

    def retrying(self, name: str, retry: Retrying) -> None:
        message = " ".join(str(retry.error).split())
        message = f": {message[:97] + '...' if len(message) > 100 else message}" if message else ""
        line = (
            f"doteval: retrying {name.split('::')[-1]} sample {retry.sample}: attempt {retry.attempt} "
            f"of {retry.attempts} failed with {type(retry.error).__name__}{message}; "
            f"attempt {retry.attempt + 1} in {retry.delay:.1f}s"
        )
        if self.progress is not None:
            self.progress.console.print(f"[yellow]{escape(line)}", soft_wrap=True)
        else:
            self._plain(line)

    def _plain(self, line: str) -> None:
        if self.start_line is not None:
            self.start_line()
        _plain(line)

    def interrupted(self, in_flight: int) -> None:
        line = (
            f"doteval: interrupted; finishing {in_flight} sample(s) in flight, cancelling those "
            "waiting to retry (Ctrl+C again to stop now; finished samples are kept)"
        )
        if self._console().is_terminal:
            self._console().print(f"\n[yellow]{line}")
        else:
            self._plain(line)


class PlainProgress:
    """One line on stderr every ``every`` seconds: samples done, rate, errors, time left."""

    def __init__(
        self, name: str, total: int | None, reused: int, every: float, emit: Callable[[str], None]
    ) -> None:
        self.name = name.split("::")[-1]
        self.emit = emit
        self.total, self.reused, self.every = total, reused, every
        self.count = self.errors = 0
        self.window = ""  # window_text while rate limits hold the run below its concurrency
        self.started = self.shown = time.monotonic()
        self.printed = False

    def sample_done(self, ok: bool) -> None:
        self.count += 1
        self.errors += 0 if ok else 1
        now = time.monotonic()
        if now - self.shown >= self.every:
            self.shown = now
            self.emit(self.line(now))

    def finished(self, interrupted: bool) -> None:
        if self.printed:  # an evaluation done within the interval is told by the summary alone
            self.emit(self.line(time.monotonic(), interrupted, ended=True))

    def line(self, now: float, interrupted: bool = False, ended: bool = False) -> str:
        self.printed = True
        elapsed = max(now - self.started, 1e-6)
        rate = self.count / elapsed
        done = self.reused + self.count
        left = None if self.total is None else self.total - done  # None: a generator's size
        if interrupted:
            eta = f"interrupted after {format_duration(elapsed)}"
        elif ended or (left is not None and left <= 0):
            eta = f"done in {format_duration(elapsed)}"
        elif left is None:
            eta = "size of the dataset unknown"
        elif rate > 0:
            eta = f"about {format_duration(left / rate)} left"
        else:
            eta = "time left unknown"
        reused = f" ({self.reused} reused)" if self.reused else ""
        return (
            f"doteval: {self.name}: {done}/{'?' if self.total is None else self.total} samples{reused}, {rate:.1f}/s, "
            f"{self.errors} errors, {eta}{', ' + self.window if self.window else ''}"
        )


def window_text(window: int, ceiling: int) -> str:
    """The window of samples calling at once, shown while it is below the concurrency."""
    return f"rate limited: {window} of {ceiling} at once" if window < ceiling else ""


def _plain(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed or gone: progress is not worth a traceback
        pass
