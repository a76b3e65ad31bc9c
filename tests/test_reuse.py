"""Reuse by sample key (issue 13): a run takes a finished result of the same key from the
experiment's history (earlier lines) or from another experiment's (``--reuse-from``) instead
of calling the model again. Real pytest sessions with a model that counts its calls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from projects import PytesterProject, counting_conftest
from storekit import PYTEST_FLAGS, cli, cli_json, json_dataset_eval

from doteval._objects import Store
from doteval._operations.fsck import fsck
from doteval._repository.manifest import EvaluationRecord, Manifest
from doteval._repository.run_journal import read_head
from doteval._repository.sample_tables import FLAG_OK, load_view
from doteval.errors import CorruptStoreError

EVAL = json_dataset_eval('response.split("#")[0] == expected')
# The same model calls, another scorer: another code fingerprint, so other sample keys.
EVAL_SCORER = EVAL.replace('response.split("#")[0] == expected', 'response.partition("#")[0] == expected')


class Project(PytesterProject):
    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = Path(os.environ["DOTEVAL_STORE"])
        super().__init__(pytester, monkeypatch, counting_conftest(tagged=True))
        monkeypatch.setenv("COLUMNS", "200")
        self.write("eval_upper.py", EVAL)

    def data(self, prompts: list[str]) -> None:
        self.write("data.json", json.dumps([[p, p.upper()] for p in prompts]))

    def run(
        self, *args: str, tag: str, experiment: str = "x", fail: tuple[str, ...] = (), ret: int = 0
    ) -> tuple[list[str], str]:
        """One pytest session: the model calls it made, and its output."""
        self.mp.setenv("DOTEVAL_TEST_TAG", tag)
        self.mp.setenv("DOTEVAL_TEST_FAIL", ",".join(fail))
        result = self.pytest("eval_upper.py", "--experiment", experiment, *args)
        text = "\n".join(result.outlines + result.errlines)
        assert result.ret == ret, text
        assert "Traceback" not in text, text
        return self.take_calls(), text

    def record(self, name: str = "x", store: Path | None = None) -> EvaluationRecord:
        head = read_head(Store(store or self.store), name)
        assert head.manifest is not None
        (ev,) = head.manifest.evaluations
        return ev

    def responses(self, name: str = "x", store: Path | None = None) -> dict[str, str | None]:
        """Prompt -> response of the experiment's current view (None for an error)."""
        st = Store(store or self.store)
        view = load_view(st, self.record(name, store))
        out: dict[str, str | None] = {}
        for i in range(len(view)):
            record = view.result(i)
            out[record["item"][0]] = record["response"] if view.flags[i] == FLAG_OK else None
        return out


