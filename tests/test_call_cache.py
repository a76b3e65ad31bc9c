"""The call cache (``@cached``), proved with real pytest sessions and a stand-in model that
appends every call it really makes to a file (``calls.txt``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from projects import PytesterProject
from storekit import cli, loose_path, read_export

from doteval._objects import Store
from doteval._operations.fsck import fsck
from doteval._repository.call_entries import entry_value, load_calls, stored_calls
from doteval._repository.manifest import load_manifest
from doteval._repository.run_journal import Head, RunRecorder, read_head


def store_path() -> Path:
    return Path(os.environ["DOTEVAL_STORE"])


CACHED_CONFTEST = """
import asyncio
import os
from dataclasses import dataclass

import pydantic
import pytest

from doteval import cached

TEMPLATE = "Answer: {prompt}"


def _count(prompt):
    with open(os.environ["DOTEVAL_TEST_CALLS"], "a") as f:
        f.write(f"{prompt}\\n")
    with open(os.environ["DOTEVAL_TEST_CALLS"]) as f:
        return sum(1 for _ in f)  # how many calls this project made so far


class Model:
    def __doteval_params__(self):
        return {"name": "counting", "version": int(os.environ.get("MODEL_VERSION", "1"))}

    @cached
    def generate(self, prompt):
        n = _count(prompt)
        if prompt == "random":
            return f"{TEMPLATE.format(prompt=prompt)}#{n}"
        return TEMPLATE.format(prompt=prompt).upper()


@pytest.fixture
def model():
    return Model()


@dataclass
class Reply:
    text: str
    parts: tuple


class Message(pydantic.BaseModel):
    content: str


class Choice(pydantic.BaseModel):
    message: Message


