"""``doteval report``: the data a report page is built from, and the page as a file.

Experiments are recorded in-process with ``ExperimentRun`` (the runner the
pytest plugin drives), into the per-test store of ``tests/conftest.py``. The
page is read back the way a browser would split it: ``html.parser`` finds the
``<script>`` elements, and the JSON data islands are parsed from their text.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import zstandard

from doteval._objects import Store
from doteval._operations.diff import changed_samples, diff_experiments
from doteval._operations.export import export, iter_rows, jsonable
from doteval._operations.report import default_filename, diff_report, experiment_report, render_html
from doteval._operations.report.charts import nice_ticks
from doteval._operations.report.data import histogram
from doteval._operations.report.render import island_json
from doteval._repository.history import resolve
from doteval._repository.manifest import Manifest
from doteval._repository.results import Result, Score
from doteval._running.experiment_run import ExperimentRun, RunOptions
from doteval._running.fingerprint import params_fingerprint
from doteval._running.foreach import EvaluationSpec
from doteval._running.retries import RetryPolicy
from doteval.metrics import accuracy, mean

INJECTED = (
    '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned_img = 1"><!--<script>'
)
PARAM_INJECTED = "</script><script>window.__pwned_param = 1</script>"
INJECTED_ITEM = 3  # the item whose response is INJECTED

# -- recording experiments --------------------------------------------------------


class ToyModel:
    """Deterministic answers to "What is I + J?": right, off by one, or an error."""

    def __init__(self, version: int, note: str = "toy") -> None:
        self.version = version
        self.note = note

    def __doteval_params__(self) -> dict[str, object]:
        return {"name": "toy", "version": self.version, "note": self.note}

    def answer(self, i: int, expected: str) -> str:
        if i % 23 == 5:
            raise ValueError(f"the model refused item {i}")
        if i % 31 == 7:
            raise KeyError("choices")
        if i % 29 == self.version:
            raise RuntimeError(f"version {self.version} crashed on item {i}")
        if i == INJECTED_ITEM:  # right in version 1, wrong in the others
            return (
                f"The answer is {expected}. {INJECTED}"
                if self.version == 1
                else f"{INJECTED} The answer is 0."
            )
        value = int(expected) + (1 if (i * 7 + self.version) % 5 == 0 else 0)
        return f"The answer is {value}."


def eval_toy(question, expected, model):
    i = int(question.split()[2])
    response = model.answer(i, expected)
    correct = response.startswith(f"The answer is {expected}.")
    return Result(
        Score("correct", correct, accuracy),
        prompt=question,
        response=response,
        scores={"length": Score("length", len(response), mean)},
        metadata={"i": i},
    )


def items(n: int) -> list[tuple[str, str]]:
    return [(f"What is {i} + {i % 7}?", str(i + i % 7)) for i in range(n)]


def record(
    store: Store,
    name: str,
    n: int,
    version: int,
    *,
    note: str = "toy",
    func: Any = eval_toy,
    node_id: str = "evals/eval_toy.py::eval_toy",
) -> Manifest:
    """One run of ``func`` over ``items(n)`` into experiment ``name``."""
    run = ExperimentRun(store, RunOptions(experiment=name, retry=RetryPolicy(max_retries=0)))
    run.open()
    try:
        spec = EvaluationSpec(func, ("question", "expected"), items(n))
        prepared = run.prepare(node_id, spec)
        fixtures = {"model": ToyModel(version, note)}
        run.run_evaluation(prepared, fixtures, params_fingerprint(fixtures))
    finally:
        manifest = run.close()
    assert manifest is not None
    return manifest


@pytest.fixture
def store(store_path: Path) -> Store:
    return Store(store_path)


@pytest.fixture
def two_experiments(store: Store) -> Store:
    """``base``: two runs (40 items, then 60); ``cand``: one run of another model version."""
    record(store, "base", 40, 1)
    record(store, "base", 60, 1)
    record(store, "cand", 60, 2)
    return store


# -- reading a page back ----------------------------------------------------------------


class Scripts(HTMLParser):
    """Every <script> element: its attributes and text; every src/href attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, Any]] = []
        self.links: list[tuple[str, str, str]] = []
        self._in_script = False
        self.csp = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy":
            self.csp = dict(attrs).get("content") or ""
        for k, v in attrs:
            if k in ("src", "href", "action", "srcset", "poster", "data") or k.startswith("xlink"):
                self.links.append((tag, k, v or ""))
        if tag == "script":
            self.scripts.append({"attrs": dict(attrs), "text": ""})
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1]["text"] += data


