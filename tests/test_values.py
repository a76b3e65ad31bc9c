"""Values a model or a user can produce that the readers must survive: formulas in CSV cells,
one huge unbroken token, dict keys that collide as JSON keys, lone surrogates, ints too big to
print; and output paths that cannot be written (issue 10, items 3, 6, 11, 13, 14, 16).

Results are recorded by driving the runner in this process; the commands run through
``doteval._cli.main`` (``storekit.cli``) or as ``python -m doteval`` subprocesses, whose stdout
is a real UTF-8 pipe (where a lone surrogate used to end the command with a traceback)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from storekit import cli, read_export, run_cli

from doteval import Result, foreach
from doteval._objects import Store
from doteval._objects.encoding import decode, encode
from doteval._running.experiment_run import ExperimentRun, RunOptions
from doteval._running.fingerprint import params_fingerprint
from doteval._running.foreach import get_spec
from doteval._running.retries import RetryPolicy
from doteval.errors import EncodingError

NODE = "eval_values.py::eval_values"


def record(store: Path, name: str, outcomes: list[Any], items: list[Any] | None = None) -> None:
    """One run whose sample ``i`` returns ``outcomes[i]`` (or raises it, when an exception)."""

    @foreach("i", items if items is not None else list(range(len(outcomes))))
    def eval_values(i):
        value = outcomes[i if isinstance(i, int) and i < len(outcomes) else 0]
        if isinstance(value, BaseException):
            raise value
        return value

    run = ExperimentRun(Store(store), RunOptions(experiment=name, retry=RetryPolicy(max_retries=0)))
    run.open()
    try:
        spec = get_spec(eval_values)
        assert spec is not None
        run.run_evaluation(run.prepare(NODE, spec), fixtures={}, params=params_fingerprint({}))
    finally:
        run.close()


def exported(store: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_export(store, name).splitlines()]


def piped(store: Path, *args: str) -> str:
    """``python -m doteval ARGS`` with stdout a UTF-8 pipe; its stdout (the stored traceback
    of an errored sample is data here, so storekit's no-traceback check does not apply)."""
    proc = subprocess.run(
        [sys.executable, "-m", "doteval", *args, "--store", str(store)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
    return proc.stdout


def litter(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- 3: formulas in CSV


FORMULAS = ['=HYPERLINK("http://x","y")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_csv_export_neutralizes_formulas_and_raw_csv_keeps_them(store_path: Path, tmp_path: Path) -> None:
    record(
        store_path,
        "f",
        [
            Result(scores={"score": -0.5}, prompt=text, response=text, metadata={"m": text})
            for text in FORMULAS
        ],
    )
    cli(store_path, "export", "f", "-f", "csv", "-o", str(tmp_path / "safe.csv"))
    cli(store_path, "export", "f", "-f", "csv", "--raw-csv", "-o", str(tmp_path / "raw.csv"))
    with open(tmp_path / "safe.csv", newline="", encoding="utf-8") as f:
        safe = list(csv.DictReader(f))
    with open(tmp_path / "raw.csv", newline="", encoding="utf-8") as f:
        raw = list(csv.DictReader(f))
    assert sorted(r["response"] for r in safe) == sorted("'" + t for t in FORMULAS)
    assert sorted(r["prompt"] for r in safe) == sorted("'" + t for t in FORMULAS)
    assert sorted(r["response"] for r in raw) == sorted(FORMULAS)
    for row in safe:  # a number is not text: written as it is
        assert row["score.score"] == "-0.5"
        text = [v for k, v in row.items() if k != "score.score"]
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in text)
    assert cli(store_path, "export", "f", "--raw-csv", ok=False).returncode == 2  # CSV only
    # JSON keeps the exact text
    assert sorted(r["response"] for r in exported(store_path, "f")) == sorted(FORMULAS)


# ---------------------------------------------------------------- 6: one huge token


def test_show_full_cuts_a_huge_token_and_says_its_length(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 20_000_000
    record(store_path, "huge", [Result(True, response="x" * size, prompt="p" * size)])
    from rich.table import Table

    add_row = Table.add_row

    def spy(self: Table, *cells: Any, **kw: Any) -> None:
        # rich is never handed the whole token (folding it would take hours: fail at once)
        texts = [c if isinstance(c, str) else getattr(c, "plain", "") for c in cells]
        assert max(map(len, texts), default=0) < 2_000
        add_row(self, *cells, **kw)

    monkeypatch.setattr(Table, "add_row", spy)
    out = cli(store_path, "show", "huge", "--full", ok=None).stdout
    assert len(out) < 50_000
    assert out.count(f"({size:,}") == 2  # "… (20,000,000 characters in all)", maybe wrapped
    # the same for `diff --samples`, which lists both responses of a changed sample
    record(store_path, "huge2", [Result(False, response="y" * size)])
    out = cli(store_path, "diff", "huge", "huge2", "--samples", ok=None).stdout
    assert len(out) < 50_000
    assert out.count(f"({size:,}") == 2  # "… (20,000,000 characters in all)", maybe wrapped
    # export keeps the value whole
    assert [len(r["response"]) for r in exported(store_path, "huge")] == [size]


# ---------------------------------------------------------------- 11: colliding keys


def test_keys_that_collide_as_json_keys_are_all_exported(store_path: Path, tmp_path: Path) -> None:
    record(store_path, "keys", [Result(True, response={1: "a", "1": "b"}, metadata={"k": {2: "x"}})])
    (row,) = exported(store_path, "keys")
    assert row["response"] == [[1, "a"], ["1", "b"]]  # both kept, as [key, value] pairs
    assert row["metadata"] == {"k": {"2": "x"}}  # keys that do not collide stay an object
    cli(store_path, "export", "keys", "-f", "json", "-o", str(tmp_path / "k.json"))
    assert json.loads((tmp_path / "k.json").read_text())[0]["response"] == [[1, "a"], ["1", "b"]]
    cli(store_path, "export", "keys", "-f", "csv", "-o", str(tmp_path / "k.csv"))
    with open(tmp_path / "k.csv", newline="", encoding="utf-8") as f:
        assert json.loads(next(csv.DictReader(f))["response"]) == [[1, "a"], ["1", "b"]]
    doc = json.loads(cli(store_path, "show", "keys", "--full", "--json").stdout)
    assert doc["samples"][0]["response"] == [[1, "a"], ["1", "b"]]


# ---------------------------------------------------------------- 13: lone surrogates


def test_lone_surrogates_are_stored_and_shown_exported_reported_escaped(
    store_path: Path, tmp_path: Path
) -> None:
    record(store_path, "s", [Result(True, response="a\ud800b", prompt="\udcff"), ValueError("bad \udcff")])
    rows = exported(store_path, "s")  # stored faithfully
    assert [r["response"] for r in rows] == ["a\ud800b", None]
    assert rows[1]["error"]["message"] == "bad \udcff"

    for args in (["show", "s", "--full"], ["show", "s", "--errors"], ["show", "s", "--full", "--json"]):
        assert "\\udcff" in piped(store_path, *args), args  # no UnicodeEncodeError
    assert "a\\ud800b" in piped(store_path, "show", "s", "--sample", rows[0]["sample_key"][:8])
    samples = json.loads(piped(store_path, "show", "s", "--full", "--json"))["samples"]
    assert sorted(str(s["response"]) for s in samples) == ["None", "a\ud800b"]  # JSON's own escape

    for fmt in ("jsonl", "json", "csv"):
        stdout = piped(store_path, "export", "s", "-f", fmt)
        out = tmp_path / f"s.{fmt}"
        piped(store_path, "export", "s", "-f", fmt, "-o", str(out))
        text = out.read_text(encoding="utf-8")  # valid UTF-8
        assert "a\\ud800b" in text and "bad \\udcff" in text and "a\\ud800b" in stdout
        if fmt == "jsonl":
            assert [json.loads(line)["response"] for line in text.splitlines()] == ["a\ud800b", None]
        if fmt == "json":  # the escape is JSON's own: the exact string comes back
            assert json.loads(text)[1]["error"]["message"] == "bad \udcff"
    piped(store_path, "report", "s", "-o", str(tmp_path / "s.html"))
    assert "\\ud800" in (tmp_path / "s.html").read_text(encoding="utf-8")
    assert litter(tmp_path) == []


# ---------------------------------------------------------------- 14: ints too big to print


def test_ints_up_to_the_digit_limit_round_trip_and_bigger_ones_are_refused() -> None:
    for n in (10**4300 - 1, -(10**4300 - 1), 7, -7):
        assert decode(encode(n)) == n
        assert decode(encode({"n": [n]})) == {"n": [n]}
    assert encode(10**4300 - 1) == b"i" + b"9" * 4300 + b";"  # the same bytes as ever
    with pytest.raises(EncodingError, match=r"more than 4300 digits at \['n'\]\[1\]"):
        encode({"n": [1, 10**5000]})
    with pytest.raises(EncodingError, match="more than 4300 digits"):
        encode({10**5000: 1})  # the error message itself never prints the int
    with pytest.raises(EncodingError):
        encode(-(10**4300))


def test_a_result_or_item_with_a_huge_int_is_one_encoding_error(store_path: Path) -> None:
    with pytest.raises(EncodingError, match=r"cannot be stored: .*'scores'.*more than 4300 digits"):
        record(store_path, "big", [Result(scores={"n": 10**5000})])
    with pytest.raises(EncodingError, match=r"dataset item 0, column 'i': an int of more than 4300 digits"):
        record(store_path, "item", [Result(True)], items=[10**5000])


def test_a_huge_int_through_pytest_is_one_line(tmp_path: Path, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        eval_big="""
from doteval import Result, foreach

@foreach("i", [1, 2])
def eval_big(i):
    return Result(scores={"n": 10 ** 5000 if i == 2 else 1})
"""
    )
    result = pytester.runpytest_subprocess(
        "eval_big.py", "--experiment", "big", "--store", str(tmp_path / "st")
    )
    out = result.stdout.str() + result.stderr.str()
    assert "more than 4300 digits" in out
    assert "Traceback" not in out and "ValueError" not in out


# ---------------------------------------------------------------- 16: output paths


@pytest.mark.parametrize(
    "args",
    [
        ["export", "s", "-o", "{missing}/x.jsonl"],
        ["export", "s", "-f", "csv", "-o", "{folder}"],
        ["report", "s", "-o", "{folder}"],
        ["report", "s", "-o", "{missing}/r.html"],
    ],
)
def test_unwritable_output_paths_are_one_line_and_leave_nothing(
    args: list[str], store_path: Path, tmp_path: Path
) -> None:
    record(store_path, "s", [Result(True, response="r")])
    folder = tmp_path / "out"
    folder.mkdir()
    filled = [a.format(missing=tmp_path / "no" / "such", folder=folder) for a in args]
    for done in (cli(store_path, *filled, ok=False), run_cli(store_path, *filled, ok=False)):
        assert done.returncode == 2
        assert done.stderr.count("Error:") == 1 and (
            "does not exist" in done.stderr or "folder" in done.stderr
        )
    assert litter(tmp_path, folder) == [] and list(folder.iterdir()) == []


def test_an_export_that_fails_midway_leaves_no_file(store_path: Path, tmp_path: Path) -> None:
    from doteval._operations.output_files import replace_file
    from doteval.errors import CorruptStoreError

    target = tmp_path / "x.jsonl"
    with pytest.raises(CorruptStoreError), replace_file(target) as f:
        f.write("partial\n")
        raise CorruptStoreError("damaged")
    assert list(tmp_path.iterdir()) == [] or litter(tmp_path) == []
    assert not target.exists()
    with replace_file(target) as f:
        f.write("whole \ud800\n")
    assert target.read_text(encoding="utf-8") == "whole \\ud800\n"
    assert litter(tmp_path) == []


def test_csv_to_a_string_stays_in_the_library(store_path: Path) -> None:
    """The library writes to any text stream; only files and stdout escape surrogates."""
    from doteval._operations.export import export
    from doteval._repository.history import resolve

    record(store_path, "s", [Result(True, response="=1+1")])
    st = Store(store_path)
    out = io.StringIO()
    assert export(st, resolve(st, "s"), "csv", out) == 1
    assert "'=1+1" in out.getvalue()
    out = io.StringIO()
    export(st, resolve(st, "s"), "csv", out, raw_csv=True)
    assert ",=1+1," in out.getvalue()
