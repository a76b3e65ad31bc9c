"""Progress bars for a run, drawn with rich on stderr (the pytest plugin's listener)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from doteval.runner import EvaluationOutcome, RunListener


class ProgressListener(RunListener):
    """A rich progress bar per evaluation on stderr; plain notes when not a terminal."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.console: Console | None = None

    def _console(self) -> Console:
        if self.console is None:
            self.console = Console(file=sys.stderr)
        return self.console

    def evaluation_started(self, name: str, total: int | None, reused: int, pending: int) -> None:
        console = self._console()
        if not console.is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("reused {task.fields[reused]}"),
            TextColumn("[red]errors {task.fields[errors]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.progress.start()
        self.tasks[name] = self.progress.add_task(
            name.split("::")[-1], total=total, completed=reused, reused=reused, errors=0, rate=""
        )
        self._started = time.monotonic()
        self._count = 0
        self._errors = 0

    def sample_done(self, name: str, ok: bool) -> None:
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

    def retrying(self, name: str, attempt: int, error: BaseException, delay: float) -> None:
        if self.progress is not None:
            self.progress.console.print(
                f"[yellow]retrying {name.split('::')[-1]} after {type(error).__name__} "
                f"(attempt {attempt}, waiting {delay:.1f}s)"
            )

    def interrupted(self, in_flight: int) -> None:
        self._console().print(
            f"\n[yellow]doteval: interrupted; finishing {in_flight} sample(s) in flight "
            "(Ctrl+C again to stop now; finished samples are kept)"
        )
