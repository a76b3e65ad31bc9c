"""The comparison commands: ``doteval diff`` and ``doteval export``.

Stores come from ``test_diff.build_stores`` (A: q0..q19 right on 0..13; B: q0, q1
replaced, q22 added, right on 4..22, other code and params; good / bad: a
significant regression; far: nothing in common with A). The numbers printed
are checked against the JSON document and against a computation from the
exported samples.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_cli_inspect import (
    Cli,
    assert_one_error,
    assert_usage_error,
    golden,
    normalize,
    run_main,
    run_module,
)
from test_diff import A_RIGHT, B_RIGHT, ERROR_TYPES, build_stores, by_hand

from doteval._objects import Store
from doteval._operations.export import iter_rows
from doteval._operations.stats import mcnemar_exact
from doteval._repository.history import resolve
from doteval._repository.sample_tables import load_parts

# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = pytest.mark.xdist_group("cli_compare")

EXPORT_KEYS = {
    "duration", "error", "evaluation", "item", "metadata", "prompt", "response",
    "sample_key", "scores", "status",
}  # fmt: skip
CSV_HEADER = [
    "evaluation", "sample_key", "status", "item.prompt", "item.expected", "prompt", "response",
    "score.exact_match", "error_type", "error_message", "duration",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fixed_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stores(tmp_path_factory.mktemp("compare") / "store")


@pytest.fixture
def cli(store_dir: Path) -> Cli:
    return Cli(store_dir)


def metrics_rows(text: str) -> list[list[str]]:
    """The cells of each row of the metrics tables in ``doteval diff`` output."""
    return [line.split() for line in text.splitlines() if line.startswith("exact_match.accuracy ")]


def listed_items(text: str) -> list[str]:
    """The prompts in the Item column of ``diff --samples``."""
    return re.findall(r"^│ prompt=(q\d+), expected=A\d+ ", text, flags=re.M)


def q(indices: Any) -> list[str]:
    return sorted(f"q{i}" for i in indices)


# ---------------------------------------------------------------- diff


def test_diff_table(cli: Cli) -> None:
    assert normalize(cli("diff", "A", "B").stdout) == golden(
        """
        A: A (<id>)
        B: B (<id>)

        eval_qa.py::eval_qa: 18 paired samples, 2 only in A, 3 only in B
        Metric                     A       B    Delta            95% CI  Better  Worse  Same      p
        ───────────────────────────────────────────────────────────────────────────────────────────
        exact_match.accuracy  0.6667  0.8889  +0.2222  [-0.05556, +0.5]       6      2    10  0.289
          code differs:
            --- test_diff.eval_v1.<locals>.eval_qa (before)
            +++ test_diff.eval_v2.<locals>.eval_qa (now)
            @@ -2,3 +2,3 @@
             def eval_qa(prompt, expected, model):
            -    response = model.generate(prompt)
            +    response = model.generate(prompt).strip()
                 return Result(exact_match(response, expected), prompt=prompt, response=response)
          params differ:
            model.name: 'm-a' -> 'm-b'

        No significant regression (alpha 0.05).
        """
    )


def test_diff_numbers_match_json_and_a_hand_computation(cli: Cli, store_dir: Path) -> None:
    doc = cli.json("diff", "A", "B")
    [ev] = doc["evaluations"]
    [m] = ev["metrics"]
    hand = by_hand(Store(store_dir), "A", "B")
    # Counts and means by hand, from the exported samples.
    assert (ev["paired"], ev["only_a"], ev["only_b"]) == (hand["paired"], hand["only_a"], hand["only_b"])
    assert (ev["paired"], ev["only_a"], ev["only_b"]) == (18, 2, 3)
    assert m["n"] == hand["n"] == 18
    assert (m["improved"], m["regressed"], m["unchanged"]) == (
        len(hand["improved"]),
        len(hand["regressed"]),
        hand["unchanged"],
    )
    assert (m["improved"], m["regressed"], m["unchanged"]) == (6, 2, 10)
    assert m["a"] == pytest.approx(hand["a"]) and m["b"] == pytest.approx(hand["b"])
    assert m["delta"] == pytest.approx(16 / 18 - 12 / 18)
    assert m["p_value"] == mcnemar_exact(2, 6)
    assert m["ci"][0] <= m["delta"] <= m["ci"][1]
    assert (m["significant"], m["significant_regression"], m["binary"]) == (False, False, True)
    assert doc["significant_regressions"] == [] and doc["nothing_in_common"] is False
    assert doc["a"]["experiment"] == "A" and doc["b"]["label"] == "B" and doc["seed"] == 0

    # The table prints exactly the JSON numbers.
    [row] = metrics_rows(cli("diff", "A", "B").stdout)
    assert row == [
        "exact_match.accuracy",
        f"{m['a']:.4g}",
        f"{m['b']:.4g}",
        f"{m['delta']:+.4g}",
        f"[{m['ci'][0]:+.4g},",
        f"{m['ci'][1]:+.4g}]",
        str(m["improved"]),
        str(m["regressed"]),
        str(m["unchanged"]),
        f"{m['p_value']:.3g}",
    ]
    # Another seed: another interval, the same counts and p.
    other = cli.json("diff", "A", "B", "--seed", "3")["evaluations"][0]["metrics"][0]
    assert (other["delta"], other["p_value"], other["improved"]) == (m["delta"], m["p_value"], m["improved"])


def test_diff_samples_lists_exactly_the_changed_items(cli: Cli) -> None:
    out = cli("diff", "A", "B", "--samples").stdout
    assert sorted(listed_items(out)) == q([2, 3, *range(14, 20)])
    for prompt in listed_items(out):
        i = int(prompt[1:])
        row = next(line for line in out.splitlines() if line.startswith(f"│ prompt={prompt}, "))
        a_response = f"A{i}" if i in A_RIGHT else "wrong"
        b_response = f"A{i}" if i in B_RIGHT else "wrong"
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells == [
            f"prompt={prompt}, expected=A{i}",
            a_response,
            b_response,
            f"exact_match={i in A_RIGHT}",
            f"exact_match={i in B_RIGHT}",
        ]
    doc = cli.json("diff", "A", "B", "--samples")
    assert sorted(s["item"]["prompt"] for s in doc["samples"]) == q([2, 3, *range(14, 20)])
    assert {s["direction"] for s in doc["samples"]} == {"improved", "regressed"}


def test_diff_regressions_lists_only_the_worse(cli: Cli) -> None:
    out = cli("diff", "A", "B", "--regressions").stdout
    assert sorted(listed_items(out)) == q([2, 3])
    doc = cli.json("diff", "A", "B", "--regressions")
    assert sorted(s["item"]["prompt"] for s in doc["samples"]) == q([2, 3])
    assert {s["direction"] for s in doc["samples"]} == {"regressed"}
    # Errors count as worse: A against errs lists the three errored items.
    errs = cli.json("diff", "A", "errs", "--regressions")["samples"]
    assert sorted(s["item"]["prompt"] for s in errs) == q(ERROR_TYPES)
    assert all(s["b"]["error"]["message"].startswith("model failed on") for s in errs)
    text = cli("diff", "A", "errs", "--regressions").stdout
    assert sorted(listed_items(text)) == q(ERROR_TYPES)
    assert re.search(r"│ prompt=q2, expected=A2 │ A2\s+│ ValueError: model failed on\s", text)

    assert cli("diff", "bad", "good", "--regressions").stdout.rstrip().endswith("No sample got worse.")
    assert cli("diff", "A", "A", "--samples").stdout.rstrip().endswith("No sample changed.")
    assert cli.json("diff", "A", "A", "--samples")["samples"] == []


def test_fail_on_regression(cli: Cli, store_dir: Path) -> None:
    result = cli("diff", "good", "bad", "--fail-on-regression", code=1)
    assert result.stdout.rstrip().endswith("Significant regression: eval_qa.py::eval_qa exact_match.accuracy")
    [row] = metrics_rows(result.stdout)
    assert row[1:4] == ["1", "0.25", "-0.75"] and row[6:9] == ["0", "15", "5"]
    assert float(row[9]) == pytest.approx(mcnemar_exact(15, 0), rel=1e-2)
    # The JSON document is still printed, whole, before the exit code.
    result = cli("diff", "good", "bad", "--fail-on-regression", "--json", code=1)
    doc = json.loads(result.stdout)
    assert doc["significant_regressions"] == [
        {"evaluation": "evals/eval_qa.py::eval_qa", "score": "exact_match", "metric": "accuracy"}
    ]
    assert doc["evaluations"][0]["metrics"][0]["p_value"] == mcnemar_exact(15, 0)

    cli("diff", "good", "bad")  # without the flag: exit 0
    cli("diff", "bad", "good", "--fail-on-regression")  # an improvement
    cli("diff", "A", "B", "--fail-on-regression")  # 2 worse, 6 better: not significant
    proc = run_module("diff", "good", "bad", "--fail-on-regression", "--store", str(store_dir))
    assert proc.returncode == 1 and "Significant regression" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_nothing_in_common(cli: Cli) -> None:
    result = cli("diff", "A", "far", "--fail-on-regression")
    text = normalize(result.stdout)
    assert text.splitlines()[:4] == [
        "A: A (<id>)",
        "B: far (<id>)",
        "",
        "A and B have no samples in common: no dataset item was evaluated in both.",
    ]
    assert (
        "eval_qa.py::eval_qa vs evals/eval_other.py::eval_other: 0 paired samples, 20 only in A, 5 only in B"
    ) in text
    assert "regression" not in text
    doc = cli.json("diff", "A", "far", "--fail-on-regression")
    assert doc["nothing_in_common"] is True and doc["significant_regressions"] == []
    [ev] = doc["evaluations"]
    assert (ev["paired"], ev["only_a"], ev["only_b"]) == (0, 20, 5)
    assert ev["metrics"][0]["n"] == 0 and ev["metrics"][0]["p_value"] is None


def test_code_and_params_differences_are_shown(cli: Cli) -> None:
    doc = cli.json("diff", "A", "B")["evaluations"][0]
    assert doc["code_changed"] is True
    assert "+    response = model.generate(prompt).strip()" in doc["code_diff"]
    assert doc["params_changed"] == ["model.name: 'm-a' -> 'm-b'"]
    same = cli("diff", "A", "A").stdout
    assert "code differs" not in same and "params differ" not in same
    assert metrics_rows(same) == [
        ["exact_match.accuracy", "0.7", "0.7", "+0", "[+0,", "+0]", "0", "0", "20", "1"]
    ]
    # Revisions of one experiment: only the items differ.
    older = cli("diff", "two~1", "two").stdout
    first = cli.json("show", "two~1")["id"]
    assert older.splitlines()[0] == f"A: two@{first[:10]} ({first[:10]})"
    assert "eval_qa.py::eval_qa: 10 paired samples, 0 only in A, 2 only in B" in older
    assert "code differs" not in older and "params differ" not in older


def test_diff_of_an_unknown_experiment(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "diff", "A", "nope", "--store", str(store_dir))
    assert (code, out) == (1, "")
    assert_one_error(err, "no experiment named 'nope' in this store")
    proc = run_module("diff", "nope", "A", "--json", "--store", str(store_dir))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert_one_error(proc.stderr, "no experiment named 'nope' in this store")


# ---------------------------------------------------------------- export


def test_export_jsonl(cli: Cli) -> None:
    out = cli("export", "A").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 20
    assert all(set(r) == EXPORT_KEYS for r in rows)
    keys = {s["key"] for s in cli.json("show", "A", "--full")["samples"]}
    assert {r["sample_key"] for r in rows} == keys
    for r in rows:
        i = int(r["item"]["prompt"][1:])
        assert r["item"] == {"prompt": f"q{i}", "expected": f"A{i}"}
        assert (r["prompt"], r["response"]) == (f"q{i}", f"A{i}" if i in A_RIGHT else "wrong")
        assert r["scores"] == {"exact_match": i in A_RIGHT}
        assert (r["status"], r["error"], r["metadata"]) == ("ok", None, {})
        assert r["evaluation"] == "evals/eval_qa.py::eval_qa"
        assert re.fullmatch(r"[0-9a-f]{64}", r["sample_key"]) and r["duration"] >= 0
    assert cli("export", "A", "--format", "jsonl").stdout == out


def test_export_csv(cli: Cli) -> None:
    text = cli("export", "errs", "-f", "csv").stdout
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == CSV_HEADER
    rows = [dict(zip(header, r)) for r in reader]
    assert len(rows) == 10
    jsonl = {r["sample_key"]: r for r in map(json.loads, cli("export", "errs").stdout.splitlines())}
    for r in rows:
        i = int(r["item.prompt"][1:])
        assert r["item.expected"] == f"A{i}"
        if i in ERROR_TYPES:
            assert r["status"] == "error"
            assert (r["error_type"], r["error_message"]) == (ERROR_TYPES[i].__name__, f"model failed on q{i}")
            assert (r["score.exact_match"], r["prompt"], r["response"]) == ("", "", "")
        else:
            assert (r["status"], r["score.exact_match"], r["response"]) == ("ok", "True", f"A{i}")
            assert r["error_type"] == r["error_message"] == ""
        j = jsonl[r["sample_key"]]
        assert float(r["duration"]) == pytest.approx(j["duration"])


def test_export_json_to_a_file(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "out" / "a.json"
    target.parent.mkdir()
    result = cli("export", "A", "--format", "json", "--output", str(target))
    assert result.stdout.replace("\n", "") == f"Wrote 20 samples to {target}."
    doc = json.loads(target.read_text())
    assert isinstance(doc, list) and len(doc) == 20
    jsonl = [json.loads(line) for line in cli("export", "A").stdout.splitlines()]
    assert doc == jsonl
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]  # no temporary file left

    for fmt, count in (("jsonl", 20), ("csv", 21)):
        path = tmp_path / f"a.{fmt}"
        cli("export", "A", "-f", fmt, "-o", str(path))
        assert len(path.read_text().splitlines()) == count
    # An older revision exports its own samples; stdout JSON is one document.
    older = json.loads(cli("export", "two~1", "-f", "json").stdout)
    assert sorted(r["item"]["prompt"] for r in older) == q(range(10))


def test_export_of_an_unknown_experiment_or_format(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "export", "nope", "--store", str(store_dir))
    assert (code, out) == (1, "")
    assert_one_error(err, "no experiment named 'nope' in this store")
    code, out, err = run_main(capsys, "export", "A", "-f", "xml", "--store", str(store_dir))
    assert (code, out) == (2, "")
    assert_usage_error(err, "use one of jsonl, csv, json")
    proc = run_module("export", "A", "--format", "xml", "--store", str(store_dir))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert_usage_error(proc.stderr, "use one of jsonl, csv, json")


def test_export_streams_results_one_table_at_a_time(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(Path(shutil.copytree(store_dir, tmp_path / "store")))
    revision = resolve(store, "A")
    (ev,) = revision.manifest.evaluations
    details = {p.details_id for p in load_parts(store, ev.entries)}
    results_read: list[str] = []
    real_get = store.objects.get_bytes

    def counting_get(object_id: str, **kwargs: Any) -> Any:
        if object_id in details:
            results_read.append(object_id)
        return real_get(object_id, **kwargs)

    monkeypatch.setattr(store.objects, "get_bytes", counting_get)
    rows = iter_rows(store, revision)
    assert results_read == []  # nothing read before the first row is asked for
    next(rows)
    assert results_read == sorted(details)  # the results of one table, read once
    assert len(list(rows)) == 19 and len(results_read) == 1

    # export() writes rows as it reads them: one table's results, then its rows.
    from doteval._operations.export import export

    class Recorder(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.reads_at_write: list[int] = []

        def write(self, text: str) -> int:
            if text.strip() not in ("", "[", "]"):
                self.reads_at_write.append(len(results_read))
            return super().write(text)

    for fmt in ("jsonl", "json", "csv"):
        results_read.clear()
        out = Recorder()
        assert export(store, revision, fmt, out) == 20
        rows_written = out.reads_at_write[1:] if fmt == "csv" else out.reads_at_write  # csv: header first
        assert rows_written == [1] * 20, fmt


# ---------------------------------------------------------------- --json: one document, nothing else


@pytest.mark.parametrize(
    "command",
    [
        ["diff", "A", "B"],
        ["diff", "A", "B", "--samples"],
        ["diff", "A", "B", "--regressions"],
        ["diff", "A", "far"],
        ["diff", "two~1", "two"],
    ],
)
def test_diff_json_is_one_document(command: list[str], cli: Cli) -> None:
    doc = cli.json(*command)
    assert set(doc) >= {"a", "b", "evaluations", "nothing_in_common", "significant_regressions"}


def test_diff_json_through_python_m_doteval(store_dir: Path, cli: Cli) -> None:
    proc = run_module("diff", "A", "B", "--samples", "--json", "--store", str(store_dir))
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout) == cli.json("diff", "A", "B", "--samples")