def parse_page(html: str) -> Scripts:
    parser = Scripts()
    parser.feed(html)
    parser.close()
    return parser


def islands(html: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary, rows) parsed back from the page's data islands."""
    found = {s["attrs"].get("id"): s for s in parse_page(html).scripts}
    summary = json.loads(found["report-data"]["text"])
    doc = json.loads(found["report-rows"]["text"])
    if doc["encoding"] == "gzip+base64":
        rows = json.loads(gzip.decompress(base64.b64decode(doc["data"])))
    else:
        assert doc["encoding"] == "json"
        rows = doc["data"]
    return summary, rows


def cli(*args: str) -> tuple[int, str]:
    from doteval._cli import main

    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue()


# -- the diff page holds what `doteval diff --json` computes ------------------------------


def test_diff_page_has_the_numbers_of_doteval_diff_json(two_experiments: Store) -> None:
    html = render_html(diff_report(two_experiments, "base", "cand"))
    summary, rows = islands(html)
    expected = jsonable(diff_experiments(two_experiments, "base", "cand").to_json())
    assert summary["diff"] == expected
    code, out = cli("diff", "base", "cand", "--json")
    assert code == 0
    assert summary["diff"] == json.loads(out)
    metrics = summary["diff"]["evaluations"][0]["metrics"]
    assert [m["score"] for m in metrics] == ["correct", "length"]
    assert metrics[0]["improved"] > 0 and metrics[0]["regressed"] > 0

    # The changed samples are those of `doteval diff --samples`, in the same order.
    report = diff_experiments(two_experiments, "base", "cand")
    listed = list(changed_samples(two_experiments, report))
    assert rows["n"] == len(listed) == summary["changed"]["total"]
    direction = {"regressed": -1, "changed": 0, "improved": 1}
    assert rows["direction"] == [direction[s["direction"]] for s in listed]
    assert rows["a_response"] == [s["a"]["response"] for s in listed]
    assert rows["b_response"] == [s["b"]["response"] for s in listed]
    assert rows["a_key"] == [s["a"]["key"][:16] for s in listed]
    assert rows["item"] == [[s["item"]["question"], s["item"]["expected"]] for s in listed]
    regressed = list(changed_samples(two_experiments, report, regressions_only=True))
    assert summary["changed"]["regressed"] == len(regressed) == rows["direction"].count(-1) > 0
    k = rows["score_names"].index("correct")
    for i, s in enumerate(listed):
        assert rows["a_scores"][k][i] == s["a"]["scores"].get("correct")
        assert rows["b_scores"][k][i] == s["b"]["scores"].get("correct")
        assert (rows["a_error"][i] is None) == (s["a"]["error"] is None)

    # ...and the page shows them: every metric's delta, as the CLI formats it.
    for m in metrics:
        assert f"{m['delta']:+.4g}" in html
    assert "base" in summary["a"]["label"] and summary["b"]["label"] == "cand"


def test_diff_page_with_a_revision_and_a_seed(two_experiments: Store) -> None:
    first = resolve(two_experiments, "base~1")
    summary, _ = islands(render_html(diff_report(two_experiments, "base~1", "cand", seed=7)))
    assert summary["diff"] == jsonable(diff_experiments(two_experiments, "base~1", "cand", seed=7).to_json())
    assert summary["a"]["id"] == first.manifest_id
    assert summary["a"]["head"] is False and summary["diff"]["seed"] == 7


# -- the experiment page: header, metrics, history, distribution, errors, rows ----------


