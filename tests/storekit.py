"""What the store-health tests share: an evaluation project run as real ``python -m pytest``
subprocesses, subprocess runs of the CLI and in-process CLI calls, reading an experiment back
as JSON lines, and small file helpers (copy a store, find a loose object, flip a byte)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from doteval._objects import Store
from doteval._operations.export import export as export_rows
from doteval._repository.history import resolve

PY = sys.executable
PYTEST_FLAGS = ["-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="200", DOTEVAL_PROGRESS="off", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def json_dataset_eval(check: str) -> str:
    """Source of ``eval_upper.py``: an evaluation over the rows of ``data.json`` beside it (so
    the dataset changes without the code changing), scored by the expression ``check``."""
    return f"""
import json
from pathlib import Path

from doteval import Result, foreach


def load():
    return [tuple(row) for row in json.loads(Path(__file__).with_name("data.json").read_text())]


@foreach("prompt,expected", load())
def eval_upper(prompt, expected, model):
    response = model.generate(prompt)
    return Result({check}, prompt=prompt, response=response)
"""


# -- the evaluation project -------------------------------------------------------------------

CONFTEST = """
import hashlib
import os
import time
from pathlib import Path

import pytest

WORDS = ("model evaluation answer question context token result score metric sample dataset "
         "prompt response reasoning step because therefore however example python function value").split()


def chat(prompt):
    words = " ".join(WORDS[b % len(WORDS)] for b in hashlib.sha256(prompt.encode()).digest() * 3)
    return (
        "Sure! I'd be happy to help with that. Here is a detailed answer to your question "
        f"about {prompt}.\\n\\nFirst, let's look at the context: {words}.\\n\\n"
        f"In summary, the answer is {prompt.upper()}. Let me know if you have any other "
        "questions, and I will do my best to assist you further!"
    )


class Model:
    def __doteval_params__(self):
        return {"name": "test-model", "version": 1}

    def generate(self, prompt):
        gate = os.environ.get("DOTEVAL_TEST_GATE")
        if gate:  # hold the run (and its lock) until the test opens the gate
            deadline = time.monotonic() + 120
            while not Path(gate).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        delay = float(os.environ.get("DOTEVAL_TEST_SLEEP") or 0)
        if delay:
            time.sleep(delay)
        with open(os.environ["DOTEVAL_TEST_CALLS"], "a") as f:
            f.write(prompt + "\\n")
        return reply(prompt)


@pytest.fixture
def model():
    return Model()
"""

# What the model answers, as the body of ``reply(prompt)`` in the conftest.
REPLIES = {
    "upper": "prompt.upper()",
    # no result shared by two runs (nor two stores)
    "unique": 'f"The answer to {prompt} is {prompt.upper()} (pid {os.getpid()})."',
    # long chat-like answers: 600 of them are enough to train a zstd dictionary
    "chat": "chat(prompt)",
    # compressible results
    "padded": 'prompt.upper() + " " + "padding to make results compressible " * 3',
}

# The tag stands in the function's body: a new tag is a code change (--rerun-changed runs it again).
EVAL = """
from doteval import Result, foreach

DATA = [(f"q{{i}}", f"Q{{i}}") for i in range({n})]


@foreach("prompt,expected", DATA)
def eval_x(prompt, expected, model):
    response = model.generate(prompt)
    tag = "{tag}"
    return Result(expected in response, prompt=prompt, response=response, metadata={{"tag": tag}})
