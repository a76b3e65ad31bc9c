"""Exporting an experiment's samples as JSON lines, CSV or one JSON document.

Rows are streamed one result at a time, so memory stays flat however big the
experiment. Values JSON cannot hold are converted: bytes to base64 text,
datetimes and decimals to text, tuples and sets to lists, NaN and infinities
to null. A dict whose keys would collide as JSON keys (``1`` and ``"1"``) becomes
a list of ``[key, value]`` pairs, so no value is dropped.

CSV cells of text that a spreadsheet would run as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) get a leading ``'``, as
OWASP recommends against CSV injection; ``raw_csv=True`` writes them exactly.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import json
import math
from collections.abc import Iterator
from typing import IO, Any

from doteval._objects import Store
from doteval._repository.history import Revision
from doteval._repository.results import result_fields
from doteval._repository.sample_tables import FLAG_OK, load_view
from doteval.errors import UsageError

FORMATS = ("jsonl", "csv", "json")
# The fields of a sample an export writes after its evaluation, key and status.
_EXPORTED = ("item", "prompt", "response", "scores", "error", "metadata", "duration")


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k if isinstance(k, str) else str(k)
            if key in out:  # 1 and "1": keep both, as pairs
                return [[jsonable(k), jsonable(v)] for k, v in value.items()]
            out[key] = jsonable(v)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return repr(value)


def iter_rows(store: Store, revision: Revision) -> Iterator[dict[str, Any]]:
    """One dict per sample: evaluation, key, status, item columns, scores, response, error."""
    for ev in revision.manifest.evaluations:
        table = load_view(store, ev)
        keys = table.keys
        for i in range(len(table)):
            yield {
                "evaluation": ev.node_id,
                "sample_key": keys[i].hex(),
                "status": "ok" if table.flags[i] == FLAG_OK else "error",
                **result_fields(table.result(i), ev.columns, _EXPORTED),
            }


def csv_columns(store: Store, revision: Revision) -> tuple[list[str], list[str]]:
    """Item columns and score names of every evaluation, read from sample tables only."""
    columns: list[str] = []
    scores: list[str] = []
    for ev in revision.manifest.evaluations:
        for c in ev.columns:
            if c not in columns:
                columns.append(c)
        for name in load_view(store, ev).scores:
            if name not in scores:
                scores.append(name)
    return columns, scores


def _cell(value: Any) -> Any:
    value = jsonable(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralized(cell: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text starting like a formula gets a leading ``'``."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA_START) else cell


def export(store: Store, revision: Revision, fmt: str, out: IO[str], *, raw_csv: bool = False) -> int:
    """Write every sample of ``revision`` to ``out``; returns the number of rows.

    ``raw_csv``: write CSV cells exactly, formulas included (see the module docstring)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    count = 0
    if fmt == "csv":
        columns, scores = csv_columns(store, revision)
        header = ["evaluation", "sample_key", "status"]
        header += [f"item.{c}" for c in columns] + ["prompt", "response"]
        header += [f"score.{s}" for s in scores] + ["error_type", "error_message", "duration"]
        writer = csv.writer(out)
        writer.writerow(header)
        for row in iter_rows(store, revision):
            error = row["error"] or {}
            cells = (
                [row["evaluation"], row["sample_key"], row["status"]]
                + [_cell(row["item"].get(c)) for c in columns]
                + [_cell(row["prompt"]), _cell(row["response"])]
                + [_cell(row["scores"].get(s)) for s in scores]
                + [error.get("type", ""), error.get("message", ""), _cell(row["duration"])]
            )
            writer.writerow(cells if raw_csv else [neutralized(c) for c in cells])
            count += 1
        return count
    if fmt == "json":
        out.write("[")
    for row in iter_rows(store, revision):
        text = json.dumps(jsonable(row), ensure_ascii=False, sort_keys=True)
        if fmt == "json":
            out.write(("\n  " if count == 0 else ",\n  ") + text)
        else:
            out.write(text + "\n")
        count += 1
    if fmt == "json":
        out.write("\n]\n" if count else "]\n")
    return count