def test_experiment_page_header_and_metrics(two_experiments: Store) -> None:
    store = two_experiments
    rev = resolve(store, "base")
    m = rev.manifest
    html = render_html(experiment_report(store, "base"))
    summary, rows = islands(html)
    h = summary["header"]
    assert h["experiment"] == "base" and h["id"] == rev.manifest_id and h["head"] is True
    assert h["status"] == m.status == "failed"  # errored samples make a run Failed
    assert (h["done"], h["total"], h["errors"]) == (m.done, m.total, m.errors) == (m.done, 60, m.errors)
    assert h["errors"] > 0
    assert h["duration"] > 0
    assert h["git_commit"] == m.git_commit
    ev = summary["evaluations"][0]
    assert ev["fingerprint"] == m.evaluations[0].fingerprint
    assert ev["params"] == m.evaluations[0].params
    assert ev["metrics"] == m.evaluations[0].metrics
    assert ev["fingerprint"][:12] in html
    params = html[html.index('id="fact-params"') :].split("</dd>")[0]
    # Params read as `doteval show` writes them, not as JSON.
    assert "model=ToyModel(name=&#39;toy&#39;, note=&#39;toy&#39;, version=1)" in params, params
    # Each metric says which samples it covers: the errors are not scored.
    metrics = html[html.index('id="metrics-table"') :].split("</table>")[0]
    done, total, errors = m.evaluations[0].done, m.evaluations[0].total, m.evaluations[0].errors
    assert f"<td>{done} of {total} samples; {errors} errors not scored</td>" in metrics, metrics
    # The header as a person reads it.
    assert f"{m.done} / {m.total}" in html
    assert re.search(r'id="fact-errors"[^>]*>' + str(m.errors) + "<", html)
    for metric in m.evaluations[0].metrics:
        assert f"{metric['score']}.{metric['metric']}" in html
        assert f"{metric['value']:.4g}" in html

    # History: both runs, oldest first, each with that run's metric values.
    history = summary["history"]
    assert len(history["runs"]) == 2
    runs = [resolve(store, "base~1").manifest, m]
    correct = next(s for s in history["series"] if s["score"] == "correct")
    expected = [next(x["value"] for x in r.evaluations[0].metrics if x["score"] == "correct") for r in runs]
    assert correct["values"] == expected
    assert [r["done"] for r in history["runs"]] == [r.done for r in runs]

    # Distribution: true/false counts of `correct`, integer bins of `length`.
    hists = {h["score"]: h for h in summary["histograms"]}
    ok = [i for i, s in enumerate(rows["status"]) if s != 2]
    k = rows["score_names"].index("correct")
    trues = sum(1 for i in ok if rows["scores"][k][i] is True)
    assert hists["correct"]["bins"] == [["false", len(ok) - trues], ["true", trues]]
    assert sum(b[-1] for b in hists["length"]["bins"]) == len(ok) == m.done

    # Errors by type, with counts.
    errors = {e["type"]: e["count"] for e in summary["errors"]}
    model = ToyModel(1)
    kinds: dict[str, int] = {}
    for i, (_, answer) in enumerate(items(60)):
        try:
            model.answer(i, answer)
        except Exception as e:
            kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
    assert errors == kinds and len(kinds) == 3
    assert sum(errors.values()) == m.errors
    assert "the model refused item 5" in html


def test_experiment_rows_are_every_sample(two_experiments: Store) -> None:
    store = two_experiments
    report = experiment_report(store, "base")
    expected = list(iter_rows(store, resolve(store, "base")))
    rows = report.rows
    assert rows["n"] == len(expected) == 60
    assert rows["key"] == [r["sample_key"][:16] for r in expected]
    assert rows["response"] == [r["response"] for r in expected]
    assert rows["prompt"] == [r["prompt"] for r in expected]
    assert rows["item"] == [[r["item"]["question"], r["item"]["expected"]] for r in expected]
    statuses = []
    for r in expected:
        if r["status"] == "error":
            statuses.append(2)
        else:
            statuses.append(1 if r["scores"]["correct"] is False else 0)
    assert rows["status"] == statuses
    assert statuses.count(1) > 0 and statuses.count(2) > 0
    for i, r in enumerate(expected):
        if r["error"]:
            assert rows["error_types"][rows["error_type"][i]] == r["error"]["type"]
            assert rows["error_message"][i] == r["error"]["message"]
            assert "Traceback" in rows["traceback"][i]
        else:
            assert rows["error_type"][i] is None
    # Column by column: one array per field, not one object per sample.
    assert all(
        isinstance(v, list) and len(v) == 60 for k, v in rows.items() if k in ("key", "status", "response")
    )


def test_an_older_revision_reports_its_own_state(two_experiments: Store) -> None:
    old = resolve(two_experiments, "base~1")
    summary, rows = islands(render_html(experiment_report(two_experiments, "base~1")))
    assert summary["header"]["id"] == old.manifest_id and summary["header"]["head"] is False
    assert rows["n"] == 40
    assert len(summary["history"]["runs"]) == 1


