"""No table loses a character on a narrow terminal or in a pipe (issue 11, item 3).

``show``, ``diff`` and ``list`` at 60 and 80 columns (``COLUMNS``, as a terminal
sets it) and piped (no ``COLUMNS``: laid out for 160 columns, as
docs/reference/cli.md says): every line fits, and every character of a long
param, of a long evaluation name and of every number of the diff is printed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_diff import Model, eval_v1, record, rows
from typer.testing import CliRunner

from doteval._cli.app import app
from doteval._objects import Store

# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = pytest.mark.xdist_group("narrow_terminal")

NODE = "evals/eval_with_a_long_file_name.py::eval_with_a_rather_long_function_name[gpt-4o-mini-2024-07-18]"
PROMPT = "You are a careful assistant who answers every arithmetic question with a single number only"


@dataclasses.dataclass
class LongModel:
    temperature: float
    system_prompt: str
    name: str = "gpt-4o-mini-2024-07-18"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = Store(tmp_path_factory.mktemp("narrow") / "store")
    a = LongModel(0.123456789, PROMPT)
    b = LongModel(0.7, PROMPT + " please")
    record(store, "a_rather_long_experiment_name", eval_v1(rows(range(30))), Model(range(12), {3: ValueError}),
           params=a, node=NODE)  # fmt: skip
    record(store, "another_long_experiment_name", eval_v1(rows(range(30))), Model(range(4, 30)),
           params=b, node=NODE)  # fmt: skip
    return store.root


def _run(store: Path, monkeypatch: pytest.MonkeyPatch, width: int | None, *args: str) -> str:
    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(width))
    result = CliRunner().invoke(app, [*args, "--store", str(store)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def _assert_fits(out: str, width: int) -> None:
    too_long = [line for line in out.splitlines() if len(line.rstrip()) > width]
    assert not too_long, f"lines wider than {width}:\n" + "\n".join(too_long)


def _assert_shown(out: str, *texts: str) -> None:
    # Lines may wrap anywhere a space is: compare without whitespace.
    flat = "".join(out.split())
    for text in texts:
        assert "".join(text.split()) in flat, f"{text!r} is cut from:\n{out}"


@pytest.mark.parametrize("width", [60, 80, None])
def test_show_keeps_every_character(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch, width: int | None
) -> None:
    out = _run(store_dir, monkeypatch, width, "show", "a_rather_long_experiment_name")
    _assert_fits(out, width or 160)
    _assert_shown(
        out,
        "eval_with_a_long_file_name.py::eval_with_a_rather_long_function_name[gpt-4o-mini-2024-07-18]",
        f"LongModel(temperature=0.123456789, system_prompt='{PROMPT}', name='gpt-4o-mini-2024-07-18')",
        "exact_match.accuracy",
        "29 of 30 samples; 1 error not scored",  # which samples the metric covers (item 12)
    )


@pytest.mark.parametrize("width", [60, 80, None])
def test_diff_keeps_every_number(store_dir: Path, monkeypatch: pytest.MonkeyPatch, width: int | None) -> None:
    names = ("a_rather_long_experiment_name", "another_long_experiment_name")
    out = _run(store_dir, monkeypatch, width, "diff", *names)
    _assert_fits(out, width or 160)
    doc = json.loads(_run(store_dir, monkeypatch, width, "diff", *names, "--json"))
    [metric] = doc["evaluations"][0]["metrics"]
    _assert_shown(
        out,
        "exact_match.accuracy",
        f"{metric['delta']:+.4g}",
        f"[{metric['ci'][0]:+.4g}, {metric['ci'][1]:+.4g}]",
        f"{metric['p_value']:.3g}",
        "model.temperature: 0.123456789 -> 0.7",
    )


@pytest.mark.parametrize("width", [60, 80, None])
def test_list_keeps_every_name(store_dir: Path, monkeypatch: pytest.MonkeyPatch, width: int | None) -> None:
    out = _run(store_dir, monkeypatch, width, "list")
    _assert_fits(out, width or 160)
    _assert_shown(out, "a_rather_long_experiment_name", "another_long_experiment_name", "29/30 (96.7%)")
