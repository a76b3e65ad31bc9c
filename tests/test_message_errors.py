"""An error given as a message, ``Result(error="...")``, has no exception type.

Its recorded type is ``""`` wherever the data is handed out (``load_session``,
``show --errors --json``, ``export``); where errors are listed by type for a
reader, it is named by its source, ``Result(error=...)``, and never given a
made-up class name such as ``Error``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doteval._cli import main
from doteval.storage import get_storage_backend

EVAL = """
from doteval import Result, foreach


@foreach("n", [1, 2, 3])
def eval_n(n):
    if n == 1:
        return Result(prompt=str(n), response="", error="empty response")
    if n == 2:
        raise ValueError("bad n")
    return Result(True, prompt=str(n), response="ok")
"""


@pytest.fixture
def store(pytester: pytest.Pytester, store_path: Path) -> Path:
    pytester.makepyfile(eval_n=EVAL)
    pytester.runpytest("eval_n.py", "--experiment", "msg", "--max-retries", "0")
    return store_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as e:
        assert not e.code, capsys.readouterr()
    return capsys.readouterr().out


def test_load_session_and_show_errors_name_the_type_alike(
    store: Path, capsys: pytest.CaptureFixture[str], wide_output: None
) -> None:
    data = get_storage_backend(store).load_session("msg")
    assert data is not None
    types = sorted((r["error"]["type"], r["error"]["message"]) for r in data["results"] if r["error"])
    assert types == [("", "empty response"), ("ValueError", "bad n")]

    groups = json.loads(cli(capsys, "show", "msg", "--errors", "--json", "--store", str(store)))["errors"]
    assert sorted(groups) == ["", "ValueError"]  # the recorded types, as load_session has them

    text = cli(capsys, "show", "msg", "--errors", "--store", str(store))
    assert "Result(error=...) (1)" in text and "ValueError (1)" in text
    assert "Error (1)" not in text.replace("ValueError (1)", "")

    key = groups[""][0]["key"][:12]
    sample = cli(capsys, "show", "msg", "--sample", key, "--store", str(store))
    assert "Error: empty response" in sample and "Error: Error" not in sample
    full = cli(capsys, "show", "msg", "--full", "--store", str(store))
    assert "empty response" in full and "Error: empty" not in full and "ValueError: bad n" in full


def test_the_cli_has_its_commands_after_its_modules_are_imported_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pytester's in-process runs drop the modules a test imported; the next ``main`` imports
    the CLI again, and every command must be registered on the new app (it once took the
    stale command modules from the package and answered "No such command 'show'")."""
    import sys

    with pytest.raises(SystemExit):
        main(["--help"])  # the CLI imported once
    for name in [m for m in sys.modules if m.startswith("doteval._cli.")]:
        monkeypatch.delitem(sys.modules, name)  # put back after the test
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("list", "show", "diff", "gc", "push")), out