def eval_double(question, expected, model):
    i = int(question.split()[2])
    return Result(Score("half", i / 2, mean), prompt=question, response=str(2 * i))


def test_an_experiment_of_two_evaluations(store: Store) -> None:
    record(store, "two", 10, 1)
    record(store, "two", 8, 1, func=eval_double, node_id="evals/eval_double.py::eval_double")
    m = resolve(store, "two").manifest
    assert [e.node_id for e in m.evaluations] == [
        "evals/eval_toy.py::eval_toy",
        "evals/eval_double.py::eval_double",
    ]
    summary, rows = islands(render_html(experiment_report(store, "two")))
    assert [e["name"] for e in summary["evaluations"]] == [
        "eval_toy.py::eval_toy",
        "eval_double.py::eval_double",
    ]
    assert rows["ev"] == [0] * 10 + [1] * 8
    assert rows["score_names"] == ["correct", "length", "half"]
    half = rows["scores"][2]
    assert half[:10] == [None] * 10 and sorted(half[10:]) == [i / 2 for i in range(8)]
    hist = {(h["evaluation"], h["score"]): h for h in summary["histograms"]}
    assert set(hist) == {(0, "correct"), (0, "length"), (1, "half")}
    assert hist[(1, "half")]["n"] == 8 and hist[(1, "half")]["kind"] == "float"
    series = {(s["evaluation"], s["score"]): s["values"] for s in summary["history"]["series"]}
    # The first run had no eval_double: no value there.
    assert series[("evals/eval_double.py::eval_double", "half")] == [None, 1.75]
    assert len(series[("evals/eval_toy.py::eval_toy", "correct")]) == 2


# -- untrusted values stay data ------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_a_script_in_a_response_cannot_leave_the_data_island(store: Store, compress: bool) -> None:
    record(store, "x", 12, 1, note=PARAM_INJECTED)
    record(store, "y", 12, 2, note=PARAM_INJECTED + " v2")
    for report in (experiment_report(store, "x"), diff_report(store, "x", "y")):
        html = render_html(report, compress=compress)
        page = parse_page(html)
        # Exactly the page's three scripts: the two data islands and its own code.
        assert [s["attrs"].get("id") for s in page.scripts] == ["report-data", "report-rows", None]
        assert [s["attrs"].get("type") for s in page.scripts] == [
            "application/json",
            "application/json",
            None,
        ]
        summary, rows = islands(html)
        # The values come back unchanged.
        if report.kind == "experiment":
            assert f"The answer is 6. {INJECTED}" in rows["response"]
            assert summary["evaluations"][0]["params"]["model"]["note"] == PARAM_INJECTED
            # Where the page writes a value as markup, it is escaped.
            assert "&lt;/script&gt;&lt;script&gt;window.__pwned_param = 1&lt;/script&gt;" in html
        else:
            assert f"The answer is 6. {INJECTED}" in rows["a_response"]
            assert f"{INJECTED} The answer is 0." in rows["b_response"]
            assert PARAM_INJECTED in json.dumps(summary["diff"])
        assert "<script>window.__pwned" not in html
        for s in page.scripts[:2]:
            assert "</" not in s["text"] and "<!--" not in s["text"]


def test_island_json_escapes_what_could_end_a_script_element() -> None:
    value = {"a": "</script>", "b": "<!--<script>", "c": "x & y > z", "d": "\u2028"}
    text = island_json(value)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == value


def test_the_page_loads_nothing_from_the_network(two_experiments: Store) -> None:
    for report in (experiment_report(two_experiments, "base"), diff_report(two_experiments, "base", "cand")):
        html = render_html(report)
        page = parse_page(html)
        # No src, and links only to places in the page itself.
        assert all(k == "href" and v.startswith("#") for _, k, v in page.links), page.links
        assert "<link" not in html and "@import" not in html and "url(" not in html
        # No address anywhere, except inside the data (a response may well hold one).
        outside = html
        for s in page.scripts[:2]:
            outside = outside.replace(s["text"], "")
        assert "http://" not in outside and "https://" not in outside and "//cdn" not in outside
        # The browser is told so too.
        csp = page.csp
        assert "default-src 'none'" in csp and "connect-src" not in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_urls_in_data_are_only_text(store: Store) -> None:
    def eval_links(question, expected, model):
        return Result(True, prompt=question, response="see https://example.invalid/x and http://a.b/")

    record(store, "links", 3, 1, func=eval_links, node_id="eval_links.py::eval_links")
    html = render_html(experiment_report(store, "links"), compress=False)
    page = parse_page(html)
    assert "https://example.invalid/x" in page.scripts[1]["text"]
    assert all(v.startswith("#") for _, _, v in page.links)


