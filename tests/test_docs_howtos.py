"""The how-to guides match the code.

For every how-to page and the tutorial (tests/test_docs_run.py runs them as
written; this file checks what can be checked without running them):

- every ``doteval ...`` command they show (in ```bash blocks, after ``$ `` in
  ```console blocks, after ``run:`` in ```yaml blocks) names a command of the
  typer app and only options that command has;
- what they quote from the code (the rsync commands, the filter file) is what
  the code produces;
- one cheap end-to-end run per page does what the page says.

README.md names every command and links every page under docs/.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from doteval._cli import main
from doteval._cli.app import app
from doteval._operations.sync import RSYNC_FILTER, rsync_available, rsync_commands

ROOT = Path(__file__).resolve().parents[1]
HOWTO = ROOT / "docs" / "how-to"
PAGES = {
    "compare": HOWTO / "compare-experiments.md",
    "share": HOWTO / "share-results.md",
    "reclaim": HOWTO / "reclaim-space.md",
    "machines": HOWTO / "run-across-machines.md",
    # the pages tests/test_docs_run.py runs as written are checked here too
    "resume": HOWTO / "resume-failed-evaluations.md",
    "report": HOWTO / "share-a-report.md",
    "tutorial": ROOT / "docs" / "tutorials" / "01-your-first-evaluation.md",
}

# -- the commands the pages show --------------------------------------------------

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```", flags=re.MULTILINE | re.DOTALL)
_SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>&1", "&"}


def fenced_blocks(path: Path) -> Iterator[tuple[str, str]]:
    """(language, body) of every fenced block of a markdown file."""
    for match in _FENCE.finditer(path.read_text(encoding="utf-8")):
        yield match.group("lang"), match.group("body")


def shown_commands(path: Path) -> list[str]:
    """Every ``doteval ...`` command line the page shows."""
    found = []
    for lang, body in fenced_blocks(path):
        for raw in body.splitlines():
            line = raw.strip()
            if lang == "bash" and line.startswith("doteval "):
                found.append(line)
            elif lang == "console" and line.startswith("$ doteval "):
                found.append(line[2:])
            elif lang == "yaml" and re.match(r"-?\s*run: doteval ", line):
                found.append(line.split("run:", 1)[1].strip())
    return found


def command_words(line: str) -> list[str]:
    """The words of the doteval command, up to the first shell operator."""
    words = []
    for word in shlex.split(line, comments=True):
        if word in _SHELL_OPERATORS or word.startswith((">", "|")):
            break
        if word.endswith(";"):
            words.append(word[:-1])
            break
        words.append(word)
    return words


def _commands() -> dict[str, Any]:
    root: Any = typer.main.get_command(app)  # a click Group
    return dict(root.commands)


def _option_names(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if getattr(param, "param_type_name", None) == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _all_shown() -> list[tuple[str, str]]:
    return [(key, line) for key, page in PAGES.items() for line in shown_commands(page)]


def test_the_pages_exist_and_show_commands() -> None:
    for page in PAGES.values():
        assert page.is_file(), page
        assert len(shown_commands(page)) >= 5, f"{page.name} shows almost no doteval command"


@pytest.mark.parametrize(("page", "line"), _all_shown(), ids=lambda v: v if len(v) < 60 else v[:57] + "...")
def test_shown_command_is_real(page: str, line: str) -> None:
    words = command_words(line)
    assert words[0] == "doteval", line
    if len(words) == 2 and words[1].startswith("--"):  # doteval --version
        assert words[1] in _option_names(typer.main.get_command(app)), line
        return
    commands = _commands()
    assert len(words) > 1 and words[1] in commands, f"{PAGES[page].name}: no command {words[1:2]}: {line}"
    name, command = words[1], commands[words[1]]
    options = _option_names(command)
    for word in words[2:]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in options, f"{PAGES[page].name}: `doteval {name}` has no {option}: {line}"
        elif re.fullmatch(r"-[A-Za-z]", word) and name != "run":  # run passes -q, -x... to pytest
            assert word in options, f"{PAGES[page].name}: `doteval {name}` has no {word}: {line}"


def test_command_words_stop_at_shell_operators() -> None:
    line = 'doteval diff a b --fail-on-regression > /dev/null; echo "exit code: $?"'
    assert command_words(line) == ["doteval", "diff", "a", "b", "--fail-on-regression"]
    assert command_words("doteval diff a b --json | python3 -c 'x'") == [
        "doteval",
        "diff",
        "a",
        "b",
        "--json",
    ]
    assert command_words("doteval gc   # a comment --nope") == ["doteval", "gc"]


# -- what share-results.md quotes from the code ---------------------------------


def test_share_results_quotes_the_rsync_commands_and_filter() -> None:
    text = PAGES["share"].read_text(encoding="utf-8")
    shown = [line for line in text.splitlines() if line.startswith("rsync -rt ") and "--stats" in line]
    expected = [
        shlex.join(["rsync", *args])
        for args in rsync_commands("/tmp/demo/bob/.doteval", "/tmp/demo/team/.doteval")
    ]
    assert shown == expected
    filter_blocks = [
        body for lang, body in fenced_blocks(PAGES["share"]) if body.startswith("# doteval store")
    ]
    assert filter_blocks == [RSYNC_FILTER]
    assert "chmod 2775" in text


# -- README --------------------------------------------------------------------------


def test_readme_names_every_command_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name in _commands():
        assert f"`{name}`" in section or f"`doteval {name}`" in section, name
    for page in sorted((ROOT / "docs").rglob("*.md")):
        assert f"]({page.relative_to(ROOT).as_posix()})" in readme, f"README.md does not link {page}"


# -- end to end ----------------------------------------------------------------------

CONFTEST = """
import os