"""


def take_lines(path: Path) -> list[str]:
    """The lines of ``path`` (a calls file), which is then removed: the next take starts afresh."""
    lines = read_lines(path)
    path.unlink(missing_ok=True)
    return lines


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    """Wait for a run started by ``Project.popen``: (exit code, output); a run that outlives
    ``timeout`` is killed and fails the test."""
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
        pytest.fail(f"the run did not end within {timeout}s:\n{out}")
    return proc.returncode, out


class Project:
    """An evaluation project in ``path``: ``eval_x.py`` over ``n`` samples (q0 -> Q0, ...) and a
    conftest whose model appends every prompt it is asked to a calls file, so "evaluated once"
    is counted.

    ``reply``: what the model answers (a key of ``REPLIES``); ``tag``: a string in the
    evaluation's code; ``sleep``: seconds every model call takes unless a run says otherwise;
    ``store_arg``: ``--store PATH`` ("split") or ``--store=PATH`` ("joined").
    """

    def __init__(
        self,
        path: Path,
        n: int,
        *,
        tag: str = "v1",
        reply: str = "upper",
        sleep: float = 0.0,
        store_arg: str = "split",
    ) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path, self.n, self.sleep, self.store_arg = path, n, sleep, store_arg
        self.calls_path = path / "calls.txt"
        (path / "conftest.py").write_text(f"{CONFTEST}\n\ndef reply(prompt):\n    return {REPLIES[reply]}\n")
        self.write_eval(n, tag)

    def write_eval(self, n: int, tag: str) -> None:
        (self.path / "eval_x.py").write_text(EVAL.format(n=n, tag=tag))

    def args(self, name: str, store: Path | None, *extra: str) -> list[str]:
        """pytest's arguments; without ``store`` the run uses the store ``$DOTEVAL_STORE`` names."""
        if store is None:
            store_args = []
        elif self.store_arg == "joined":
            store_args = [f"--store={store}"]
        else:
            store_args = ["--store", str(store)]
        return ["eval_x.py", "--experiment", name, *store_args, *PYTEST_FLAGS, *extra]

    def popen(
        self,
        name: str,
        store: Path | None,
        *extra: str,
        calls: Path | None = None,
        sleep: float | None = None,
        gate: Path | None = None,
        umask: int = -1,
    ) -> subprocess.Popen[str]:
        """Start a run; ``calls``: its own calls file, ``gate``: its model waits until that file exists."""
        env = _env(
            DOTEVAL_TEST_CALLS=str(calls or self.calls_path),
            DOTEVAL_TEST_SLEEP=str(self.sleep if sleep is None else sleep),
        )
        if gate is not None:
            env["DOTEVAL_TEST_GATE"] = str(gate)
        return subprocess.Popen(
            [PY, "-m", "pytest", *self.args(name, store, *extra)],
            cwd=self.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            umask=umask,
        )

    def run(self, name: str, store: Path | None, *extra: str) -> str:
        """A whole run that must pass; its output."""
        code, out = finish(self.popen(name, store, *extra))
        assert code == 0, out
        return out

    def calls(self) -> list[str]:
        return read_lines(self.calls_path)

    def wait_for_calls(self, at_least: int, proc: subprocess.Popen[str], timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(self.calls())
            if count >= at_least:
                return count
            if proc.poll() is not None:
                out = proc.communicate()[0]
                pytest.fail(f"the run ended before {at_least} calls (rc={proc.returncode}):\n{out}")
            time.sleep(0.002)
        proc.kill()
        pytest.fail(f"no {at_least} calls within {timeout}s")


# -- the CLI ------------------------------------------------------------------------------------


class Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _check(args: tuple[str, ...], done: Done, ok: bool | None) -> Done:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr + done.stdout
    if ok is not None:
        assert (done.returncode == 0) == ok, (args, done.returncode, done.stdout, done.stderr)
    return done


def run_cli(store: Path, *args: str, ok: bool | None = True, timeout: float = 300, umask: int = -1) -> Done:
    """``python -m doteval ARGS --store STORE`` in a subprocess; ``ok``: expect exit 0, non-zero, or either (None)."""
    proc = subprocess.run(
        [PY, "-m", "doteval", *args, "--store", str(store)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        umask=umask,
    )
    return _check(args, Done(proc.returncode, proc.stdout, proc.stderr), ok)


def cli(store: Path, *args: str, ok: bool | None = True) -> Done:
    """The same command line through ``doteval._cli.main`` in this process (faster, for checks)."""
    from doteval._cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([*args, "--store", str(store)])
        except SystemExit as e:
            code = e.code
    return _check(args, Done(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue()), ok)


def cli_json(store: Path, *args: str, ok: bool | None = True) -> Any:
    """``cli(store, *args, "--json")``, its output parsed."""
    return json.loads(cli(store, *args, "--json", ok=ok).stdout)


def run_cli_json(store: Path, *args: str) -> Any:
    """``run_cli(store, *args, "--json")``, its output parsed."""
    return json.loads(run_cli(store, *args, "--json").stdout)


def read_export(store: Path, spec: str) -> str:
    """The same rows as ``doteval export SPEC -f jsonl``, read in this process."""
    st = Store(store)
    out = io.StringIO()
    export_rows(st, resolve(st, spec), "jsonl", out)
    return out.getvalue()


# -- store files --------------------------------------------------------------------------------


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a store (links copied as links); a copy keeps mtimes but gets new ctimes, like an rsync."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def loose_path(store: Path, oid: str) -> Path:
    return store / "objects" / oid[:2] / oid[2:]


def flip(path: Path, pos: int, mask: int = 0x40) -> int:
    """XOR the byte at ``pos`` of ``path`` with ``mask``, in place; returns the byte it was."""
    mode = path.stat().st_mode
    if not mode & stat.S_IWUSR:  # a store may publish read-only files
        path.chmod(mode | stat.S_IWUSR)
    with open(path, "r+b") as f:
        f.seek(pos)
        old = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([old ^ mask]))
    return old


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry under ``root`` (not following links): kind, mtime, content."""
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        if path.is_symlink():
            data = os.readlink(path).encode()
        elif path.is_file():
            data = path.read_bytes()
        else:
            data = b""
        out[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, data)
    return out


def read_only_mount_works(tmp_path: Path) -> bool:
    """Whether this machine can bind-mount a folder read-only (root, unshare and mount)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"mount --bind -o ro {probe} {probe} && ! touch {probe}/x 2>/dev/null"
    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True).returncode == 0
    except OSError:
        return False


#: The evaluation header of a hand-written run journal (tests of journals, recovery, the repository).
JOURNAL_HEADER = {
    "node_id": "tests/test_math.py::test_add",
    "fingerprint": "f" * 64,
    "params_digest": "p" * 64,
    "params": {"model": "m"},
    "unfingerprintable": [],
    "columns": ["prompt", "expected"],
    "code": None,
    "line": 1,
}
