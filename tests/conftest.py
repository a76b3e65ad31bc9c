"""Shared fixtures: every test gets its own store under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _store_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / ".doteval-store"
    monkeypatch.setenv("DOTEVAL_STORE", str(store))
    monkeypatch.setenv("DOTEVAL_PROGRESS", "off")
    monkeypatch.delenv("NO_COLOR", raising=False)
    # Every pytest a test starts (a run, `doteval run`) would load the test extra's hypothesis
    # plugin, a second of CPU each, that no generated project uses (pytester drops the variable:
    # it is set again below).
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest")
    return store


@pytest.fixture
def store_path(_store_in_tmp: Path) -> Path:
    return _store_in_tmp


@pytest.fixture
def wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output laid out for 200 columns (``COLUMNS``): no rich table wraps a node id."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytest's ``pytester``, with the runs its tests start spared the hypothesis plugin too."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest")
    return pytester
