"""The inspection commands: list, show, log, rename, delete, and ``--dry-run``.

Stores come from ``test_diff.build_stores`` (built once for this module and only
read; tests that change a store work on a copy). Commands run in this process
through typer's ``CliRunner``, and error cases also through ``doteval._cli.main``
and a ``python -m doteval`` subprocess: exit code 1, one ``Error:`` line (and
its hint) on stderr, no traceback. Output compared in full is normalized first:
hex ids of 10+ digits become ``<id>``, dates ``<date>``, the host ``<host>``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from projects import PytesterProject
from test_diff import MODEL_A, Model, build_stores, eval_v1, record, rows
from typer.testing import CliRunner

from doteval._cli import main
from doteval._cli.app import app
from doteval._objects import Store
from doteval._objects.encoding import encode
from doteval._running.experiment_run import sample_key
from doteval._running.fingerprint import code_fingerprint, params_fingerprint
from doteval._running.foreach import get_spec

# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = pytest.mark.xdist_group("cli_inspect")

# ---------------------------------------------------------------- helpers

_HEX = re.compile(r"\b[0-9a-f]{10,}\b")
_DATE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[+-]\d{4})?")


def normalize(text: str) -> str:
    text = _DATE.sub("<date>", _HEX.sub("<id>", text))
    text = re.sub(r"^Host: .*$", "Host: <host>", text, flags=re.M)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def golden(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


@pytest.fixture(autouse=True)
def _fixed_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "50")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stores(tmp_path_factory.mktemp("inspect") / "store")


@pytest.fixture
def copy(store_dir: Path, tmp_path: Path) -> Path:
    """A copy of the module's store that a test may change."""
    return Path(shutil.copytree(store_dir, tmp_path / "copy"))


class Cli:
    """``doteval ARGS --store STORE`` through typer's CliRunner."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, [*args, "--store", str(self.store)])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        if code == 0:
            assert result.exception is None
        return result

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.stderr == ""
        return json.loads(result.stdout)  # the whole stdout is one document


@pytest.fixture
def cli(store_dir: Path) -> Cli:
    return Cli(store_dir)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``doteval._cli.main(args)`` in this process: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def run_module(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "doteval", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def assert_one_error(stderr: str, message: str) -> None:
    """One ``Error:`` line holding ``message`` (a hint line may follow), no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip("\n").splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], stderr
    assert lines[0] == errors[0]
    assert all(line.startswith("hint:") for line in lines[1:]), stderr


