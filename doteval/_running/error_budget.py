"""``--max-errors``: how many errored samples a run may end with before it exits 1 (for CI).

Errored samples are data, not a failure: the next run retries them, and a run
ends with exit code 0 whatever their number. ``--max-errors N`` (a count) or
``--max-errors 0.05`` (a fraction of the samples that have a result) makes a
run exit 1 when *more* samples than that ended in an error. The option's value
is read by ``doteval._running.settings.parse_max_errors``, with the other settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from doteval._repository.manifest import Manifest

if TYPE_CHECKING:
    from doteval._running.experiment_run import EvaluationOutcome


def run_errors(manifest: Manifest, outcomes: Sequence[EvaluationOutcome]) -> tuple[int, int]:
    """(errored samples, samples with a result) of the evaluations a run touched, as its
    summary counts them."""
    ran = {o.node_id for o in outcomes}
    evals = [e for e in manifest.evaluations if e.node_id in ran]
    errors = sum(e.errors for e in evals)
    return errors, errors + sum(e.done for e in evals)