class Usage(pydantic.BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(pydantic.BaseModel):
    choices: list[Choice]
    usage: Usage


@cached
def reply(prompt) -> Reply:
    _count(prompt)
    return Reply(prompt.upper(), (1, "two"))


@cached
def complete(prompt) -> Completion:
    _count(prompt)
    return Completion(
        choices=[Choice(message=Message(content=prompt.upper()))],
        usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
    )


@cached
def pair(prompt) -> tuple[str, int]:
    _count(prompt)
    return (prompt, len(prompt))


@cached
def slow_sync(prompt):
    _count(prompt)
    import time
    time.sleep(0.3)
    return prompt.upper()


class Client:
    pass


@cached
def unstorable(prompt, client):
    _count(prompt)
    return Client()


@cached
async def slow(prompt):
    _count(prompt)
    await asyncio.sleep(0.3)
    return prompt.upper()
"""

EVAL = """
from doteval import foreach, Result, Score

@foreach("prompt,expected", [("a", "ANSWER: A"), ("b", "ANSWER: B"), ("c", "ANSWER: C")])
def eval_answer(prompt, expected, model):
    response = model.generate(prompt)
    return Result(Score("ok", response == expected), prompt=prompt, response=response)
"""

# The same evaluation with its scorer fixed: a code change, the same model calls.
EVAL_FIXED = EVAL.replace("response == expected", "response.strip() == expected")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> PytesterProject:
    monkeypatch.delenv("MODEL_VERSION", raising=False)
    return PytesterProject(pytester, monkeypatch, CACHED_CONFTEST)


def run(project: PytesterProject, experiment: str, *args: str) -> pytest.RunResult:
    result = project.pytest("--experiment", experiment, *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    return result


def responses(project: PytesterProject, experiment: str) -> list[object]:
    rows = cli(store_path(), "export", experiment, "-f", "jsonl").stdout.splitlines()
    return [json.loads(r).get("response") for r in rows]


def test_a_scorer_fix_under_rerun_changed_makes_no_calls(project: PytesterProject) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e")
    assert project.take_calls() == ["a", "b", "c"]
    project.write("eval_x.py", EVAL_FIXED)
    run(project, "e", "--rerun-changed")
    assert project.take_calls() == []
    assert responses(project, "e") == ["ANSWER: A", "ANSWER: B", "ANSWER: C"]


def test_a_new_experiment_with_the_same_code_makes_no_calls(project: PytesterProject) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e1")
    assert project.take_calls() == ["a", "b", "c"]
    run(project, "e2")
    assert project.take_calls() == []
    assert responses(project, "e2") == ["ANSWER: A", "ANSWER: B", "ANSWER: C"]


@pytest.mark.parametrize("change", ["function", "constant", "params"])
def test_a_change_to_the_call_makes_every_call(
    project: PytesterProject, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e1")
    assert project.take_calls() == ["a", "b", "c"]
    if change == "function":
        project.write(
            "conftest.py", CACHED_CONFTEST.replace(".upper()\n\n\n@pytest", ".upper().strip()\n\n\n@pytest")
        )
    elif change == "constant":
        project.write("conftest.py", CACHED_CONFTEST.replace('"Answer: {prompt}"', '"Answer:  {prompt}"'))
    else:
        monkeypatch.setenv("MODEL_VERSION", "2")
    run(project, "e2")
    assert project.take_calls() == ["a", "b", "c"]


def test_identical_calls_in_a_sample_replay_their_answers_in_order(project: PytesterProject) -> None:
    project.write(
        "eval_x.py",
        """
        from doteval import foreach, Result, Score

        @foreach("prompt", [("random",)])
        def eval_thrice(prompt, model):
            answers = [model.generate(prompt) for _ in range(3)]
            return Result(Score("ok", True), prompt=prompt, response=" ".join(answers))
        """,
    )
    run(project, "e1")
    assert project.take_calls() == ["random"] * 3
    first = responses(project, "e1")
    assert first == ["Answer: random#1 Answer: random#2 Answer: random#3"]
    run(project, "e2")
    assert project.take_calls() == []
    assert responses(project, "e2") == first


def test_a_miss_under_cache_only_is_that_samples_error(project: PytesterProject) -> None:
    project.write("eval_x.py", EVAL.replace(', ("c", "ANSWER: C")', ""))
    run(project, "e1")
    assert project.take_calls() == ["a", "b"]
    project.write("eval_x.py", EVAL)  # a sample more: its call was never made
    project.pytest("--experiment", "e2", "--cache-only")
    assert project.take_calls() == []
    rows = [json.loads(r) for r in read_export(store_path(), "e2").splitlines()]
    assert [r.get("response") for r in rows[:2]] == ["ANSWER: A", "ANSWER: B"]
    error = rows[2]["error"]
    assert error["type"] == "doteval.errors.CacheMissError"
    assert "conftest.Model.generate" in error["message"]


@pytest.mark.parametrize("how", [[], ["--no-rsync"]], ids=["rsync", "copies"])
def test_a_pushed_and_pulled_store_replays_with_cache_only(
    project: PytesterProject, tmp_path_factory: pytest.TempPathFactory, how: list[str]
) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e1")
    assert project.take_calls() == ["a", "b", "c"]
    remote = tmp_path_factory.mktemp("remote") / "store"
    cli(store_path(), "push", str(remote), *how)
    colleague = tmp_path_factory.mktemp("colleague") / ".doteval"
    cli(colleague, "pull", str(remote), *how)
    shutil.rmtree(store_path())
    run(project, "e2", "--cache-only", "--store", str(colleague))
    assert project.take_calls() == []
    rows = cli(colleague, "export", "e2", "-f", "jsonl").stdout.splitlines()
    assert [json.loads(r).get("response") for r in rows] == ["ANSWER: A", "ANSWER: B", "ANSWER: C"]


def test_no_cache_makes_every_call_and_stores_the_answers(project: PytesterProject) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e1")
    project.take_calls()
    run(project, "e2", "--no-cache")
    assert project.take_calls() == ["a", "b", "c"]
    store = Store(store_path())
    manifest = read_head(store, "e2").manifest
    assert manifest is not None and manifest.calls is not None
    assert len(load_calls(store, manifest.calls)) == 3
    assert manifest.call_counts["made"] == 3


def test_a_hit_has_the_type_of_the_original(project: PytesterProject) -> None:
    project.write(
        "eval_x.py",
        """
        from conftest import Reply, Completion, complete, pair, reply
        from doteval import foreach, Result, Score

        @foreach("prompt", [("x",), ("y",)])
        def eval_types(prompt):
            r, c, p = reply(prompt), complete(prompt), pair(prompt)
            same = (
                type(r) is Reply and r.parts == (1, "two") and r.text == prompt.upper()
                and type(c) is Completion and c.choices[0].message.content == prompt.upper()
                and type(c.usage).__name__ == "Usage"
                and p == (prompt, 1) and type(p) is tuple
            )
            return Result(Score("same", same), prompt=prompt)
        """,
    )
    run(project, "e1")
    assert len(project.take_calls()) == 6
    run(project, "e2")
    assert project.take_calls() == []
    rows = [json.loads(r) for r in cli(store_path(), "export", "e2", "-f", "jsonl").stdout.splitlines()]
    assert [r["scores"] for r in rows] == [{"same": True}] * 2, rows
    store = Store(store_path())
    e2 = read_head(store, "e2").manifest
    assert e2 is not None and e2.call_counts == {
        "made": 0,
        "cached": 6,
        "tokens_spent": 0,
        "tokens_saved": 14,
    }


def test_two_concurrent_identical_async_calls_make_one_call(project: PytesterProject) -> None:
    project.write(
        "eval_x.py",
        """
        from conftest import slow
        from doteval import foreach, Result, Score

        @foreach("prompt", [("same",), ("same",)])
        async def eval_async(prompt):
            return Result(Score("ok", True), prompt=prompt, response=await slow(prompt))
        """,
    )
    run(project, "e1", "--concurrency", "2")
    assert project.take_calls() == ["same"]
    assert responses(project, "e1") == ["SAME", "SAME"]


def test_outside_a_run_cached_calls_through(project: PytesterProject) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("cached_conftest", project.path / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.Model().generate("a") == module.Model().generate("a") == "ANSWER: A"
    assert project.take_calls() == ["a", "a"]


def test_the_manifest_names_the_calls_it_used(project: PytesterProject) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e1")
    run(project, "e2")
    store = Store(store_path())
    for name, counts in (("e1", {"made": 3, "cached": 0}), ("e2", {"made": 0, "cached": 3})):
        head = read_head(store, name)
        assert head.manifest is not None and head.manifest_id is not None
        manifest = load_manifest(store, head.manifest_id)
        assert manifest.calls is not None and len(load_calls(store, manifest.calls)) == 3
        assert {k: manifest.call_counts[k] for k in counts} == counts


def test_gc_keeps_the_entries_runs_used_and_removes_the_others_after_the_grace(
    project: PytesterProject,
) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e1")
    project.take_calls()
    store = Store(store_path())
    orphan = store.objects.put(entry_value("conftest.Model.generate", "NOBODY'S", None))
    young = cli(store_path(), "gc", "--json")
    assert json.loads(young.stdout)["cache_entries"] == {"kept": 4, "removed": 0}
    assert Store(store_path()).objects.has(orphan)
    done = cli(store_path(), "gc", "--prune", "now")
    assert "Model call cache: kept 3 entries, removed 1." in done.stdout
    assert not Store(store_path()).objects.has(orphan)
    assert fsck(Store(store_path())).ok
    run(project, "e2", "--cache-only")  # every entry the run used is still there
    assert project.take_calls() == []


def test_fsck_reports_a_missing_call_cache_entry(project: PytesterProject) -> None:
    project.write("eval_x.py", EVAL)
    run(project, "e1")
    store = Store(store_path())
    manifest = read_head(store, "e1").manifest
    assert manifest is not None and manifest.calls is not None
    entry = sorted(load_calls(store, manifest.calls).values())[0]
    loose_path(store_path(), entry).unlink()
    report = fsck(Store(store_path()))
    assert [p.message for p in report.errors] == [f"call cache entry {entry[:12]} is missing"]


def test_the_summary_show_log_and_json_count_the_calls(project: PytesterProject) -> None:
    project.write(
        "eval_x.py",
        """
        from conftest import complete
        from doteval import foreach, Result, Score

        @foreach("prompt", [("x",), ("y",)])
        def eval_usage(prompt):
            return Result(Score("ok", True), prompt=prompt, response=complete(prompt).choices[0].message.content)
        """,
    )
    first = run(project, "e1")
    assert "Model calls: 2 made, 0 from the cache; tokens: 14 spent, 0 saved." in first.stdout.str()
    second = run(project, "e2")
    assert "Model calls: 0 made, 2 from the cache; tokens: 0 spent, 14 saved." in second.stdout.str()
    assert (
        "Model calls: 0 made, 2 from the cache; tokens: 0 spent, 14 saved"
        in cli(store_path(), "show", "e2").stdout
    )
    assert json.loads(cli(store_path(), "show", "e2", "--json").stdout)["calls"] == {
        "made": 0,
        "cached": 2,
        "tokens_spent": 0,
        "tokens_saved": 14,
    }
    log = cli(store_path(), "log", "e1").stdout
    assert "Calls:   2 made, 0 from the cache; tokens: 14 spent, 0 saved" in log
    assert "calls 0 made, 2 cached" in cli(store_path(), "log", "e2", "--oneline").stdout
    entries = json.loads(cli(store_path(), "log", "e1", "--json").stdout)["entries"]
    assert entries[0]["calls"] == {"made": 2, "cached": 0, "tokens_spent": 14, "tokens_saved": 0}


def test_two_threads_making_the_same_call_make_it_once(project: PytesterProject) -> None:
    project.write(
        "eval_x.py",
        """
        from conftest import slow_sync
        from doteval import foreach, Result, Score

        @foreach("prompt", [("same",), ("same",)])
        def eval_threads(prompt):
            return Result(Score("ok", True), prompt=prompt, response=slow_sync(prompt))
        """,
    )
    run(project, "e1", "--concurrency", "2")
    assert project.take_calls() == ["same"]
    assert responses(project, "e1") == ["SAME", "SAME"]


def test_an_answer_that_cannot_be_stored_is_named_once_and_not_cached(project: PytesterProject) -> None:
    project.write(
        "eval_x.py",
        """
        from conftest import Client, unstorable
        from doteval import foreach, Result, Score

        @foreach("prompt", [("x",), ("y",)])
        def eval_unstorable(prompt):
            return Result(Score("ok", type(unstorable(prompt, Client())).__name__ == "Client"), prompt=prompt)
        """,
    )
    first = run(project, "e1")
    out = first.stdout.str()
    assert out.count("cannot cache the answers of conftest.unstorable: a value of type 'Client'") == 1, out
    assert out.count("cannot fingerprint argument 'client' of conftest.unstorable") == 1, out
    assert project.take_calls() == ["x", "y"]
    run(project, "e2")
    assert project.take_calls() == ["x", "y"]


def test_no_cache_and_cache_only_together_are_refused(project: PytesterProject) -> None:
    project.write("eval_x.py", EVAL)
    result = project.pytest("--experiment", "e1", "--no-cache", "--cache-only")
    assert result.ret == 1
    assert "Error: --cache-only cannot be used with --no-cache" in result.stdout.str() + result.stderr.str()
    assert project.take_calls() == []


def test_the_index_holds_the_calls_of_a_run_that_died_before_its_seal(tmp_path: Path) -> None:
    store = Store(tmp_path / ".doteval")
    store.create()
    recorder = RunRecorder(store, "dead", Head(None, None, None))
    recorder.start()
    entry = store.objects.put(entry_value("m.generate", "ANSWER", None))
    recorder.record_call("ab" * 32, entry, True, 0)
    assert recorder.journal is not None
    recorder.journal.sync()  # the process dies here: no end record, no seal
    assert stored_calls(Store(tmp_path / ".doteval")) == {"ab" * 32: entry}
