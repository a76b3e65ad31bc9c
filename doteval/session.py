"""The session view of an experiment: status and progress, for scripts.

from doteval.session import get_session, SessionStatus

session = get_session("my_long_eval")
if session is not None and session.status == SessionStatus.INTERRUPTED:
    print(f"{session.completed_count}/{session.total_count} done")
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from pathlib import Path

from doteval._objects import Store
from doteval._repository.experiments import ExperimentInfo, open_experiment
from doteval.errors import ExperimentNotFoundError


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


def _session_from_info(info: ExperimentInfo) -> Session:
    return Session(
        name=info.name,
        status=SessionStatus(info.status),
        completed_count=info.done,
        total_count=info.total,
        error_count=info.errors,
        started=_started(info),
        last_updated=info.last_updated,
    )


def _started(info: ExperimentInfo) -> float:
    """When the experiment's current run began: the live run's start, else its last sealed run's."""
    if info.live is not None and info.live.started:
        return info.live.started
    if info.holder is not None and info.holder.get("since"):
        try:  # the live run has not journaled yet: its lock says since when it holds it
            return time.mktime(time.strptime(str(info.holder["since"]), "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            pass
    return info.manifest.started if info.manifest else 0.0


def get_session(name: str, store: str | Path | None = None) -> Session | None:
    """The experiment's current state, or None if the store has no such experiment."""
    try:
        return _session_from_info(open_experiment(Store(store, reading=True), name))
    except ExperimentNotFoundError:
        return None


__all__ = ["Session", "SessionStatus", "get_session"]
