"""``--max-errors``: how many errored samples a run may end with before it exits 1 (for CI).

Errored samples are data, not a failure: the next run retries them, and a run
ends with exit code 0 whatever their number. ``--max-errors N`` (a count) or
``--max-errors 0.05`` (a fraction of the samples that have a result) makes a
run exit 1 when *more* samples than that ended in an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from doteval._repository.manifest import Manifest
from doteval.errors import UsageError

if TYPE_CHECKING:
    from doteval._running.experiment_run import EvaluationOutcome

_COUNT = re.compile(r"\d+")
_FRACTION = re.compile(r"(\d*\.\d+|\d+\.)")


@dataclass(frozen=True)
class MaxErrors:
    """A count (``count``) or a fraction of the samples (``fraction``), as the user wrote it."""

    text: str
    count: int | None = None
    fraction: float | None = None

    def exceeded(self, errors: int, samples: int) -> bool:
        if self.fraction is not None:
            return errors > self.fraction * samples
        assert self.count is not None
        return errors > self.count


def parse_max_errors(text: str) -> MaxErrors:
    """``"3"`` → at most 3 errored samples; ``"0.05"`` or ``"5%"`` → at most 5% of them."""
    word = str(text).strip()
    if _COUNT.fullmatch(word):
        return MaxErrors(word, count=int(word))
    percent = word.endswith("%")
    number = word[:-1].strip() if percent else word
    if _COUNT.fullmatch(number) or _FRACTION.fullmatch(number):
        fraction = float(number) / (100 if percent else 1)
        if fraction <= 1:
            return MaxErrors(word, fraction=fraction)
    raise UsageError(
        f"--max-errors takes a count of samples (such as 3) or a fraction of them "
        f"(such as 0.05 or 5%), not {text!r}"
    )


def run_errors(manifest: Manifest, outcomes: Sequence[EvaluationOutcome]) -> tuple[int, int]:
    """(errored samples, samples with a result) of the evaluations a run touched, as its
    summary counts them."""
    ran = {o.node_id for o in outcomes}
    evals = [e for e in manifest.evaluations if e.node_id in ran]
    errors = sum(e.errors for e in evals)
    return errors, errors + sum(e.done for e in evals)


__all__ = ["MaxErrors", "parse_max_errors", "run_errors"]
