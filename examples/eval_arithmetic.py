"""The bundled example evaluation: arithmetic questions against a toy model.

Run it with:  doteval run examples --experiment quickstart
Run the same command again and it resumes (here: nothing left to do).
"""

from __future__ import annotations

import json
from pathlib import Path

from doteval import Result, foreach
from doteval.evaluators import numeric_match

DATA = Path(__file__).with_name("arithmetic.jsonl")


def load_dataset(path: Path = DATA):
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            yield row["question"], row["answer"]


@foreach("prompt,expected", load_dataset())
def eval_arithmetic(prompt, expected, model):
    """Does the model get the arithmetic right?"""
    response = model.generate(prompt)
    return Result(numeric_match(response, expected), prompt=prompt, response=response)
