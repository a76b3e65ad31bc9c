"""The public way to build a report from Python: ``doteval.storage``'s ``write_report`` and
``report_html`` give the page of ``doteval report``, read the store without writing it, and
keep jinja2 out of a script that never reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_report import cli, islands, record

from doteval._objects import Store
from doteval.errors import ExperimentNotFoundError, UsageError
from doteval.storage import get_storage_backend


@pytest.fixture
def two_experiments(store_path: Path) -> Store:
    """``base``: two runs (40 items, then 60); ``cand``: one run of another model version."""
    store = Store(store_path)
    record(store, "base", 40, 1)
    record(store, "base", 60, 1)
    record(store, "cand", 60, 2)
    return store


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _without_generated(summary: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in summary.items() if k != "generated"}


def test_write_report_writes_the_page_of_doteval_report(
    two_experiments: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _tree(two_experiments.root)
    storage = get_storage_backend(two_experiments.root)

    path = storage.write_report("base")
    assert path == Path("doteval-report-base.html")
    mine = islands((tmp_path / path).read_text(encoding="utf-8"))
    (tmp_path / path).rename(tmp_path / "mine.html")
    code, out = cli("report", "base")
    assert code == 0, out
    theirs = islands((tmp_path / path).read_text(encoding="utf-8"))
    assert _without_generated(mine[0]) == _without_generated(theirs[0])
    assert mine[1] == theirs[1]

    diff = storage.write_report("base~1", tmp_path / "diff.html", vs="cand", seed=3)
    assert diff == tmp_path / "diff.html"
    summary, _ = islands(diff.read_text(encoding="utf-8"))
    assert summary["kind"] == "diff" and summary["diff"]["seed"] == 3
    assert storage.report_html("base", vs="cand").startswith("<!doctype html>")

    assert _tree(two_experiments.root) == before  # a report only reads the store
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_report_that_cannot_be_written_is_refused_and_leaves_nothing(
    two_experiments: Store,
    tmp_path: Path,
) -> None:
    storage = get_storage_backend(two_experiments.root)
    with pytest.raises(UsageError, match="does not exist"):
        storage.write_report("base", tmp_path / "no" / "such" / "r.html")
    with pytest.raises(UsageError, match="is a folder"):
        storage.write_report("base", tmp_path)
    with pytest.raises(ExperimentNotFoundError):
        storage.write_report("nope", tmp_path / "nope.html")
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob(".*.tmp"))


def test_importing_the_storage_api_leaves_out_jinja2() -> None:
    code = "import sys, doteval.storage; print('jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
