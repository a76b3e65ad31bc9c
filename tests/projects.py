"""What the in-process (pytester) run tests share: one counting model, written as the project's
``conftest.py``, and a project folder whose files get a strictly newer mtime at every write.

Subprocess runs of a generated project are ``storekit.Project``; this is the pytester side.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from storekit import PYTEST_FLAGS, take_lines

COUNTING_CONFTEST = '''
import os
import time
from pathlib import Path

import pytest

TAGGED = False


class CountingModel:
    """Deterministic. Every call appends its prompt to $DOTEVAL_TEST_CALLS and answers it in
    upper case; a tagged model (TAGGED) adds the run's tag ($DOTEVAL_TEST_TAG) and how often this
    prompt was called before in this run ("Q1#v1.0"). $DOTEVAL_TEST_FAIL lists prompts ("q3")
    and calls ("a.1": the second call of "a") that raise; the call of $DOTEVAL_TEST_HANG never
    returns; $MODEL_VERSION is the model's version (a params change)."""

    def __init__(self):
        self.seen = {}

    def __doteval_params__(self):
        return {"name": "counting", "version": int(os.environ.get("MODEL_VERSION", "1"))}

    def generate(self, prompt):
        with open(os.environ["DOTEVAL_TEST_CALLS"], "a") as f:
            f.write(f"{prompt}\\n")
        k = self.seen.get(prompt, 0)
        self.seen[prompt] = k + 1
        fail = os.environ.get("DOTEVAL_TEST_FAIL", "").split(",")
        if prompt in fail or f"{prompt}.{k}" in fail:
            raise ValueError(f"no answer for {prompt}")
        if prompt == os.environ.get("DOTEVAL_TEST_HANG"):
            Path(os.environ["DOTEVAL_TEST_HANG_FILE"]).write_text(prompt)
            while True:
                time.sleep(0.05)
        if TAGGED:
            return f"{prompt.upper()}#{os.environ.get('DOTEVAL_TEST_TAG', '')}.{k}"
        return str(prompt).upper()


@pytest.fixture
def model():
    return CountingModel()
'''


def counting_conftest(*, tagged: bool = False) -> str:
    """The counting model's conftest; ``tagged``: its answers name the run and the call."""
    return COUNTING_CONFTEST.replace("TAGGED = False", f"TAGGED = {tagged}", 1)


class PytesterProject:
    """An evaluation project in ``pytester.path`` whose model counts its calls (in ``calls.txt``)."""

    def __init__(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, conftest: str = COUNTING_CONFTEST
    ) -> None:
        self.pytester = pytester
        self.mp = monkeypatch
        self.path = pytester.path
        self.calls_path = self.path / "calls.txt"
        monkeypatch.setenv("DOTEVAL_TEST_CALLS", str(self.calls_path))
        # Files are rewritten within one second: stale .pyc files must not be used.
        monkeypatch.setattr(sys, "dont_write_bytecode", True)
        self._tick = 0
        pytester.makeconftest(conftest)

    def write(self, name: str, source: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        # A strictly newer mtime on every write, so no cache keeps the old text.
        self._tick += 2
        stamp = path.stat().st_mtime + self._tick
        os.utime(path, (stamp, stamp))
        return path

    def take_calls(self) -> list[str]:
        """The model calls made since the last take (and forget them)."""
        return take_lines(self.calls_path)

    def pytest(self, *args: str) -> pytest.RunResult:
        """One pytest session in this process (hypothesis' plugin would import, and
        assert-rewrite, hypothesis in every inner session)."""
        return self.pytester.runpytest(*args, *PYTEST_FLAGS[1:])
