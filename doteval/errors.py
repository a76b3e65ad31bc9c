"""Errors raised by doteval.

Every error a user can cause or meet derives from ``DotevalError``; the CLI and
the pytest plugin catch it in one place and print one line (plus a hint). An
exception that is not a ``DotevalError`` is a bug and keeps its traceback.

    DotevalError
    ├── UsageError (ValueError)            bad argument or option value
    │   ├── InvalidNameError               experiment name that is not a plain name
    │   └── EncodingError (TypeError)      a value with no canonical encoding
    ├── NotFoundError (KeyError)
    │   ├── ExperimentNotFoundError        no such experiment
    │   └── ObjectNotFoundError            object id absent from the store
    ├── StoreError (OSError)
    │   ├── StoreNotFoundError             no store given, and no .doteval found
    │   ├── CorruptObjectError             bytes that do not hash to their name
    │   ├── CorruptStoreError              unreadable pack, index, record or journal
    │   ├── StoreVersionError              store written by a newer doteval
    │   └── NoSpaceError                   the disk (or quota) holding the store is full
    ├── LockedError                        another live process holds the lock
    ├── ChangedEvaluationError             code or params changed since the last run
    └── CacheMissError                     --cache-only, and a model call the cache does not hold
"""

from __future__ import annotations


class DotevalError(Exception):
    """Root of every error doteval raises on purpose."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(DotevalError, ValueError):
    """A value given by the user that doteval cannot use."""


class InvalidNameError(UsageError):
    """An experiment name that could escape the store or is empty."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid experiment name {name!r}: {reason}")
        self.name = name


class EncodingError(UsageError, TypeError):
    """A value that has no canonical encoding (so no hash, no key)."""

    def __init__(self, message: str, *, type_name: str = "", path: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.path = path


class NotFoundError(DotevalError, KeyError):
    """Something asked for by name or id is not in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ExperimentNotFoundError(NotFoundError):
    """``close``: names of the store that look like ``name`` (a typo); ``deleted``: the
    experiment exists but was deleted (``renamed_to``: by a rename)."""

    def __init__(
        self, name: str, *, close: tuple[str, ...] = (), deleted: bool = False, renamed_to: str = ""
    ) -> None:
        message = f"no experiment named {name!r} in this store"
        hint = "`doteval list` shows the experiments; `--store PATH` picks another store"
        if renamed_to:
            message += f" (it was renamed to {renamed_to!r})"
            hint = f"`doteval show {renamed_to}`"
        elif deleted:
            message += " (it was deleted)"
            hint = f"`doteval undelete {name}` brings it back with its history (until gc)"
        elif close:
            message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        super().__init__(message, hint=hint)
        self.name = name
        self.close = close
        self.deleted = deleted
        self.explained = bool(close) or deleted  # close names were looked for (see missing_experiment)


class ObjectNotFoundError(NotFoundError):
    def __init__(self, object_id: str) -> None:
        super().__init__(
            f"object {object_id[:16]} is missing from the store",
            hint="run `doteval fsck`; if the store was copied, copy it again",
        )
        self.object_id = object_id


class StoreError(DotevalError, OSError):
    """The store on disk cannot be used as it is."""

    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        DotevalError.__init__(self, message, hint=hint)
        self.path = path


class StoreNotFoundError(StoreError):
    def __init__(self, start: str) -> None:
        super().__init__(
            f"no doteval store found in {start} or its parents; run an evaluation first, or pass --store",
            path=start,
        )


class CorruptObjectError(StoreError):
    def __init__(self, expected: str, actual: str, *, path: str = "") -> None:
        super().__init__(
            f"object {expected[:16]} is corrupt: its bytes hash to {actual[:16]}"
            + (f" ({path})" if path else ""),
            path=path,
            hint="run `doteval fsck` to list every damaged file",
        )
        self.expected = expected
        self.actual = actual


class CorruptStoreError(StoreError):
    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        super().__init__(
            "damaged store file: " + message + (f" ({path})" if path else ""),
            path=path,
            hint=hint or "run `doteval fsck` to list every damaged file",
        )


class StoreVersionError(StoreError):
    def __init__(self, found: int, supported: int, *, path: str = "") -> None:
        super().__init__(
            f"store format {found} is newer than this doteval understands ({supported})",
            path=path,
            hint="upgrade doteval: pip install -U doteval",
        )
        self.found = found
        self.supported = supported


class NoSpaceError(StoreError):
    """A store write met a full disk or quota (ENOSPC, EDQUOT); what was written stays valid."""

    def __init__(self, store: str, need: int) -> None:
        mb = max(1, -(-need // 1_000_000))
        super().__init__(
            f"no space left on device writing to {store} (need about {mb} MB free)",
            path=store,
            hint="free some space and run the same command again: every finished sample is kept",
        )
        self.need = need


class LockedError(DotevalError):
    def __init__(self, what: str, pid: int, host: str, since: str) -> None:
        super().__init__(
            f"{what} is being run by pid {pid} on {host} since {since}",
            hint="wait for it to finish, or stop that process",
        )
        self.pid = pid
        self.host = host
        self.since = since


class ChangedEvaluationError(DotevalError):
    """The code or params of an evaluation differ from the experiment's last run."""

    def __init__(self, message: str, *, experiment: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.experiment = experiment


class CacheMissError(DotevalError):
    """Under ``--cache-only``, a ``@cached`` call whose answer the store does not hold: that
    sample's error (the other samples go on)."""


class DotevalWarning(UserWarning):
    """Something doteval cannot check for you, such as a fixture it cannot fingerprint."""


__all__ = [
    "CacheMissError",
    "ChangedEvaluationError",
    "CorruptObjectError",
    "CorruptStoreError",
    "DotevalError",
    "DotevalWarning",
    "EncodingError",
    "ExperimentNotFoundError",
    "InvalidNameError",
    "LockedError",
    "NoSpaceError",
    "NotFoundError",
    "ObjectNotFoundError",
    "StoreError",
    "StoreNotFoundError",
    "StoreVersionError",
    "UsageError",
]
