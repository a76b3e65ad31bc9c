"""The session view of an experiment: status and progress, for scripts.

from doteval.session import get_session, SessionStatus

session = get_session("my_long_eval")
if session is not None and session.status == SessionStatus.INTERRUPTED:
    print(f"{session.completed_count}/{session.total_count} done")
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from doteval.errors import ExperimentNotFoundError
from doteval.experiments import ExperimentInfo, open_experiment
from doteval.objects import Store


class SessionStatus(str, enum.Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value.capitalize()


@dataclass(frozen=True)
class Session:
    name: str
    status: SessionStatus
    completed_count: int
    total_count: int
    error_count: int
    started: float
    last_updated: float

    @property
    def progress(self) -> float:
        return self.completed_count / self.total_count if self.total_count else 0.0


def session_from_info(info: ExperimentInfo) -> Session:
    m = info.manifest
    return Session(
        name=info.name,
        status=SessionStatus(info.status),
        completed_count=info.done,
        total_count=info.total,
        error_count=info.errors,
        started=m.started if m else 0.0,
        last_updated=info.last_updated,
    )


def get_session(name: str, store: str | Path | None = None) -> Session | None:
    """The experiment's current state, or None if the store has no such experiment."""
    try:
        return session_from_info(open_experiment(Store(store), name))
    except ExperimentNotFoundError:
        return None