# -- size ----------------------------------------------------------------------------------


def test_ten_thousand_samples_stay_within_a_few_times_their_compressed_size(store: Store) -> None:
    record(store, "big", 10_000, 1)
    rev = resolve(store, "big")
    out = io.StringIO()
    assert export(store, rev, "jsonl", out) == 10_000
    exported = len(zstandard.ZstdCompressor().compress(out.getvalue().encode()))
    # What the page shows of each result: the export, keys by prefix.
    shown = []
    for row in iter_rows(store, rev):
        row = {**row, "sample_key": row["sample_key"][:16]}
        shown.append(json.dumps(jsonable(row), ensure_ascii=False, sort_keys=True))
    compressed = len(zstandard.ZstdCompressor().compress("\n".join(shown).encode()))
    html = render_html(experiment_report(store, "big"))
    size = len(html.encode())
    assert size <= 2 * compressed, (size, compressed)
    assert size <= exported, (size, exported)
    _, rows = islands(html)
    assert rows["n"] == 10_000
    assert '"encoding":"gzip+base64"' in html


# -- the command ------------------------------------------------------------------------------


def test_report_command_writes_the_default_file_and_says_where(
    two_experiments: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = cli("report", "base")
    assert code == 0, out
    path = tmp_path / "doteval-report-base.html"
    assert path.exists() and "doteval-report-base.html" in out and "60 samples" in out
    summary, _ = islands(path.read_text(encoding="utf-8"))
    assert summary["kind"] == "experiment"

    code, out = cli("report", "base", "--vs", "cand")
    assert code == 0, out
    assert (tmp_path / "doteval-diff-base-vs-cand.html").exists()
    assert "doteval-diff-base-vs-cand.html" in out

    code, out = cli("report", "base~1", "--vs", "cand", "-o", str(tmp_path / "sub.html"), "--seed", "3")
    assert code == 0, out
    summary, _ = islands((tmp_path / "sub.html").read_text(encoding="utf-8"))
    assert summary["diff"]["seed"] == 3
    assert not list(tmp_path.glob(".*.tmp"))

    code, out = cli("report", "base", "-o", str(tmp_path / "no" / "such" / "r.html"))
    assert code == 2 and "does not exist" in out


def test_report_command_on_a_missing_experiment(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = cli("report", "nope")
    assert code == 1
    assert "nope" in out
    assert not list(tmp_path.glob("*.html"))


def test_default_filenames() -> None:
    assert default_filename("math_v1") == "doteval-report-math_v1.html"
    assert default_filename("a@1234abcd") == "doteval-report-a@1234abcd.html"
    assert default_filename("a", "b~1") == "doteval-diff-a-vs-b~1.html"


# -- chart numbers ------------------------------------------------------------------------------


def test_histogram_bins() -> None:
    assert histogram([True, False, True, None]) == {
        "kind": "bool",
        "n": 3,
        "bins": [["false", 1], ["true", 2]],
    }
    h = histogram([1, 2, 2, 5])
    assert h is not None and h["kind"] == "int"
    assert [b[0] for b in h["bins"]] == [1, 2, 3, 4, 5] and [b[-1] for b in h["bins"]] == [1, 2, 0, 0, 1]
    h = histogram([i / 100 for i in range(100)])
    assert h is not None and h["kind"] == "float" and sum(b[-1] for b in h["bins"]) == 100
    assert len(h["bins"]) == 10
    assert histogram(["a", "b"]) is None and histogram([]) is None
    assert histogram([3.5, 3.5])["bins"] == [[3.5, 3.5, 2]]  # type: ignore[index]


def test_nice_ticks() -> None:
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(0.81, 0.93) == [0.825, 0.85, 0.875, 0.9, 0.925]
    assert nice_ticks(0.788, 0.7955) == [0.788, 0.79, 0.792, 0.794]
    assert nice_ticks(0, 60, 3) == [0, 20, 40, 60]
    assert nice_ticks(2, 2) == [2]