def assert_usage_error(stderr: str, message: str) -> None:
    """A usage error (exit 2): click's usage lines and one ``Error:`` line, no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], stderr


def full_json(cli: Cli, spec: str) -> dict[str, Any]:
    doc: dict[str, Any] = cli.json("show", spec, "--full")
    return doc


def keys_of(cli: Cli, spec: str) -> list[str]:
    return [s["key"] for s in full_json(cli, spec)["samples"]]


def unique_prefix(key: str, keys: list[str]) -> str:
    """The shortest prefix (4 digits at least) of ``key`` that no other key has."""
    for n in range(4, len(key) + 1):
        if sum(k.startswith(key[:n]) for k in keys) == 1:
            return key[:n]
    raise AssertionError("duplicate key")


def absent_prefix(keys: list[str]) -> str:
    for n in range(0x10000):
        prefix = f"{n:04x}"
        if not any(k.startswith(prefix) for k in keys):
            return prefix
    raise AssertionError("every 4-digit prefix is taken")


def head_id(cli: Cli, name: str) -> str:
    return str(cli.json("show", name)["id"])


# ---------------------------------------------------------------- list


def test_list_table(cli: Cli) -> None:
    assert normalize(cli("list").stdout) == golden(
        """
        Experiment  Status            Samples  Errors  Last updated
        ──────────────────────────────────────────────────────────────────
        two         Completed  12/12 (100.0%)       0  <date>
        bad         Completed  20/20 (100.0%)       0  <date>
        good        Completed  20/20 (100.0%)       0  <date>
        far         Completed    5/5 (100.0%)       0  <date>
        fixed       Completed    6/6 (100.0%)       0  <date>
        chg         Completed    3/3 (100.0%)       0  <date>
        errs        Failed       7/10 (70.0%)       3  <date>
        B           Completed  21/21 (100.0%)       0  <date>
        A           Completed  20/20 (100.0%)       0  <date>
        """
    )


def test_list_json_fields(cli: Cli, store_dir: Path) -> None:
    doc = cli.json("list")
    assert set(doc) == {"store", "experiments"} and doc["store"] == str(store_dir)
    experiments = {e["name"]: e for e in doc["experiments"]}
    assert list(experiments) == ["two", "bad", "good", "far", "fixed", "chg", "errs", "B", "A"]
    documented = {
        "name",
        "status",
        "done",
        "total",
        "errors",
        "last_updated",
        "id",
        "diverged",
        "deleted",
        "holder",
        "live",
        "damage",
    }
    assert all(set(e) == documented for e in doc["experiments"])
    errs = experiments["errs"]
    assert (errs["status"], errs["done"], errs["total"], errs["errors"]) == ("failed", 7, 10, 3)
    assert (errs["deleted"], errs["diverged"], errs["holder"]) == (False, False, None)
    a = experiments["A"]
    assert (a["status"], a["done"], a["total"], a["errors"]) == ("completed", 20, 20, 0)
    assert a["id"] == head_id(cli, "A")
    updated = [dt.datetime.strptime(e["last_updated"], "%Y-%m-%dT%H:%M:%S%z") for e in doc["experiments"]]
    assert updated == sorted(updated, reverse=True)


def test_list_of_an_empty_store(tmp_path: Path) -> None:
    empty = Cli(tmp_path / "empty")
    assert empty("list").stdout.strip() == f"No experiments in {tmp_path / 'empty'}."
    assert empty.json("list") == {"store": str(tmp_path / "empty"), "experiments": []}
    assert empty("log").stdout.strip() == "No history."
    assert empty.json("log") == {"entries": []}


# ---------------------------------------------------------------- show


def test_show_summary(cli: Cli) -> None:
    assert normalize(cli("show", "A").stdout) == golden(
        """
        Session: A
        Status: Completed
        Samples: 20/20 (100.0%)
        Errors: 0
        Duration: 0s
        Last updated: <date>
        Revision: <id>
        Host: <host>

        Evaluation           Samples  Errors  Code
        ────────────────────────────────────────────────
        eval_qa.py::eval_qa    20/20       0  <id>

        Params of eval_qa.py::eval_qa:
          model: {'name': 'm-a'}

        Evaluation           Metric                Value  Scored
        ──────────────────────────────────────────────────────────────────
        eval_qa.py::eval_qa  exact_match.accuracy    0.7  20 of 20 samples
        """
    )
    out = cli("show", "A").stdout
    assert f"Revision: {head_id(cli, 'A')[:10]}\n" in out


def test_show_of_a_failed_experiment(cli: Cli) -> None:
    lines = cli("show", "errs").stdout.splitlines()
    assert lines[:4] == ["Session: errs", "Status: Failed", "Samples: 7/10 (70.0%)", "Errors: 3"]
    assert re.fullmatch(r"Duration: \d+s", lines[4])
    assert re.fullmatch(r"Last updated: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[5])
    # The metric says which samples it covers: the 3 errors are not scored.
    metrics = [line for line in lines if "exact_match.accuracy" in line]
    assert metrics and metrics[0].split()[1:3] == ["exact_match.accuracy", "1"]
    assert metrics[0].endswith("  7 of 10 samples; 3 errors not scored")


def test_show_full_lists_every_sample(cli: Cli) -> None:
    out = cli("show", "errs", "--full").stdout
    doc = full_json(cli, "errs")
    samples = doc["samples"]
    assert len(samples) == 10
    assert sum(s["ok"] for s in samples) == 7
    for s in samples:
        assert set(s) == {"evaluation", "key", "ok", "item", "prompt", "response", "scores", "error"}
        prompt = s["item"]["prompt"]
        row = next(line for line in out.splitlines() if line.startswith(f"│ {s['key'][:12]} "))
        if s["ok"]:
            assert s["scores"] == {"exact_match": True} and s["error"] is None
            assert re.search(rf"│ exact_match=True\s+│ {prompt}\s+│ A{prompt[1:]}\s+│", row)
        else:
            assert s["scores"] == {} and s["error"]["message"] == f"model failed on {prompt}"
            assert f"{s['error']['type']}: model failed on {prompt}" in row
    # Without --full the samples are not listed.
    assert "│" not in cli("show", "errs").stdout
    assert "samples" not in cli.json("show", "errs")


def test_show_errors_grouped_by_type(cli: Cli) -> None:
    assert normalize(cli("show", "errs", "--errors").stdout) == golden(
        """
        3 errored sample(s) in errs:

        ValueError (2)
          <id>  eval_qa.py::eval_qa  model failed on q2
          <id>  eval_qa.py::eval_qa  model failed on q5

        RuntimeError (1)
          <id>  eval_qa.py::eval_qa  model failed on q7
        """
    )
    doc = cli.json("show", "errs", "--errors")
    assert doc["name"] == "errs" and doc["id"] == head_id(cli, "errs")
    assert list(doc["errors"]) == ["ValueError", "RuntimeError"]  # most frequent first
    assert sorted(e["message"] for e in doc["errors"]["ValueError"]) == [
        "model failed on q2",
        "model failed on q5",
    ]
    [runtime] = doc["errors"]["RuntimeError"]
    assert runtime["message"] == "model failed on q7" and "RuntimeError" in runtime["traceback"]
    failed = {s["key"] for s in full_json(cli, "errs")["samples"] if not s["ok"]}
    assert {e["key"] for group in doc["errors"].values() for e in group} == failed
    assert cli("show", "A", "--errors").stdout.strip() == "No errored samples in A."
    assert cli.json("show", "A", "--errors")["errors"] == {}


def test_show_sample_by_unique_prefix(cli: Cli) -> None:
    samples = full_json(cli, "errs")["samples"]
    keys = [s["key"] for s in samples]
    errored = next(s for s in samples if s["item"]["prompt"] == "q2")
    prefix = unique_prefix(errored["key"], keys)
    lines = cli("show", "errs", "--sample", prefix.upper()).stdout.splitlines()
    assert lines[:5] == [
        f"Sample: {errored['key']}",
        "Evaluation: evals/eval_qa.py::eval_qa",
        "Status: error",
        "Item prompt: q2",
        "Item expected: A2",
    ]
    assert "Error: ValueError: model failed on q2" in lines
    assert "Traceback (most recent call last):" in lines  # the sample's own traceback
    assert re.fullmatch(r"Duration: \d+\.\d{3}s", lines[-2])
    assert lines[-1] == "Attempts: 1"  # ValueError is not retried

    ok = next(s for s in samples if s["item"]["prompt"] == "q3")
    detail = cli.json("show", "errs", "--sample", unique_prefix(ok["key"], keys))
    assert set(detail) == {
        "evaluation", "key", "ok", "item", "prompt", "response", "scores", "error",
        "metadata", "duration", "attempts", "why",
    } - {"why"}  # fmt: skip
    assert detail["key"] == ok["key"] and detail["ok"] is True
    assert (detail["prompt"], detail["response"], detail["scores"]) == ("q3", "A3", {"exact_match": True})
    assert detail["item"] == {"prompt": "q3", "expected": "A3"} and detail["error"] is None


def ambiguous_items() -> tuple[list[tuple[str, str]], str]:
    """Two items of ``eval_v1`` whose sample keys share their first 4 hex digits."""
    spec = get_spec(eval_v1([]))
    assert spec is not None
    code = code_fingerprint(spec.func, columns=spec.columns, options=spec.options).digest
    params = params_fingerprint({"model": MODEL_A}).digest
    seen: dict[str, int] = {}
    for i in range(100_000):
        (item,) = rows([i])
        prefix = sample_key(code, params, encode(item), 0).hex()[:4]
        if prefix in seen:
            return rows([seen[prefix], i]), prefix
        seen[prefix] = i
    raise AssertionError("no two keys share a prefix")


def test_show_sample_ambiguous_unknown_and_malformed_prefixes(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items, prefix = ambiguous_items()
    record(Store(copy), "amb", eval_v1(items), Model(range(10**6)), params=MODEL_A)
    keys = keys_of(Cli(copy), "amb")
    assert len(keys) == 2 and all(k.startswith(prefix) for k in keys)
    # One more digit tells them apart (when it does).
    if keys[0][4] != keys[1][4]:
        assert Cli(copy)("show", "amb", "--sample", keys[0][:5]).stdout.startswith(f"Sample: {keys[0]}\n")

    store = ["--store", str(copy)]
    code, out, err = run_main(capsys, "show", "amb", "--sample", prefix, *store)
    assert (code, out) == (1, "")
    assert_one_error(err, f"2 samples have keys starting with {prefix}: give more digits")

    absent = absent_prefix(keys)
    code, out, err = run_main(capsys, "show", "amb", "--sample", absent, *store)
    assert (code, out) == (1, "")
    assert_one_error(err, f"no sample with key {absent} in 'amb'")

    for bad in ("ab", "xyz1", "12 4"):
        code, out, err = run_main(capsys, "show", "amb", "--sample", bad, *store)
        assert (code, out) == (1, "")
        assert_one_error(err, "give at least 4 hex digits")

    proc = run_module("show", "amb", "--sample", prefix, *store)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert_one_error(proc.stderr, "give more digits")


def _why(cli: Cli, spec: str, prompt: str) -> tuple[str, dict[str, Any]]:
    samples = full_json(cli, spec)["samples"]
    key = next(s["key"] for s in samples if s["item"]["prompt"] == prompt)
    text = cli("show", spec, "--sample", key[:16], "--why").stdout
    doc = cli.json("show", spec, "--sample", key[:16], "--why")
    assert doc["key"] == key and doc["why"]["key"] == key
    return text, doc["why"]


def test_why_after_a_code_change(cli: Cli) -> None:
    # chg~2 is the run after the code change (with --rerun-changed).
    text, why = _why(cli, "chg~2", "q1")
    assert why["summary"].startswith("the key differs in code: fingerprint ")
    assert len(why["differs"]) == 1 and why["differs"][0].startswith("code: fingerprint ")
    first = cli.json("show", "chg~3")
    assert why["earlier_manifest"] == first["id"]
    assert why["earlier_key"] in keys_of(cli, "chg~3")
    assert f"Why: {why['summary']}" in text
    assert f"  earlier sample {why['earlier_key'][:12]} in revision {first['id'][:10]}" in text

    # chg~1 changed the params; chg (the head) reused every sample of chg~1.
    _, params = _why(cli, "chg~1", "q1")
    assert params["differs"] == ["params: model changed"]
    assert params["summary"] == "the key differs in params: model changed"
    _, same = _why(cli, "chg", "q1")
    assert same["differs"] == [] and same["summary"].startswith("same key: this result was reused")


def test_why_for_an_errored_sample_evaluated_again(cli: Cli) -> None:
    text, why = _why(cli, "fixed", "q1")
    assert why["summary"] == "same key: the earlier result was an error, so the sample ran again"
    assert why["earlier_key"] == why["key"] and why["earlier_manifest"] == cli.json("show", "fixed~1")["id"]
    assert "Why: same key: the earlier result was an error, so the sample ran again" in text
    _, first = _why(cli, "A", "q1")
    assert first["summary"] == "no earlier result of this item in the experiment's history"
    assert first["earlier_key"] is None


def test_why_without_sample_is_a_usage_error(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "show", "A", "--why", "--store", str(store_dir))
    assert (code, out) == (2, "")
    assert_usage_error(err, "--why goes with --sample KEY_PREFIX")


def test_older_revisions_by_steps_and_by_id(cli: Cli) -> None:
    log = cli.json("log", "two")["entries"]
    newest, first = log[0]["id"], log[1]["id"]
    older = cli("show", "two~1").stdout.splitlines()
    assert "Samples: 10/10 (100.0%)" in older
    assert f"Revision: {first[:10]} (not the newest: see `doteval log`)" in older
    assert cli("show", "two~").stdout == cli("show", "two~1").stdout
    assert cli("show", f"two@{first[:6]}").stdout == cli("show", "two~1").stdout
    assert cli("show", f"two@{newest[:8].upper()}").stdout == cli("show", "two").stdout
    assert cli("show", f"two@{newest[:8]}~1").stdout == cli("show", "two~1").stdout
    assert "Samples: 12/12 (100.0%)" in cli("show", "two~0").stdout

    doc = cli.json("show", "two~1")
    assert (doc["id"], doc["head"], doc["done"], doc["total"]) == (first, False, 10, 10)
    assert cli.json("show", "two")["head"] is True
    # --errors, --sample and export read the older state too.
    assert (
        cli.json("show", "fixed~1", "--errors")["errors"]["ValueError"][0]["message"] == "model failed on q1"
    )
    assert cli.json("show", "fixed", "--errors")["errors"] == {}


def _absent_revision(cli: Cli, name: str) -> str:
    ids = [e["id"] for e in cli.json("log", name)["entries"]]
    return absent_prefix(ids)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("two~2", "experiment 'two' has only 2 run(s) from there; 'two~2' goes back too far"),
        ("two~9", "'two~9' goes back too far"),
        ("two@12", "revision '12' is too short: give at least 4 hex digits"),
        ("two@zz", "cannot read revision 'two@zz'"),
        ("two~x", "cannot read revision 'two~x'"),
        ("two@", "cannot read revision 'two@'"),
        ("nope", "no experiment named 'nope' in this store"),
        ("nope~1", "no experiment named 'nope' in this store"),
        ("../two", "invalid experiment name"),
        ("ABSENT", "has no revision"),
    ],
)
def test_bad_revisions_are_one_clear_error(
    spec: str, message: str, cli: Cli, store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if spec == "ABSENT":
        spec = f"two@{_absent_revision(cli, 'two')}"
    for command in (["show", spec], ["show", spec, "--json"], ["export", spec], ["diff", "A", spec]):
        code, out, err = run_main(capsys, *command, "--store", str(store_dir))
        assert (code, out) == (1, ""), command
        assert_one_error(err, message)


def test_bad_revision_through_python_m_doteval(store_dir: Path) -> None:
    proc = run_module("show", "two~2", "--store", str(store_dir))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert_one_error(proc.stderr, "'two~2' goes back too far")


def test_show_json_fields(cli: Cli) -> None:
    doc = cli.json("show", "B")
    assert set(doc) == {
        "name", "id", "head", "status", "done", "total", "errors", "duration", "started",
        "last_updated", "host", "git_commit", "command", "holder", "diverged", "evaluations",
    }  # fmt: skip
    assert (doc["name"], doc["head"], doc["status"]) == ("B", True, "completed")
    assert (doc["done"], doc["total"], doc["errors"]) == (21, 21, 0)
    assert doc["duration"] >= 0 and doc["holder"] is None and doc["diverged"] is False
    for field in ("started", "last_updated"):
        dt.datetime.strptime(doc[field], "%Y-%m-%dT%H:%M:%S%z")
    [ev] = doc["evaluations"]
    assert set(ev) == {
        "node_id", "status", "total", "done", "errors", "metrics", "fingerprint", "params_digest",
        "params", "unfingerprintable", "columns", "line", "last_run",
    }  # fmt: skip
    assert ev["node_id"] == "evals/eval_qa.py::eval_qa"
    assert ev["columns"] == ["prompt", "expected"] and ev["params"] == {"model": {"name": "m-b"}}
    # B is wrong on q2 and q3 only: 19 of its 21 items.
    assert ev["metrics"] == [
        {"score": "exact_match", "metric": "accuracy", "value": pytest.approx(19 / 21), "n": 21}
    ]
    assert ev["last_run"]["evaluated"] == 21 and ev["line"] == 1
    assert re.fullmatch(r"[0-9a-f]{64}", ev["fingerprint"])


# ---------------------------------------------------------------- log


def test_log_of_one_experiment(cli: Cli) -> None:
    assert normalize(cli("log", "chg").stdout) == golden(
        """
        run <id> (chg)
        Date:    <date>
        Status:  Completed
        Samples: 3/3; this run evaluated 0, reused 3, errors 0
        Host: <host>
            eval_qa.py::eval_qa: -2 items

        run <id> (chg)
        Date:    <date>
        Status:  Completed
        Samples: 5/5; this run evaluated 5, reused 0, errors 0
        Host: <host>
            eval_qa.py::eval_qa: params changed (model)
            eval_qa.py::eval_qa: new line of results (--rerun-changed)

        run <id> (chg)
        Date:    <date>
        Status:  Completed
        Samples: 5/5; this run evaluated 5, reused 0, errors 0
        Host: <host>
            eval_qa.py::eval_qa: code changed
            eval_qa.py::eval_qa: new line of results (--rerun-changed)

        run <id> (chg)
        Date:    <date>
        Status:  Completed
        Samples: 5/5; this run evaluated 5, reused 0, errors 0
        Host: <host>
            eval_qa.py::eval_qa: new evaluation (5 items)
        """
    )


def test_log_change_descriptions(cli: Cli) -> None:
    changes = [e["changes"] for e in cli.json("log", "chg")["entries"]]
    assert changes == [
        ["eval_qa.py::eval_qa: -2 items"],
        [
            "eval_qa.py::eval_qa: params changed (model)",
            "eval_qa.py::eval_qa: new line of results (--rerun-changed)",
        ],
        ["eval_qa.py::eval_qa: code changed", "eval_qa.py::eval_qa: new line of results (--rerun-changed)"],
        ["eval_qa.py::eval_qa: new evaluation (5 items)"],
    ]
    two = cli.json("log", "two")["entries"]
    assert [e["changes"] for e in two] == [
        ["eval_qa.py::eval_qa: +2 items"],
        ["eval_qa.py::eval_qa: new evaluation (10 items)"],
    ]
    assert [(e["evaluated"], e["reused"], e["done"], e["total"]) for e in two] == [
        (2, 10, 12, 12),
        (10, 0, 10, 10),
    ]
    fixed = cli.json("log", "fixed")["entries"]
    assert [(e["status"], e["evaluated"], e["reused"], e["errors"], e["changes"]) for e in fixed] == [
        ("completed", 1, 5, 0, []),
        ("failed", 6, 0, 1, ["eval_qa.py::eval_qa: new evaluation (6 items)"]),
    ]


def test_log_of_all_experiments_is_interleaved_by_time(cli: Cli) -> None:
    entries = cli.json("log")["entries"]
    names = [e["experiment"] for e in entries]
    assert names == [
        "two",
        "bad",
        "good",
        "far",
        "fixed",
        "fixed",
        "chg",
        "chg",
        "chg",
        "chg",
        "errs",
        "B",
        "A",
        "two",
    ]
    times = [e["time"] for e in entries]
    assert times == sorted(times, reverse=True)
    ids = [e["id"] for e in entries]
    assert ids[0] == head_id(cli, "two") and ids[-1] == cli.json("show", "two~1")["id"]

    lines = cli("log", "--oneline").stdout.splitlines()
    assert len(lines) == len(entries)
    for line, e in zip(lines, entries):
        assert line.startswith(f"{e['id'][:10]} ") and f" {e['experiment']} " in line
    assert normalize(lines[0]) == (
        "<id> <date> two Completed evaluated 2, reused 10, errors 0 · eval_qa.py::eval_qa: +2 items"
    )
    assert normalize(lines[4]) == "<id> <date> fixed Completed evaluated 1, reused 5, errors 0"
    assert normalize(lines[10]) == (
        "<id> <date> errs Failed evaluated 10, reused 0, errors 3 · eval_qa.py::eval_qa: new evaluation (10 items)"
    )


def test_log_max_count_and_json(cli: Cli) -> None:
    [newest] = cli.json("log", "-n", "1")["entries"]
    assert newest["experiment"] == "two" and newest["id"] == head_id(cli, "two")
    assert set(newest) == {
        "experiment", "id", "record", "time", "op", "status", "evaluated", "reused", "errors",
        "reused_earlier", "reused_imported", "done", "total", "changes", "host", "git_commit",
        "command", "note",
    }  # fmt: skip
    assert len(cli("log", "-n", "1", "--oneline").stdout.splitlines()) == 1
    assert [e["experiment"] for e in cli.json("log", "-n", "3")["entries"]] == ["two", "bad", "good"]
    [chg] = cli.json("log", "chg", "--max-count", "1")["entries"]
    assert chg["changes"] == ["eval_qa.py::eval_qa: -2 items"]
    one = cli("log", "chg", "-n", "1").stdout
    assert sum(line.startswith("run ") for line in one.splitlines()) == 1 and "-2 items" in one
    cli("log", "-n", "0", code=2)


def test_log_of_an_unknown_experiment(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "log", "nope", "--store", str(store_dir))
    assert (code, out) == (1, "")
    assert_one_error(err, "no experiment named 'nope' in this store")


# ---------------------------------------------------------------- rename and delete


def test_rename_moves_the_experiment_and_refuses_an_existing_name(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(copy)
    before = cli.json("show", "two")
    assert cli("rename", "two", "three").stdout.strip() == "Renamed two to three."
    names = [e["name"] for e in cli.json("list")["experiments"]]
    assert "three" in names and "two" not in names
    after = cli.json("show", "three")
    assert (after["id"], after["done"], after["total"]) == (before["id"], 12, 12)
    code, _, err = run_main(capsys, "show", "two", "--store", str(copy))
    assert code == 1
    assert_one_error(err, "no experiment named 'two' in this store (it was renamed to 'three')")
    [entry] = [e for e in cli.json("log", "three")["entries"] if e["op"] == "rename"]
    assert entry["changes"] == ["renamed from two"]

    code, out, err = run_main(capsys, "rename", "three", "A", "--store", str(copy))
    assert (code, out) == (1, "")
    assert_one_error(err, "experiment 'A' already exists")
    assert cli.json("show", "A")["total"] == 20  # untouched
    code, _, err = run_main(capsys, "rename", "nope", "other", "--store", str(copy))
    assert code == 1
    assert_one_error(err, "no experiment named 'nope'")

    # Renaming back: the old name's runs are its history again.
    cli("rename", "three", "two")
    names = [e["name"] for e in cli.json("list")["experiments"]]
    assert "two" in names and "three" not in names
    log = cli.json("log", "two")["entries"]
    # two's own records (its runs, and the delete that the first rename wrote)
    # plus three's (the first rename), joined by the rename back
    assert sorted(e["op"] for e in log) == ["delete", "rename", "rename", "run", "run"]
    assert log[0]["op"] == "rename" and log[0]["changes"] == ["renamed from three"]
    assert cli.json("show", "two")["id"] == before["id"]
    assert [e["deleted"] for e in cli.json("list", "--deleted")["experiments"] if e["name"] == "three"] == [
        True
    ]


def test_log_of_a_renamed_experiment_shows_its_runs(copy: Path) -> None:
    cli = Cli(copy)
    runs = [e["id"] for e in cli.json("log", "two")["entries"]]
    cli("rename", "two", "three")
    log = cli.json("log", "three")["entries"]
    assert [e["id"] for e in log if e["op"] == "run"] == runs
    assert cli.json("show", "three~1")["id"] == runs[1]


def test_delete_then_list_deleted(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(copy)
    errs = cli.json("show", "errs")
    out = cli("delete", "errs").stdout
    assert out.replace("\n", " ").strip() == (
        "Deleted experiment errs. `doteval undelete errs` brings it back until gc."
    )
    assert "errs" not in [e["name"] for e in cli.json("list")["experiments"]]
    assert not any(line.startswith("errs ") for line in cli("list").stdout.splitlines())
    [row] = [line for line in cli("list", "--deleted").stdout.splitlines() if line.startswith("errs ")]
    assert row.split()[1:3] == ["Deleted", "7/10"]
    [deleted] = [e for e in cli.json("list", "--deleted")["experiments"] if e["name"] == "errs"]
    assert (deleted["status"], deleted["deleted"], deleted["done"], deleted["total"]) == (
        "deleted",
        True,
        7,
        10,
    )
    assert deleted["id"] == errs["id"]

    for command in (
        ["show", "errs"],
        ["show", "errs~1"],
        ["export", "errs"],
        ["delete", "errs"],
        ["diff", "A", "errs"],
    ):
        code, out, err = run_main(capsys, *command, "--store", str(copy))
        assert (code, out) == (1, ""), command
        assert_one_error(err, "no experiment named 'errs' in this store")
    proc = run_module("show", "errs", "--store", str(copy))
    assert proc.returncode == 1
    assert_one_error(proc.stderr, "no experiment named 'errs' in this store")

    log = cli.json("log", "errs")["entries"]
    assert [(e["op"], e["status"]) for e in log] == [("delete", "deleted"), ("run", "failed")]
    # Until gc, NAME@REV still reads a deleted experiment's revisions.
    assert len(cli("export", f"errs@{errs['id'][:8]}").stdout.splitlines()) == 10


# ---------------------------------------------------------------- dry run

EVAL_QA = """
import json
from pathlib import Path

