"""What the store-health tests share: subprocess runs of the CLI and of pytest, in-process
CLI calls, and reading an experiment back as JSON lines."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

from doteval.export import export as export_rows
from doteval.history import resolve
from doteval.objects import Store

PY = sys.executable
PYTEST_FLAGS = ["-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="200", DOTEVAL_PROGRESS="off", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


class Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _check(args: tuple[str, ...], done: Done, ok: bool | None) -> Done:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr + done.stdout
    if ok is not None:
        assert (done.returncode == 0) == ok, (args, done.returncode, done.stdout, done.stderr)
    return done


def run_cli(store: Path, *args: str, ok: bool | None = True, timeout: float = 300) -> Done:
    """``python -m doteval ARGS --store STORE`` in a subprocess; ``ok``: expect exit 0, non-zero, or either (None)."""
    proc = subprocess.run(
        [PY, "-m", "doteval", *args, "--store", str(store)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )
    return _check(args, Done(proc.returncode, proc.stdout, proc.stderr), ok)


def cli(store: Path, *args: str, ok: bool | None = True) -> Done:
    """The same command line through ``doteval.cli.main`` in this process (faster, for checks)."""
    from doteval.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([*args, "--store", str(store)])
        except SystemExit as e:
            code = e.code
    return _check(args, Done(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue()), ok)


def read_export(store: Path, spec: str) -> str:
    """The same rows as ``doteval export SPEC -f jsonl``, read in this process."""
    st = Store(store)
    out = io.StringIO()
    export_rows(st, resolve(st, spec), "jsonl", out)
    return out.getvalue()