@pytest.fixture
def proj(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(pytester, monkeypatch)


def fsck_clean(store: Path) -> None:
    report = fsck(Store(store))
    assert report.ok, [p.to_json() for p in report.problems]


def key_of(store: Path, name: str, prompt: str) -> str:
    rows = cli_json(store, "show", name, "--full")["samples"]
    return next(r["key"] for r in rows if r["item"]["prompt"] == prompt)


def test_back_to_earlier_params_reuses_every_result_with_no_model_call(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = [f"q{i}" for i in range(6)]
    proj.data(data)
    calls, _ = proj.run(tag="t0")  # temperature 0.0: the model's params, version 1
    assert calls == data
    first = proj.responses()

    monkeypatch.setenv("MODEL_VERSION", "2")  # temperature 0.7
    calls, _ = proj.run("--rerun-changed", tag="t7")
    assert calls == data
    assert proj.record().line == 2

    monkeypatch.setenv("MODEL_VERSION", "1")  # back to 0.0
    calls, out = proj.run("--rerun-changed", "--dry-run", tag="dry")
    assert calls == []
    assert "6 items: reuse 6 (6 from earlier lines or --reuse-from), evaluate 0 " in out
    calls, out = proj.run("--rerun-changed", tag="back")
    assert calls == []
    assert "this run evaluated 0, reused 0, reused 6 from earlier lines." in out
    ev = proj.record()
    assert (ev.line, ev.done, ev.run["evaluated"], ev.run["earlier"]) == (3, 6, 0, 6)
    assert proj.responses() == first  # the results of the first line, as they were
    # the same run again: a plain resume, nothing from earlier lines
    calls, out = proj.run(tag="again")
    assert calls == [] and "reused 6." in out
    log = cli_json(proj.store, "log", "x")["entries"]
    assert [e["reused_earlier"] for e in log] == [6, 0, 0]  # "again" changed nothing: no run record
    assert "reused 6 from earlier lines" in cli(proj.store, "log", "x", "--oneline").stdout
    assert cli_json(proj.store, "show", "x")["evaluations"][0]["last_run"] == ev.run
    fsck_clean(proj.store)


def test_errors_are_never_reused(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ["a", "b", "c"]
    proj.data(data)
    calls, _ = proj.run(tag="r1", fail=("b",))
    assert calls == data
    monkeypatch.setenv("MODEL_VERSION", "2")
    proj.run("--rerun-changed", tag="r2", fail=("b",))
    monkeypatch.setenv("MODEL_VERSION", "1")
    calls, out = proj.run("--rerun-changed", tag="r3")
    assert calls == ["b"]  # a and c come from line 1; its error for b is evaluated again
    assert "this run evaluated 1, reused 0, reused 2 from earlier lines." in out
    assert proj.responses() == {"a": "A#r1.0", "b": "B#r3.0", "c": "C#r1.0"}


def test_reuse_from_another_experiment_takes_exact_keys_only(proj: Project) -> None:
    data = ["a", "b", "c"]
    proj.data(data)
    proj.run(tag="theirs", experiment="colleague")
    proj.data([*data, "d"])
    calls, out = proj.run("--reuse-from", "colleague", tag="mine", experiment="mine")
    assert calls == ["d"]
    assert "this run evaluated 1, reused 0, reused 3 from experiment 'colleague'." in out
    assert proj.responses("mine") == {
        "a": "A#theirs.0",
        "b": "B#theirs.0",
        "c": "C#theirs.0",
        "d": "D#mine.0",
    }
    assert proj.record("mine").run["imported"] == 3

    # the colleague fixes the scorer: a new line, whose keys are new (its own history has none)
    proj.write("eval_upper.py", EVAL_SCORER)
    calls, _ = proj.run("--rerun-changed", tag="fixed", experiment="colleague")
    assert calls == [*data, "d"]
    calls, _ = proj.run("--reuse-from", "colleague", tag="new", experiment="other")
    assert calls == []  # the fixed scorer's line of the colleague: same keys

    # a scorer the colleague never ran, or params nobody ran: no key matches, nothing reused
    proj.write("eval_upper.py", EVAL_SCORER.replace("== expected", "== expected.upper()"))
    calls, _ = proj.run("--reuse-from", "colleague", tag="third", experiment="third")
    assert calls == [*data, "d"]
    proj.write("eval_upper.py", EVAL)
    proj.mp.setenv("MODEL_VERSION", "3")
    calls, _ = proj.run("--reuse-from", "colleague", tag="v3", experiment="fourth")
    assert calls == [*data, "d"]
    fsck_clean(proj.store)


def test_reuse_from_an_unknown_experiment_is_one_line(proj: Project) -> None:
    proj.data(["a"])
    proj.run(tag="r1")
    _calls, out = proj.run("--reuse-from", "nobody", tag="r2", ret=1)
    assert "Error: --reuse-from nobody: no experiment 'nobody' in this store" in out
    assert _calls == []
    result = cli(proj.store, "run", "eval_upper.py", "--reuse-from", "nobody", "-e", "y", ok=False)
    assert result.returncode == 1, result
    assert "no experiment 'nobody'" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    # a name that is no experiment name is refused with the other options, before the session
    _calls, out = proj.run("--reuse-from", "../x", tag="r3", ret=4)
    assert "--reuse-from" in out and _calls == []
    result = cli(proj.store, "run", "eval_upper.py", "--reuse-from", "", ok=False)
    assert result.returncode == 2 and "--reuse-from" in result.stderr


def test_show_why_names_where_a_result_came_from(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    proj.data(["a", "b"])
    proj.run(tag="r1")
    first = proj.record()
    monkeypatch.setenv("MODEL_VERSION", "2")
    proj.run("--rerun-changed", tag="r2")
    monkeypatch.setenv("MODEL_VERSION", "1")
    proj.data(["a", "b", "c"])
    proj.run("--rerun-changed", tag="r3")
    proj.run("--reuse-from", "x", tag="r4", experiment="y")

    key = key_of(proj.store, "x", "a")
    why = cli_json(proj.store, "show", "x", "--sample", key, "--why")["why"]["origin"]
    run1 = read_head(Store(proj.store), "x").state
    assert run1 is not None
    assert why["how"] == "earlier line" and why["experiment"] == "x"
    line1 = [r.manifest for r in run1.history() if r.manifest is not None][-1]
    assert why["manifest"] == line1 and first.entries is not None
    text = cli(proj.store, "show", "x", "--sample", key, "--why").stdout
    assert f"Origin: reused from an earlier line: evaluated in run {line1[:10]}" in text

    head = read_head(Store(proj.store), "x").manifest_id
    assert head is not None
    key_c = key_of(proj.store, "x", "c")
    why = cli_json(proj.store, "show", "x", "--sample", key_c, "--why")["why"]["origin"]
    assert (why["how"], why["manifest"]) == ("evaluated", head)
    assert (
        "Origin: evaluated in run " + head[:10]
        in cli(proj.store, "show", "x", "--sample", key_c, "--why").stdout
    )

    why = cli_json(proj.store, "show", "y", "--sample", key, "--why")["why"]["origin"]
    assert (why["how"], why["experiment"], why["manifest"]) == ("experiment", "x", line1)
    text = cli(proj.store, "show", "y", "--sample", key, "--why").stdout
    assert f"Origin: reused from experiment 'x': evaluated in run {line1[:10]}" in text


def test_a_reused_result_survives_gc_and_push_pull(proj: Project, tmp_path: Path) -> None:
    proj.data(["a", "b"])
    proj.run(tag="r1", experiment="colleague")
    proj.run("--reuse-from", "colleague", tag="r2", experiment="mine")
    cli(proj.store, "delete", "colleague")
    cli(proj.store, "gc", "--expire-deleted", "now", "--prune", "now")
    fsck_clean(proj.store)
    assert proj.responses("mine") == {"a": "A#r1.0", "b": "B#r1.0"}
    key = key_of(proj.store, "mine", "a")
    why = cli_json(proj.store, "show", "mine", "--sample", key, "--why")["why"]["origin"]
    assert (why["how"], why["experiment"]) == ("experiment", "colleague")

    remote, pulled = tmp_path / "remote", tmp_path / "pulled"
    cli(proj.store, "push", str(remote))
    cli(pulled, "pull", str(remote))
    fsck_clean(pulled)
    assert proj.responses("mine", pulled) == {"a": "A#r1.0", "b": "B#r1.0"}
    assert proj.record("mine", pulled).origins == proj.record("mine").origins


def test_a_killed_run_keeps_what_it_reused(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reuse is journaled before anything is evaluated: the next writer seals it from the
    journal on disk (its records checked) with the results the dead run evaluated."""
    proj.data(["a", "b"])
    proj.run(tag="r1")
    monkeypatch.setenv("MODEL_VERSION", "2")
    proj.run("--rerun-changed", tag="r2")
    monkeypatch.setenv("MODEL_VERSION", "1")
    proj.data(["a", "b", "c", "d"])
    marker = proj.path / "hung"
    env = dict(
        os.environ,
        DOTEVAL_TEST_TAG="k",
        DOTEVAL_TEST_HANG="d",
        DOTEVAL_TEST_HANG_FILE=str(marker),
        PYTHONDONTWRITEBYTECODE="1",
    )
    args = [sys.executable, "-m", "pytest", "eval_upper.py", "--experiment", "x", "--rerun-changed"]
    proc = subprocess.Popen(
        [*args, *PYTEST_FLAGS[1:]], cwd=proj.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proj.take_calls() == ["c", "d"]

    calls, _ = proj.run(tag="r3")  # seals the dead run (line 3), then goes on with it
    assert calls == ["d"]
    assert proj.responses() == {"a": "A#r1.0", "b": "B#r1.0", "c": "C#k.0", "d": "D#r3.0"}
    ev = proj.record()
    assert ev.line == 3 and len(ev.origins) == 1
    fsck_clean(proj.store)


def test_origins_are_written_only_when_there_are_some_and_checked_when_read() -> None:
    ev = EvaluationRecord(node_id="e", fingerprint="f", params_digest="p")
    manifest = Manifest(
        experiment="x", parent=None, status="completed", started=1.0, finished=2.0, evaluations=[ev]
    )
    value = manifest.to_value()
    assert "origins" not in value["evaluations"][0]  # as manifests were before origins
    assert Manifest.from_value(value).evaluations[0].origins == {}
    table, run = "a" * 64, "b" * 64
    ev.origins = {table: {"experiment": "y", "manifest": run, "finished": 3.0}}
    assert Manifest.from_value(manifest.to_value()).evaluations[0].origins == ev.origins
    for bad in (
        {"not-an-id": {"experiment": "y", "manifest": run, "finished": 3.0}},
        {table: {"experiment": 7, "manifest": run, "finished": 3.0}},
        {table: {"experiment": "y", "manifest": "../x", "finished": 3.0}},
        {table: {"experiment": "y", "manifest": run, "finished": 1e300}},
        {table: "y"},
    ):
        ev.origins = bad  # type: ignore[assignment]
        with pytest.raises(CorruptStoreError):
            Manifest.from_value(manifest.to_value())