from doteval import Result, foreach


def load():
    return [tuple(row) for row in json.loads(Path(__file__).with_name("data.json").read_text())]


@foreach("prompt,expected", load())
def eval_qa(prompt, expected, model):
    response = model.generate(prompt)
    return Result(response == expected, prompt=prompt, response=response)
"""


class DryProject(PytesterProject):
    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(pytester, monkeypatch)
        self.write("eval_qa.py", EVAL_QA)

    def data(self, n: int) -> None:
        self.write("data.json", json.dumps([[f"q{i}", f"Q{i}"] for i in range(n)]))

    def run(self, *args: str) -> tuple[int, str]:
        result = self.pytest("eval_qa.py", "--experiment", "X", *args)
        return int(result.ret), "\n".join(result.outlines + result.errlines)


@pytest.fixture
def dry(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> DryProject:
    return DryProject(pytester, monkeypatch)


def plan_block(output: str) -> list[str]:
    lines = output.splitlines()
    start = lines.index("doteval dry run: nothing was evaluated")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Would evaluate"))
    return lines[start + 1 : end + 1]


def test_dry_run_of_a_new_experiment_evaluates_and_records_nothing(dry: DryProject, store_path: Path) -> None:
    dry.data(10)
    code, out = dry.run("--dry-run")
    assert code == 0, out
    assert dry.take_calls() == []
    block = plan_block(out)
    assert (
        block[0]
        == "eval_qa.py::eval_qa: 10 items: reuse 0, evaluate 10 (10 new or changed, 0 errors to retry)"
    )
    # The command to run for real: the same one, without --dry-run (pytester adds --basetemp).
    assert block[1].startswith("Would evaluate 10 sample(s). Run it: pytest eval_qa.py --experiment X -p")
    assert len(block) == 2 and "--dry-run" not in block[1]
    assert Cli(store_path).json("list")["experiments"] == []


def test_dry_run_counts_reuse_retries_and_new_items(
    dry: DryProject, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dry.data(10)
    monkeypatch.setenv("DOTEVAL_TEST_FAIL", "q3")
    dry.run()  # one sample errors (whether that fails the pytest item is not the point here)
    assert len(dry.take_calls()) == 10
    assert Cli(store_path).json("show", "X")["errors"] == 1
    monkeypatch.delenv("DOTEVAL_TEST_FAIL")

    code, out = dry.run("--dry-run")
    assert code == 0 and dry.take_calls() == []
    assert (
        plan_block(out)[0]
        == "eval_qa.py::eval_qa: 10 items: reuse 9, evaluate 1 (0 new or changed, 1 errors to retry)"
    )

    dry.data(13)  # three new items
    code, out = dry.run("--dry-run")
    assert code == 0 and dry.take_calls() == []
    assert (
        plan_block(out)[0]
        == "eval_qa.py::eval_qa: 13 items: reuse 9, evaluate 4 (3 new or changed, 1 errors to retry)"
    )
    assert plan_block(out)[-1].startswith("Would evaluate 4 sample(s).")

    dry.data(8)  # two fewer
    code, out = dry.run("--dry-run")
    assert plan_block(out)[0] == (
        "eval_qa.py::eval_qa: 8 items: reuse 7, evaluate 1 (0 new or changed, 1 errors to retry), "
        "2 no longer in the dataset"
    )
    assert dry.take_calls() == []
    assert len(Cli(store_path).json("log", "X")["entries"]) == 1  # dry runs record nothing

    # The real run evaluates exactly what the dry run said.
    dry.data(13)
    assert dry.run()[0] == 0
    assert sorted(dry.take_calls()) == ["q10", "q11", "q12", "q3"]


def test_dry_run_after_a_code_or_params_change_says_the_run_would_stop(
    dry: DryProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    dry.data(5)
    assert dry.run()[0] == 0
    dry.take_calls()

    monkeypatch.setenv("MODEL_VERSION", "2")
    code, out = dry.run("--dry-run")
    assert code == 0 and dry.take_calls() == []
    assert plan_block(out)[:4] == [
        "eval_qa.py::eval_qa: 5 items: reuse 0, evaluate 5 (5 new or changed, 0 errors to retry)",
        "    params changed:",
        "    model.version: 1 -> 2",
        "    the run would stop here: use a new --experiment name, or --rerun-changed to start a new line of results",
    ]
    monkeypatch.delenv("MODEL_VERSION")

    dry.write("eval_qa.py", EVAL_QA.replace("response == expected", "response.strip() == expected"))
    code, out = dry.run("--dry-run")
    assert code == 0 and dry.take_calls() == []
    block = plan_block(out)
    assert (
        block[0] == "eval_qa.py::eval_qa: 5 items: reuse 0, evaluate 5 (5 new or changed, 0 errors to retry)"
    )
    assert block[1] == "    code changed:"
    assert "    -    return Result(response == expected, prompt=prompt, response=response)" in block
    assert "    +    return Result(response.strip() == expected, prompt=prompt, response=response)" in block
    assert block[-2] == (
        "    the run would stop here: use a new --experiment name, or --rerun-changed to start a new line of results"
    )
    # ... and it does stop, evaluating nothing.
    code, out = dry.run()
    assert code == 1 and dry.take_calls() == []
    assert "the code changed since experiment 'X' last ran" in out
    # With --rerun-changed the dry run no longer says it would stop.
    code, out = dry.run("--dry-run", "--rerun-changed")
    assert code == 0 and not any("would stop" in line for line in plan_block(out))


def test_doteval_run_dry_run(dry: DryProject, store_path: Path) -> None:
    dry.data(4)
    assert dry.run()[0] == 0
    dry.take_calls()
    dry.data(6)
    plugins = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    proc = run_module("run", "eval_qa.py", "--experiment", "X", "--dry-run", *plugins, cwd=dry.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert dry.take_calls() == []
    block = plan_block(proc.stdout)
    assert (
        block[0] == "eval_qa.py::eval_qa: 6 items: reuse 4, evaluate 2 (2 new or changed, 0 errors to retry)"
    )
    assert len(block) == 2 and block[1].startswith(
        "Would evaluate 2 sample(s). Run it: doteval run eval_qa.py "
    )
    assert "--experiment X" in block[1] and "--dry-run" not in block[1]
    assert len(Cli(store_path).json("log", "X")["entries"]) == 1


# ---------------------------------------------------------------- bad input


def test_corrupt_manifest_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "store"
    store = Store(path)
    record(store, "one", eval_v1(rows(range(3))), Model(range(3)), params=MODEL_A)
    record(store, "other", eval_v1(rows(range(3))), Model(range(3)), params=MODEL_A)
    manifest_id = Cli(path).json("show", "one")["id"]
    loose = store.objects.loose_path(manifest_id)
    assert loose.exists()
    loose.write_bytes(b"garbage, not an object")
    commands = [
        ["show", "one"], ["show", "one", "--json"], ["log"], ["log", "one"], ["diff", "one", "other"],
        ["export", "one"],
    ]  # fmt: skip
    for command in commands:
        code, out, err = run_main(capsys, *command, "--store", str(path))
        assert (code, out) == (1, ""), command
        assert_one_error(err, str(loose))
    proc = run_module("show", "one", "--store", str(path))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert_one_error(proc.stderr, "not an object file")
    # The other experiment still reads, and is listed beside the damaged one.
    assert Cli(path).json("show", "other")["total"] == 3
    listed = {e["name"]: e for e in Cli(path).json("list")["experiments"]}
    assert listed["other"]["status"] == "completed" and listed["other"]["damage"] is None
    assert listed["one"]["status"] == "damaged" and "not an object file" in listed["one"]["damage"]


# ---------------------------------------------------------------- --json: one document, nothing else


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["list", "--deleted"],
        ["show", "errs"],
        ["show", "errs", "--full"],
        ["show", "errs", "--errors"],
        ["show", "two~1"],
        ["log"],
        ["log", "chg", "--oneline"],
        ["log", "-n", "2"],
    ],
)
def test_json_is_one_document_on_stdout(command: list[str], cli: Cli) -> None:
    doc = cli.json(*command)
    assert isinstance(doc, dict) and doc


def test_json_of_sample_and_why_is_one_document(cli: Cli, store_dir: Path) -> None:
    key = keys_of(cli, "fixed")[0]
    doc = cli.json("show", "fixed", "--sample", key[:12], "--why")
    assert doc["key"] == key and "why" in doc
    # The same through a real process: stdout is exactly the document, stderr is empty.
    proc = run_module("show", "fixed", "--sample", key[:12], "--why", "--json", "--store", str(store_dir))
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout) == doc