import pytest


class Model:
    version = int(os.environ.get("MODEL_VERSION", "1"))

    def __doteval_params__(self):
        return {"name": "docs-model", "version": self.version}

    def generate(self, n):
        wrong = n % 7 == 0 or (self.version == 2 and n % 3 == 0)
        return str(2 * n + 1 if wrong else 2 * n)


@pytest.fixture
def model():
    return Model()
"""

EVAL = """
from doteval import Result, foreach
from doteval.evaluators import exact_match

DATA = [(n, str(2 * n)) for n in range(30)]


@foreach("n,expected", DATA)
def eval_double(n, expected, model):
    response = model.generate(n)
    return Result(exact_match(response, expected), prompt=f"2 * {n}?", response=response)
"""
ITEMS = 30


def make_project(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "conftest.py").write_text(CONFTEST)
    (path / "eval_double.py").write_text(EVAL)
    return path


def run_eval(project: Path, store: Path, *args: str, version: int = 1) -> str:
    """``doteval run`` in a subprocess, as a user types it, into ``store``."""
    env = dict(
        os.environ,
        DOTEVAL_STORE=str(store),
        DOTEVAL_PROGRESS="off",
        MODEL_VERSION=str(version),
        PYTHONDONTWRITEBYTECODE="1",
        COLUMNS="200",
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",  # only doteval's plugin: a third of the start-up time
    )
    plugins = ["-p", "doteval._pytest_plugin", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [sys.executable, "-m", "doteval", "run", ".", "-q", *plugins, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``doteval ARGS`` in this process: (exit code, stdout)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    assert "Traceback" not in out.err, out.err
    return code, out.out


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out = cli(capsys, *args, "--json")
    assert code == 0, out
    return json.loads(out)


pytestmark = pytest.mark.usefixtures("wide_output")


def test_compare_experiments_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, store = make_project(tmp_path / "p"), str(tmp_path / ".doteval")
    run_eval(project, Path(store), "--experiment", "baseline")
    out = run_eval(project, Path(store), "--experiment", "candidate", "--dry-run")
    assert "Would evaluate 30 sample(s)" in out
    run_eval(project, Path(store), "--experiment", "candidate", version=2)

    report = cli_json(capsys, "diff", "baseline", "candidate", "--store", store)
    (evaluation,) = report["evaluations"]
    assert evaluation["paired"] == ITEMS and evaluation["params_changed"] == ["model.version: 1 -> 2"]
    (metric,) = evaluation["metrics"]
    # version 2 also gets n % 3 == 0 wrong: 8 more wrong answers (0, 21 were wrong already)
    assert (metric["improved"], metric["regressed"], metric["binary"]) == (0, 8, True)
    assert metric["significant_regression"] and metric["p_value"] < 0.05
    assert cli(capsys, "diff", "baseline", "candidate", "--fail-on-regression", "--store", store)[0] == 1
    assert cli(capsys, "diff", "candidate", "baseline", "--fail-on-regression", "--store", store)[0] == 0
    same_seed = [
        cli_json(capsys, "diff", "baseline", "candidate", "--seed", "7", "--store", store) for _ in "ab"
    ]
    assert same_seed[0] == same_seed[1]

    worse = cli_json(capsys, "diff", "baseline", "candidate", "--regressions", "--store", store)["samples"]
    assert len(worse) == 8 and {s["direction"] for s in worse} == {"regressed"}
    code, out = cli(
        capsys, "show", "candidate", "--sample", worse[0]["b"]["key"][:12], "--why", "--store", store
    )
    assert code == 0 and "Why:" in out

    # a new line of results in one experiment, compared by revision
    run_eval(project, Path(store), "--experiment", "baseline", "--rerun-changed", version=2)
    head = cli_json(capsys, "show", "baseline~1", "--store", store)["id"]
    by_steps = cli_json(capsys, "diff", "baseline~1", "baseline", "--store", store)
    by_id = cli_json(capsys, "diff", f"baseline@{head[:8]}", "baseline", "--store", store)
    assert by_steps["evaluations"] == by_id["evaluations"]
    assert by_steps["significant_regressions"]
    assert (
        cli(capsys, "export", "baseline~1", "-f", "csv", "-o", str(tmp_path / "a.csv"), "--store", store)[0]
        == 0
    )
    assert len((tmp_path / "a.csv").read_text().splitlines()) == ITEMS + 1
    code, out = cli(
        capsys, "report", "baseline", "--vs", "candidate", "-o", str(tmp_path / "d.html"), "--store", store
    )
    assert code == 0 and (tmp_path / "d.html").stat().st_size > 0


@pytest.mark.skipif(not rsync_available(), reason="needs rsync")
def test_share_results_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(tmp_path / "p")
    alice, bob, team = (str(tmp_path / who / ".doteval") for who in ("alice", "bob", "team"))
    run_eval(project, Path(alice), "--experiment", "arith", "--samples", "10")
    run_eval(project, Path(bob), "--experiment", "arith")

    first = cli_json(capsys, "push", team, "--no-rsync", "--store", alice)
    assert first["method"] == "copy" and first["files"] > 0
    second = cli_json(capsys, "push", team, "--store", bob)  # rsync; the lines are joined
    assert second["method"] == "rsync" and second["merged"] == ["arith"] and second["diverged"] == []
    again = cli_json(capsys, "push", team, "--store", bob)
    assert (again["files"], again["merged"], again["diverged"]) == (0, [], [])
    assert (Path(alice) / "rsync-filter").read_text() == RSYNC_FILTER

    fsck = cli_json(capsys, "fsck", "--store", team)
    assert fsck["ok"] and fsck["problems"] == []
    (info,) = cli_json(capsys, "list", "--store", team)["experiments"]
    assert (info["name"], info["done"], info["total"], info["diverged"]) == ("arith", ITEMS, ITEMS, False)

    # --print: the commands a push would run, and nothing else happens
    code, out = cli(capsys, "push", "--print", str(tmp_path / "elsewhere" / ".doteval"), "--store", alice)
    assert code == 0 and len(out.splitlines()) == 3 and not (tmp_path / "elsewhere").exists()

    # both start from the joined state, then try different params: both lines kept, reported
    for store, version in ((alice, 2), (bob, 3)):
        cli(capsys, "pull", team, "--store", store)
        run_eval(project, Path(store), "--experiment", "arith", "--rerun-changed", version=version)
    report = cli_json(capsys, "push", team, "--store", alice)
    assert (report["diverged"], report["merged"]) == ([], [])
    report = cli_json(capsys, "push", team, "--store", bob)
    assert (report["diverged"], report["merged"]) == (["arith"], [])
    assert cli_json(capsys, "show", "arith", "--store", team)["diverged"]
    fsck = cli_json(capsys, "fsck", "--store", team)
    assert fsck["ok"] and [p["severity"] for p in fsck["problems"]] == ["warning"]


def test_reclaim_space_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, store = make_project(tmp_path / "p"), str(tmp_path / ".doteval")
    run_eval(project, Path(store), "--experiment", "keep")
    run_eval(project, Path(store), "--experiment", "scratch", version=2)
    assert cli(capsys, "delete", "scratch", "--store", store)[0] == 0

    plan = cli_json(capsys, "gc", "--dry-run", "--store", store)
    assert (plan["removed_loose"], plan["removed_packed"], plan["expired_experiments"]) == (0, 0, [])
    repack = cli_json(capsys, "gc", "--store", store)  # the defaults remove nothing anyone may want
    assert (repack["removed_loose"], repack["removed_packed"], repack["new_packs"]) == (0, 0, 1)
    deleted = [e["name"] for e in cli_json(capsys, "list", "--deleted", "--store", store)["experiments"]]
    assert sorted(deleted) == ["keep", "scratch"]

    young = cli_json(capsys, "gc", "--expire-deleted", "now", "--dry-run", "--store", store)
    assert young["expired_experiments"] == ["scratch"] and young["kept_young"] > 0
    assert young["removed_packed"] == 0
    gone = cli_json(capsys, "gc", "--expire-deleted", "now", "--prune", "now", "--store", store)
    assert gone["expired_experiments"] == ["scratch"] and gone["removed_packed"] > 0
    listed = [e["name"] for e in cli_json(capsys, "list", "--deleted", "--store", store)["experiments"]]
    assert listed == ["keep"]
    assert cli_json(capsys, "gc", "--aggressive", "--store", store)["removed_packed"] == 0

    full = cli_json(capsys, "fsck", "--store", store)
    assert full["ok"] and full["problems"] == []
    parts = [cli_json(capsys, "fsck", "--subset", f"{n}/3", "--store", store) for n in (1, 2, 3)]
    assert sum(p["checked_objects"] for p in parts) == full["checked_objects"]
    assert cli(capsys, "show", "keep", "--full", "--store", store)[0] == 0


def test_run_across_machines_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(tmp_path / "p")
    shards = [tmp_path / f"gpu{i}" / ".doteval" for i in (1, 2, 3)]
    for i, store in enumerate(shards, 1):
        out = run_eval(project, store, "--experiment", "big", "--shard", f"{i}/3")
        assert f"Shard {i}/3 is done" in out
    sizes = [cli_json(capsys, "show", "big", "--store", str(s))["done"] for s in shards]
    assert sum(sizes) == ITEMS and all(sizes)

    laptop = str(tmp_path / "laptop" / ".doteval")
    merged = [cli_json(capsys, "pull", str(s), "--store", laptop)["merged"] for s in shards]
    assert merged == [[], ["big"], ["big"]]
    info = cli_json(capsys, "show", "big", "--store", laptop)
    assert (info["status"], info["done"], info["total"], info["diverged"]) == (
        "completed",
        ITEMS,
        ITEMS,
        False,
    )
    rows = [json.loads(line) for line in _export(capsys, laptop, "big")]
    assert len(rows) == ITEMS and len({r["sample_key"] for r in rows}) == ITEMS

    entries = cli_json(capsys, "log", "big", "--store", laptop)["entries"]
    assert sorted(e["op"] for e in entries) == ["merge", "merge", "run", "run", "run"]
    assert sorted(c for e in entries for c in e["changes"] if c.startswith("shard ")) == [
        "shard 1/3", "shard 2/3", "shard 3/3",
    ]  # fmt: skip
    out = run_eval(project, Path(laptop), "--experiment", "big")
    assert "this run evaluated 0, reused 30" in out
    fsck = cli_json(capsys, "fsck", "--store", laptop)
    assert fsck["ok"] and fsck["problems"] == []


def _export(capsys: pytest.CaptureFixture[str], store: str, name: str) -> list[str]:
    code, out = cli(capsys, "export", name, "--store", store)
    assert code == 0
    return out.splitlines()
