"""The call cache in the store: entries, the ``calls`` object a manifest names, the index.

An entry is an ordinary object, one model call's answer::

    {"type": "call", "v": 1, "function": "<module>.<qualname>", "value": <value>, "usage": {...} | None}

A run journals a record per call it made or reused, ``("call", key, entry_id, made, tokens)``;
its seal writes ONE object mapping the keys it used to their entries,
``{"type": "calls", "v": 1, "calls": {key: entry_id}}``, named by the manifest's ``calls``. So
entries travel with push and pull as objects, and gc keeps those a reachable manifest names.
"""

from __future__ import annotations

from typing import Any

from doteval._objects import ObjectId, Store, checks
from doteval._objects.hashing import check_object_id
from doteval._objects.journal import read_journal
from doteval._repository.journal_records import all_journals
from doteval._repository.manifest import load_manifest
from doteval.errors import CorruptStoreError, DotevalError

CALL_VERSION = 1
CALLS_VERSION = 1
KEY_LENGTH = 64  # a key is the hex of a blake3 digest


def calls_json(counts: dict[str, int]) -> dict[str, int]:
    """A manifest's ``call_counts`` as ``--json`` gives them (every count, 0 when absent)."""
    return {name: int(counts.get(name, 0)) for name in ("made", "cached", "tokens_spent", "tokens_saved")}


def entry_value(function: str, value: Any, usage: dict[str, int] | None) -> dict[str, Any]:
    return {"type": "call", "v": CALL_VERSION, "function": function, "value": value, "usage": usage}


def load_entry(store: Store, entry_id: str) -> dict[str, Any]:
    """An entry, checked for its form (a store is untrusted input)."""
    data = store.objects.get(entry_id, loose_first=True)  # written loose; packed after a gc
    try:
        if checks.mapping(data, "call entry").get("type") != "call":
            raise ValueError("not a call entry")
        checks.text(data["function"], "function")
        usage = data.get("usage")
        if usage is not None:
            for name, count in checks.mapping(usage, "usage").items():
                checks.count(count, f"usage {checks.text(name, 'usage')}")
        return data
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptStoreError(f"malformed call entry: {e}", path=f"object {entry_id[:12]}") from None


def check_key(key: Any) -> str:
    if type(key) is not str or len(key) != KEY_LENGTH or key.strip("0123456789abcdef"):
        raise ValueError("a call key is not 64 hex digits")
    return key


def save_calls(store: Store, calls: dict[str, str]) -> ObjectId:
    return store.objects.put({"type": "calls", "v": CALLS_VERSION, "calls": dict(sorted(calls.items()))})


def load_calls(store: Store, calls_id: str) -> dict[str, str]:
    """The keys a run used and their entries, every one checked."""
    data = store.objects.get(calls_id)
    where = f"calls {calls_id[:12]}"
    try:
        if checks.mapping(data, "calls").get("type") != "calls":
            raise ValueError("not a calls object")
        calls = checks.mapping(data["calls"], "calls")
        for key, entry in calls.items():
            check_key(key)
            check_object_id(entry, where=where)
        return dict(calls)
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptStoreError(f"malformed calls object: {e}", path=where) from None


def call_record(rec: Any) -> tuple[str, str, bool, int]:
    """A journal's ``("call", key, entry_id, made, tokens)`` record, checked."""
    _kind, key, entry, made, tokens = rec
    check_key(key)
    check_object_id(entry, where="journal")
    if type(made) is not bool:
        raise ValueError("made is not a bool")
    return key, entry, made, checks.count(tokens, "tokens")


def stored_calls(store: Store) -> dict[str, str]:
    """Every call key a manifest of this store names, with its entry: the cache's index;
    and the calls of the runs that died before their seal (their journals).

    A manifest, calls object or record that cannot be read names nothing (fsck reports it)."""
    index: dict[str, str] = {}
    for path in all_journals(store):
        try:
            records, _valid = read_journal(path)
        except (DotevalError, OSError):
            continue
        for rec in records:
            if isinstance(rec, tuple) and rec[:1] == ("call",):
                try:
                    key, entry, _made, _tokens = call_record(rec)
                except (DotevalError, TypeError, ValueError):
                    continue
                if store.objects.has(entry):
                    index[key] = entry
    seen: set[str] = set()
    for name in store.refs.names():
        try:
            state = store.refs.read(name)
        except DotevalError:
            continue
        if state is None:
            continue
        for record in state.records.values():
            if not record.manifest or record.manifest in seen:
                continue
            seen.add(record.manifest)
            try:
                calls = load_manifest(store, record.manifest).calls
                if calls:
                    index.update(load_calls(store, calls))
            except DotevalError:
                continue
    return index
