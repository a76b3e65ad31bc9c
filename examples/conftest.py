"""Fixtures for the bundled example: a local, deterministic stand-in for a model."""

from __future__ import annotations

import re
import time

import pytest


class ToyCalculatorModel:
    """Answers arithmetic questions like a small model: mostly right, sometimes not.

    It needs no network and no key. Its mistakes are deterministic (they depend
    on the question only), so runs are repeatable.
    """

    name = "toy-calculator"
    version = 1

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay

    def __doteval_params__(self) -> dict[str, object]:
        # What decides this model's answers; a change here is a change of params.
        return {"name": self.name, "version": self.version}

    def generate(self, prompt: str) -> str:
        time.sleep(self.delay)  # pretend to think, so progress is visible
        match = re.search(r"(-?\d+)\s*([-+*])\s*(-?\d+)", prompt)
        if match is None:
            return "I don't know."
        a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        if (a * 7 + b * 3) % 10 == 0:  # a reproducible slip
            answer += 1
        return f"The answer is {answer}."


@pytest.fixture
def model() -> ToyCalculatorModel:
    return ToyCalculatorModel()
