"""An error reads the same everywhere (issue 12): the same ``DotevalError`` prints the same
``Error: ...`` / ``hint: ...`` lines under ``pytest``, ``doteval run`` and the other ``doteval``
commands, exits 1, and pytest adds no line of its own after it (no ``Exit:``, no ``!!!``).

Real processes: ``python -m pytest`` and ``python -m doteval`` in a project folder."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from storekit import read_only_mount_works

from doteval.errors import ChangedEvaluationError, LockedError

PY = sys.executable
FLAGS = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]

ONE = 'from doteval import foreach\n\n\n@foreach("x", [1, 2])\ndef eval_one(x):\n    return True\n'

# An evaluation whose last sample turns the store's refs folder into a file: the samples are
# recorded, and sealing the run at the session's end fails on a damaged store.
SEAL_FAILS = """
import os
import shutil

from doteval import foreach


@foreach("x", [1, 2])
def eval_seal(x):
    if x == 2:
        refs = os.path.join(os.environ["DOTEVAL_STORE"], "refs")
        shutil.rmtree(refs, ignore_errors=True)
        with open(refs, "w") as f:
            f.write("not a folder")
    return True
"""

# A fixture value decides results: changed, the run stops inside the evaluation's call.
PARAMS = """
import os

import pytest

from doteval import foreach


@pytest.fixture
def model():
    return {"temperature": float(os.environ.get("TEMPERATURE", "0"))}


@foreach("x", [1, 2])
def eval_params(x, model):
    return True
"""

HOLD_LOCK = """
import sys
from pathlib import Path

from doteval._objects.locks import ExperimentLock

ExperimentLock(Path(sys.argv[1]), sys.argv[2]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "eval_one.py").write_text(ONE)
    return folder


def run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, COLUMNS="200", DOTEVAL_PROGRESS="off", PYTHONDONTWRITEBYTECODE="1", **env)
    environ.pop("NO_COLOR", None)
    return subprocess.run(
        [PY, "-m", *args], cwd=folder, capture_output=True, text=True, timeout=300, env=environ
    )


