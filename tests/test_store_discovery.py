"""Which store a command uses: ``--store`` (before or after the command), ``$DOTEVAL_STORE``,
else the nearest ``.doteval`` in the current folder or a parent, as git finds ``.git``.

Runs and commands are real subprocesses started in a project's subfolders, with
``DOTEVAL_STORE`` unset (conftest.py sets it for every other test).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from storekit import EVAL, PYTEST_FLAGS, Project

PY = sys.executable


@pytest.fixture(autouse=True)
def _no_store_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOTEVAL_STORE", raising=False)


def _no_store_above(path: Path) -> None:
    if any((p / ".doteval").exists() for p in path.parents):
        pytest.skip(f"a .doteval above {path} on this machine would be found first")


def run(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200", DOTEVAL_PROGRESS="off", DOTEVAL_TEST_CALLS=str(cwd / "calls.txt"))
    done = subprocess.run([PY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert (done.returncode == 0) == ok, (args, done.returncode, done.stdout, done.stderr)
    return done


def doteval(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return run(cwd, "-m", "doteval", *args, ok=ok)


def experiments(cwd: Path, *args: str) -> tuple[str, list[str]]:
    import json

    doc = json.loads(doteval(cwd, *args, "list", "--json").stdout)
    return doc["store"], [e["name"] for e in doc["experiments"]]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    _no_store_above(tmp_path)
    proj = Project(tmp_path / "project", 3)
    (proj.path / "evals" / "deep").mkdir(parents=True)
    return proj


def test_commands_in_a_subfolder_use_the_project_store(project: Project) -> None:
    root = project.path
    run(root, "-m", "pytest", "eval_x.py", "--experiment", "top", *PYTEST_FLAGS)
    assert (root / ".doteval" / "VERSION").is_file()  # the first run created ./.doteval
    deep = root / "evals" / "deep"
    assert experiments(deep) == (str(root / ".doteval"), ["top"])
    assert "Session: top" in doteval(deep, "show", "top").stdout
    # A run from the subfolder records into the same store, by pytest or by doteval run.
    run(deep, "-m", "pytest", "../../eval_x.py", "--experiment", "from_pytest", *PYTEST_FLAGS)
    doteval(deep, "run", "../../eval_x.py", "--experiment", "from_run", *PYTEST_FLAGS)
    assert sorted(experiments(root)[1]) == ["from_pytest", "from_run", "top"]
    assert not (deep / ".doteval").exists() and not (root / "evals" / ".doteval").exists()


def test_dry_run_and_reads_create_no_store(project: Project) -> None:
    root = project.path
    out = doteval(root, "run", "eval_x.py", "--experiment", "e", "--dry-run", *PYTEST_FLAGS).stdout
    assert "evaluate 3" in out
    run(root, "-m", "pytest", "eval_x.py", "--experiment", "e", "--dry-run", *PYTEST_FLAGS)
    assert not (root / ".doteval").exists()
    for command in (["list"], ["log"], ["show", "e"], ["diff", "a", "b"], ["export", "e"], ["gc"], ["fsck"]):
        done = doteval(root / "evals", *command, ok=False)
        lines = done.stderr.strip().splitlines()
        assert lines == [
            f"Error: no doteval store found in {root / 'evals'} or its parents; "
            "run an evaluation first, or pass --store"
        ], (command, done.stderr)
    assert not (root / ".doteval").exists() and not (root / "evals" / ".doteval").exists()


def test_global_store_option_before_the_command(project: Project, tmp_path: Path) -> None:
    store = tmp_path / "elsewhere"
    doteval(project.path, "--store", str(store), "run", "eval_x.py", "--experiment", "g", *PYTEST_FLAGS)
    assert (store / "VERSION").is_file() and not (project.path / ".doteval").exists()
    assert experiments(tmp_path, "--store", str(store)) == (str(store), ["g"])
    assert "Session: g" in doteval(tmp_path, "--store", str(store), "show", "g").stdout
    # After the command it wins over the one before it, as the nearer option.
    other = tmp_path / "other"
    doteval(project.path, "--store", str(store), "run", "eval_x.py", "-e", "h", "--store", str(other))
    assert experiments(tmp_path, "--store", str(other))[1] == ["h"]


def test_the_variable_wins_over_a_store_found_above(project: Project, tmp_path: Path) -> None:
    run(project.path, "-m", "pytest", "eval_x.py", "--experiment", "top", *PYTEST_FLAGS)
    os.environ["DOTEVAL_STORE"] = str(tmp_path / "named")  # undone by the autouse monkeypatch
    doteval(project.path, "run", "eval_x.py", "-e", "named", *PYTEST_FLAGS)
    assert experiments(project.path / "evals")[1] == ["named"]


def test_discovery_stops_at_a_filesystem_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from doteval._objects.store import find_store

    _no_store_above(tmp_path)
    (tmp_path / ".doteval").mkdir()
    mounted = tmp_path / "mnt"
    (mounted / "sub").mkdir(parents=True)
    assert find_store(mounted / "sub") == tmp_path / ".doteval"
    real_stat = os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        result = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        if str(path).startswith(str(mounted)):  # another filesystem mounted on mnt/
            fields = list(result[:10])
            fields[2] = result.st_dev + 1
            return os.stat_result(fields)
        return result

    monkeypatch.setattr(os, "stat", stat)
    assert find_store(mounted / "sub") is None
    (mounted / ".doteval").mkdir()
    assert find_store(mounted / "sub") == mounted / ".doteval"


def test_a_run_with_no_store_anywhere_creates_one_in_the_current_folder(tmp_path: Path) -> None:
    _no_store_above(tmp_path)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    (sub / "eval_x.py").write_text(EVAL.format(n=2, tag="t"))
    (sub / "conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef model():\n"
        "    class M:\n        def generate(self, p):\n            return p.upper()\n    return M()\n"
    )
    doteval(sub, "run", "eval_x.py", "-e", "first", *PYTEST_FLAGS)
    assert (sub / ".doteval" / "VERSION").is_file()
    assert not (tmp_path / "a" / ".doteval").exists()


# -- push and pull name a project folder by its store ------------------------------------------


@pytest.mark.parametrize("method", [[], ["--no-rsync"]])
def test_push_to_a_project_folder_writes_into_its_store(
    project: Project, tmp_path: Path, method: list[str]
) -> None:
    from storekit import cli, cli_json

    mine = tmp_path / "mine"
    project.run("alpha", mine)
    theirs = Project(tmp_path / "theirs", 2)
    theirs.run("beta", None, f"--store={theirs.path / '.doteval'}")
    before = sorted(p.name for p in theirs.path.iterdir())
    cli(mine, "push", str(theirs.path), *method)
    assert sorted(p.name for p in theirs.path.iterdir()) == before  # nothing beside the store
    names = [e["name"] for e in cli_json(theirs.path / ".doteval", "list")["experiments"]]
    assert sorted(names) == ["alpha", "beta"]
    # pull names the project folder the same way
    cli(tmp_path / "copy", "pull", str(theirs.path), *method)
    assert sorted(e["name"] for e in cli_json(tmp_path / "copy", "list")["experiments"]) == ["alpha", "beta"]
    out = cli(mine, "push", str(theirs.path), "--print").stdout
    assert str(theirs.path / ".doteval") in out


def test_push_refuses_a_folder_that_is_not_a_store(project: Project, tmp_path: Path) -> None:
    from storekit import cli

    mine = tmp_path / "mine"
    project.run("alpha", mine)
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    done = cli(mine, "push", str(folder), ok=False)
    assert done.stderr.splitlines()[0] == f"Error: {folder} is not a doteval store, and not empty"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    cli(mine, "push", str(tmp_path / "new" / "store"))  # a new folder becomes a store
    assert (tmp_path / "new" / "store" / "VERSION").is_file()
