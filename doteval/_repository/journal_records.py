"""The records of a run's journal, checked when a journal is read back.

A journal is read back by the process that seals a dead run, and a store copied
from someone else may hold journals nobody here wrote: a record whose frame and
checksum are right can still hold values no writer produces (an ``end`` time that
is text, a flag of 9, an item that is not an item). Each function here checks one
kind of record (see ``doteval._repository.run_journal`` for the list) and raises ``ValueError``
naming the field; the sealer skips that record alone, so one bad record never
hides the good ones around it. A run header that cannot be trusted (the wrong
experiment, a time of 1e300) refuses the whole journal.
"""

from __future__ import annotations

import math
from typing import Any

from doteval._objects import checks
from doteval._objects.encoding import decode
from doteval._objects.hashing import check_object_id
from doteval._repository.manifest import STATUSES
from doteval._repository.results import Result
from doteval._repository.sample_tables import FLAG_ERROR, FLAG_OK
from doteval.errors import CorruptStoreError


def start_header(value: Any, experiment: str) -> dict[str, Any]:
    """The run header: it must name the experiment whose folder holds the journal."""
    header = checks.mapping(value, "run header")
    if header.get("experiment") != experiment:
        raise ValueError(f"the journal of {experiment!r} names another experiment")
    parent = header.get("parent_record")
    if parent is not None:
        check_object_id(parent)
    checks.timestamp(header.get("started"), "started")
    checks.text(header.get("host", ""), "host")
    checks.count(header.get("pid", 0), "pid")
    checks.optional_text(header.get("git_commit"), "git_commit")
    checks.texts(header.get("command", []), "command")
    checks.text(header.get("shard") or "", "shard")
    return header


def eval_header(value: Any) -> dict[str, Any]:
    header = checks.mapping(value, "evaluation header")
    for name in ("node_id", "fingerprint", "params_digest"):
        checks.text(header.get(name), name)
    checks.mapping(header.get("params", {}), "params")
    checks.texts(header.get("unfingerprintable", []), "unfingerprintable")
    checks.texts(header.get("columns", []), "columns")
    if header.get("code") is not None:
        check_object_id(header["code"])
    checks.count(header.get("line", 1), "line", low=1)
    return header


def view_record(value: Any) -> dict[str, Any]:
    """What a run keeps of the view before it."""
    view = dict(checks.mapping(value, "view"))
    base, kept = view.get("base"), view.get("kept")
    if base is not None:
        check_object_id(base)
    if kept is not None and not isinstance(kept, bytes):
        raise ValueError("view bitmap is not bytes")
    for name in ("total", "reused", "added", "removed"):
        checks.count(view.get(name, 0), f"view {name}")
    return view


def reuse_record(value: Any) -> dict[str, Any]:
    """Rows of an older table this run reused (``RunRecorder.record_reuse``)."""
    reuse = dict(checks.mapping(value, "reuse"))
    check_object_id(checks.text(reuse.get("table"), "reuse table"))
    check_object_id(checks.text(reuse.get("details"), "reuse details"))
    length = checks.count(reuse.get("length"), "reuse length", low=1)
    rows, slots = reuse.get("rows"), reuse.get("slots")
    if type(rows) is not list or type(slots) is not list or len(rows) != len(slots) or not rows:
        raise ValueError("reuse rows and slots are not lists of one length")
    if any(type(r) is not int or not 0 <= r < length for r in rows) or len(set(rows)) != len(rows):
        raise ValueError("a reused row is not a row of its table")
    if any(type(s) is not int or s < -1 for s in slots):
        raise ValueError("a reuse slot is not a view position")
    checks.text(reuse.get("from"), "reuse from")
    origin = checks.mapping(reuse.get("origin"), "reuse origin")
    checks.text(origin.get("experiment"), "origin experiment")
    check_object_id(checks.text(origin.get("manifest"), "origin manifest"))
    checks.timestamp(origin.get("finished"), "origin finished")
    return reuse


def status(value: Any) -> str:
    if value not in STATUSES:
        raise ValueError(f"status is not one of {', '.join(STATUSES)}")
    return str(value)


def end_record(rec: Any) -> tuple[str, float]:
    """``("end", status, time)``."""
    return status(rec[1]), checks.timestamp(rec[2], "end time")


def check_result(flag: int, slot: int, item: bytes, details: bytes, columns: int) -> None:
    """One sample's result: a flag this format defines, a slot that is a view position or
    -1, an item that decodes to one value per column, details that are a result record."""
    if flag not in (FLAG_OK, FLAG_ERROR):
        raise ValueError(f"flag {flag} is not a result flag")
    if slot < -1:
        raise ValueError(f"slot {slot} is not a view position")
    try:
        value = decode(item)
        if type(value) is not tuple or len(value) != columns:
            raise ValueError("the item does not have one value per column")
        record = decode(details)
        Result.from_record(record)
        duration = record.get("duration")
        if duration is not None and (
            type(duration) not in (int, float)
            or not math.isfinite(duration)
            or not 0 <= duration <= checks.MAX_TIME
        ):
            raise ValueError("duration is not a number of seconds")
    except CorruptStoreError as e:
        raise ValueError(str(e)) from None