def pytest_(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(folder, "pytest", *args, *FLAGS, **env)


def doteval_run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(folder, "doteval", "run", *args, *FLAGS, **env)


Runner = Callable[..., subprocess.CompletedProcess[str]]


def error_of(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The error's lines on stderr; the process exited 1 and nothing of pytest's followed them."""
    everything = done.stdout + done.stderr
    assert done.returncode == 1, everything
    for noise in ("Exit:", "!!!", "Traceback", "INTERNALERROR", "doteval: "):
        assert noise not in everything, everything
    lines = done.stderr.splitlines()
    assert lines and lines[0].startswith("Error: "), everything
    return lines


def test_error_lines_are_one_form() -> None:
    from doteval._cli.console.errors import error_lines

    error = LockedError("experiment 'e'", 42, "vm", "2026-12-04 14:21:29")
    assert error_lines(error) == [
        "Error: experiment 'e' is being run by pid 42 on vm since 2026-12-04 14:21:29",
        "hint: wait for it to finish, or stop that process",
    ]
    changed = ChangedEvaluationError("eval_x: the code changed\n    -old\n    +new", experiment="e")
    assert error_lines(changed) == ["Error: eval_x: the code changed", "    -old", "    +new"]


@pytest.fixture
def locked(project: Path, store_path: Path) -> Iterator[Path]:
    """The project's experiment ``e1`` exists, and another live process holds its lock."""
    assert pytest_(project, "eval_one.py", "--experiment", "e1").returncode == 0
    holder = subprocess.Popen(
        [PY, "-c", HOLD_LOCK, str(store_path), "e1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield project
    finally:
        holder.kill()
        holder.wait()
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()


def test_a_locked_experiment_reads_the_same_under_pytest_doteval_run_and_a_command(locked: Path) -> None:
    under_pytest = error_of(pytest_(locked, "eval_one.py", "--experiment", "e1"))
    under_run = error_of(doteval_run(locked, "eval_one.py", "--experiment", "e1"))
    under_delete = error_of(run(locked, "doteval", "delete", "e1"))
    assert under_pytest == under_run == under_delete
    assert under_pytest[0].startswith("Error: experiment 'e1' is being run by pid ")
    assert under_pytest[1:] == ["hint: wait for it to finish, or stop that process"]


@pytest.mark.parametrize("how", [pytest_, doteval_run])
def test_a_usage_error_found_by_the_run_is_the_same_error_line(
    how: Runner, project: Path, store_path: Path
) -> None:
    (project / "eval_pairs.py").write_text(
        'from doteval import foreach\n\n@foreach("a,b", [(1, 2), (1, 2, 3)])\ndef eval_pairs(a, b):\n    return True\n'
    )
    lines = error_of(how(project, "eval_pairs.py", "--experiment", "e"))
    assert lines == ["Error: dataset item 1 has 3 values for 2 columns (a, b)"], lines
    assert not list(store_path.glob("refs/*")) and not list(
        store_path.glob("journals/*/*")
    )  # nothing recorded


def test_the_original_doteval_option_is_a_usage_error_in_the_same_form(project: Path) -> None:
    done = pytest_(project, "eval_one.py", "-C", "3")
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's usage error, as documented
    assert done.stderr.splitlines() == [
        "Error: -C/--concurrent is the original doteval's option: use --concurrency N (samples in flight at once)"
    ]
    assert "ERROR:" not in done.stdout + done.stderr


@pytest.mark.parametrize("how", [pytest_, doteval_run])
def test_a_seal_that_fails_at_the_end_of_the_session_exits_1_with_the_error(
    how: Runner, project: Path, store_path: Path
) -> None:
    (project / "eval_seal.py").write_text(SEAL_FAILS)
    done = how(project, "eval_seal.py", "--experiment", "s")
    lines = error_of(done)
    assert lines[0].startswith("Error: damaged store file: "), lines
    assert lines[1:] == ["hint: run `doteval fsck` to list every damaged file"]
    assert "doteval summary" not in done.stdout  # the error alone: the run was not recorded


def test_an_error_inside_an_evaluation_stops_the_session_with_no_pytest_line(project: Path) -> None:
    (project / "eval_params.py").write_text(PARAMS)
    assert pytest_(project, "eval_params.py", "--experiment", "p").returncode == 0
    for how in (pytest_, doteval_run):
        done = how(project, "eval_params.py", "--experiment", "p", TEMPERATURE="1")
        lines = error_of(done)
        assert lines[0] == (
            "Error: eval_params.py::eval_params: the params changed since experiment 'p' last ran; "
            "nothing was evaluated."
        )
        assert "    model.temperature: 0.0 -> 1.0" in lines
        assert "Interrupted" not in done.stdout and "passed" not in done.stdout  # not a test result


def test_the_error_is_said_once_without_pytests_terminal(locked: Path) -> None:
    done = pytest_(locked, "eval_one.py", "--experiment", "e1", "-p", "no:terminal")
    lines = error_of(done)
    assert lines[0].startswith("Error: experiment 'e1' is being run by pid ")
    assert len(lines) == 2 and done.stdout == ""


@pytest.mark.parametrize("how", ["pytest", "doteval run"])
def test_a_run_into_a_read_only_store_is_refused_in_the_same_form(
    how: str, project: Path, store_path: Path, tmp_path: Path
) -> None:
    if not read_only_mount_works(tmp_path):
        pytest.skip("needs unshare and mount (root) for a read-only bind mount")
    assert pytest_(project, "eval_one.py", "--experiment", "e1").returncode == 0
    command = [PY, "-m", *how.split(), "eval_one.py", "--experiment", "e1", *FLAGS]
    script = f"mount --bind -o ro {store_path} {store_path} && exec {shlex.join(command)}"
    environ = dict(os.environ, COLUMNS="200", DOTEVAL_PROGRESS="off", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
    )
    assert error_of(done) == [
        f"Error: the store {store_path} is on a read-only file system: a run cannot record its results there",
        "hint: run into a store you can write (--store PATH); reading this one works as it is",
    ]


# The last sample makes the store's folder immutable (root's chattr +i): sealing the run then
# meets a PermissionError, which is a store the user may not write, not a bug.
SEAL_NOT_PERMITTED = """
import os
import subprocess

from doteval import foreach


@foreach("x", [1, 2])
def eval_locked_down(x):
    if x == 2:
        subprocess.run(["chattr", "+i", os.environ["DOTEVAL_STORE"]], check=True)
    return True
"""


def _chattr_works(folder: Path) -> bool:
    probe = folder / "probe"
    probe.mkdir()
    try:
        if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
            return False
    except OSError:
        return False
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    return True


def test_a_seal_refused_by_the_file_system_is_a_doteval_error(
    project: Path, store_path: Path, tmp_path: Path
) -> None:
    if not _chattr_works(tmp_path):
        pytest.skip("needs chattr +i (root, on a file system with attributes)")
    (project / "eval_locked_down.py").write_text(SEAL_NOT_PERMITTED)
    store_path.mkdir()
    try:
        done = pytest_(project, "eval_locked_down.py", "--experiment", "l")
    finally:
        subprocess.run(["chattr", "-i", str(store_path)], check=True)
    lines = error_of(done)
    assert lines[0].startswith(f"Error: permission denied: {store_path}/"), lines
    assert lines[1].startswith("hint: "), lines


UNENCODABLE = """
from doteval import foreach


class Thing:
    pass


@foreach("x", [Thing()])
def eval_thing(x):
    return True
"""


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_error_met_while_evaluating_or_planning_reads_the_same(
    dry_run: bool, project: Path, store_path: Path
) -> None:
    (project / "eval_thing.py").write_text(UNENCODABLE)
    done = pytest_(project, "eval_thing.py", "--experiment", "t", *(["--dry-run"] if dry_run else []))
    assert error_of(done) == [
        "Error: dataset item 0, column 'x': cannot encode a value of type 'Thing'; dataset items must be "
        "plain data (str, numbers, lists, dicts, dataclasses)"
    ]
