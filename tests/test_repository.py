"""The repository layer: one transaction through which every change to an experiment goes."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from storekit import JOURNAL_HEADER

import doteval
from doteval._objects import Store
from doteval._objects.encoding import encode
from doteval._repository.experiments import delete_experiment, undelete_experiment
from doteval._repository.repository import Repository
from doteval._repository.run_journal import RunRecorder
from doteval._repository.sample_tables import load_view
from doteval.errors import LockedError
from doteval.storage import StorageBackend

PACKAGE = Path(doteval.__file__).parent
REPOSITORY = PACKAGE / "_repository" / "repository.py"


def _is_refs(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "refs") or (
        isinstance(node, ast.Attribute) and node.attr == "refs"
    )


def repository_calls(source: str) -> list[str]:
    """Calls in ``source`` that only the repository may make: taking an experiment lock
    (``X.lock(...)``, ``ExperimentLock(...)``), writing ref records (``refs.append``,
    ``refs.adopt``) or removing a sealed journal (``store.sealed``), each as ``line: call``."""
    tree = ast.parse(source)
    # A store's ``lock(name)`` method makes its lock object (a file lock, a memory lock):
    # that is the factory the repository calls, not a lock taken.
    factories = {
        id(call)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name == "lock"
        for call in ast.walk(fn)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in factories:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if (
            (isinstance(func, ast.Attribute) and name in ("lock", "sealed"))
            or name == "ExperimentLock"
            or (isinstance(func, ast.Attribute) and name in ("append", "adopt") and _is_refs(func.value))
        ):
            found.append(f"{node.lineno}: {ast.unparse(func)}(...)")
    return found


def test_only_the_repository_takes_experiment_locks_and_writes_ref_records() -> None:
    offenders = {
        str(path.relative_to(PACKAGE.parent)): calls
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != REPOSITORY and (calls := repository_calls(path.read_text()))
    }
    assert offenders == {}
    assert repository_calls(REPOSITORY.read_text())  # the check sees the calls it looks for


@pytest.mark.parametrize(
    "source",
    [
        "with store.lock(name):\n    pass",
        "lock = self.store.lock(self.name)",
        "ExperimentLock(root, 'x').acquire()",
        "locks.ExperimentLock(root, 'x')",
        "store.refs.append(name, m, expected=None, op='run')",
        "self.repo.refs.adopt(name, records, old)",
        "refs.append(name, m, expected=None, op='run')",
        "self.store.sealed(path)",
    ],
)
def test_the_check_finds_a_lock_or_a_ref_write_added_elsewhere(source: str) -> None:
    assert len(repository_calls(source)) == 1
    assert repository_calls("items.append(1)\nthreading.Lock()\nrefs.read(name)") == []


# -- every writer recovers the same way: seal dead runs, then join lines --------------------

HEADER = JOURNAL_HEADER


def _result(i: int) -> bytes:
    scores = [{"name": "score", "value": True, "metrics": ["accuracy"]}]
    return encode({"type": "result", "v": 1, "scores": scores, "prompt": f"p{i}", "response": "r",
                   "error": None, "metadata": {}})  # fmt: skip


def _run(store: Store, items: list[int]) -> None:
    """A run of experiment ``exp`` evaluating ``items``, as ``ExperimentRun`` makes it."""
    with Repository(store).transaction("exp", purpose="run") as tx:
        recorder = RunRecorder(store, "exp", tx.head)
        recorder.start()
        recorder.begin_evaluation(0, HEADER)
        for i in items:
            recorder.record_result(0, True, encode((f"p{i}", "e")), 0, _result(i))
        recorder.end_evaluation(0, "completed")
        tx.seal_run(recorder, "completed")


def _two_joinable_lines(tmp_path: Path) -> Store:
    """Experiment ``exp`` run on two machines from a common run, the stores copied together:
    two heads of the same code and params, which can be joined (items 0..3 in all)."""
    a, b = tmp_path / "a", tmp_path / "b"
    store = Store(a)
    store.create()
    _run(store, [0, 1])
    shutil.copytree(a, b)
    _run(store, [2])
    _run(Store(b), [3])
    for sub in ("objects", "packs", "refs"):  # what an rsync of the two machines copies
        if (b / sub).is_dir():
            shutil.copytree(b / sub, a / sub, dirs_exist_ok=True)
    state = store.refs.read("exp")
    assert state is not None and state.diverged
    return store


def _items(store: Store) -> int:
    state = store.refs.read("exp")
    assert state is not None and not state.diverged
    manifest = Repository(store).head("exp").manifest
    assert manifest is not None
    return len(load_view(store, manifest.evaluations[0]))


def test_delete_joins_the_lines_first_as_every_writer_does(tmp_path: Path) -> None:
    """Before the repository layer, delete sealed dead runs but did not join lines: the
    experiment stayed with two heads, and undelete brought back one line."""
    store = _two_joinable_lines(tmp_path)
    delete_experiment(store, "exp")
    undelete_experiment(store, "exp")
    assert _items(store) == 4


def test_save_session_keeps_the_samples_of_both_lines(tmp_path: Path) -> None:
    """``save_session`` of everything ``load_session`` gave keeps every sample; it used to
    save the newest line only, leaving the other as a second head."""
    store = _two_joinable_lines(tmp_path)
    backend = StorageBackend(store)
    data = backend.load_session("exp")
    assert data is not None and len(data["results"]) == 4  # a reader joins in memory
    backend.save_session("exp", data)
    assert _items(store) == 4


def test_a_transaction_holds_the_lock_until_it_ends(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.create()
    repo = Repository(store)
    tx = repo.begin("exp", purpose="run")
    with pytest.raises(LockedError, match="experiment 'exp'"):
        repo.begin("exp", purpose="delete")
    assert repo.settle("exp") is False  # a pull leaves a held experiment alone
    tx.close()
    with repo.transaction("exp", purpose="delete") as again:
        assert again.head.state is None
