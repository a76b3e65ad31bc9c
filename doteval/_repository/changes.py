"""Showing what changed between two versions of an evaluation: code and params.

Used when a run refuses changed code, by ``--dry-run``, ``log`` and ``diff``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from doteval._objects.encoding import decode, encode
from doteval._text import format_param


def code_diff(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 60) -> list[str]:
    """A unified diff of each changed function, class and constant, named.

    ``old`` and ``new`` are stored ``code`` objects (``{"sources": {...},
    "constants": {...}}``). A code object written before doteval recorded
    constants has no ``constants``: its constants are then not compared (they
    would all read as new), and ``unrecorded_note`` says so.
    """
    lines: list[str] = []
    parts = [("sources", "")]
    if "constants" in old and "constants" in new:
        parts.append(("constants", "constant "))
    for key, kind in parts:
        before, now = dict(old.get(key) or {}), dict(new.get(key) or {})
        for a_name, b_name in _paired(before, now):
            a, b = before.get(a_name or ""), now.get(b_name or "")
            if a == b:
                continue
            # "@foreach columns" names itself; a constant says it is one.
            a_label, b_label = (n if (n or "").startswith("@") else f"{kind}{n}" for n in (a_name, b_name))
            lines.extend(
                difflib.unified_diff(
                    (a or "").splitlines(),
                    (b or "").splitlines(),
                    f"{a_label} (before)" if a is not None else f"{b_label} (not there before)",
                    f"{b_label} (now)" if b is not None else f"{a_label} (gone)",
                    lineterm="",
                    n=1,
                )
            )
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else [])


def _paired(before: dict[str, str], now: dict[str, str]) -> list[tuple[str | None, str | None]]:
    """Names to compare, in order: the same name on both sides, else a name gone
    and a name new that end alike (the module a file was imported as, or the
    function enclosing a test's evaluation, moved: the code is still "the same one")."""
    gone = sorted(set(before) - set(now))
    new = sorted(set(now) - set(before))
    pairs: list[tuple[str | None, str | None]] = [(n, n) for n in sorted(set(before) & set(now))]
    for a in list(gone):
        tail = a.rsplit(".", 1)[-1]
        alike = [b for b in new if b.rsplit(".", 1)[-1] == tail]
        if len(alike) == 1 and sum(1 for x in gone if x.rsplit(".", 1)[-1] == tail) == 1:
            pairs.append((a, alike[0]))
            gone.remove(a)
            new.remove(alike[0])
    pairs += [(a, None) for a in gone] + [(None, b) for b in new]
    return sorted(pairs, key=lambda p: p[0] or p[1] or "")


def explain_code_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``code_diff``, or one line saying why there is nothing to show."""
    return code_diff(old, new) or [unrecorded_note(old, new)]


def unrecorded_note(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Why a changed fingerprint shows no diff: what the older record lacks."""
    if not old.get("sources"):
        return "(the earlier run recorded no source to compare)"
    if "constants" not in old or "constants" not in new:
        return (
            "(no function or class changed: a module constant, the @foreach columns or options did; "
            "the earlier run was recorded before doteval kept their values)"
        )
    return "(the fingerprint moved but no recorded source or constant differs)"


def params_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.extend(_change(name, _text(old[name]), "(gone)"))
            continue
        # ``old`` was read back from the store: compare and show ``new`` in that same
        # form (a dataclass or __doteval_params__ object decodes to a dict with __type__).
        now = decode(encode(new[name]))
        if name not in old:
            out.extend(_change(name, "(new)", _text(now)))
        else:
            out.extend(_value_diff(name, old[name], now))
    return out


def _value_diff(path: str, old: Any, new: Any) -> list[str]:
    """One line per changed leaf, so a long config still shows the field that moved."""
    if encode(old) == encode(new):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new), key=repr):
            sub = f"{path}.{key}"
            if key not in new:
                lines.extend(_change(sub, _text(old[key]), "(gone)"))
            elif key not in old:
                lines.extend(_change(sub, "(new)", _text(new[key])))
            else:
                lines.extend(_value_diff(sub, old[key], new[key]))
        if lines:
            return lines
    return _change(path, _text(old), _text(new))


def changed_params(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the params whose stored values differ, sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _text(value: Any) -> str:
    return format_param(value)


def _change(path: str, before: str, now: str) -> list[str]:
    """``path: before -> now``; values too long for one line go on two, in full
    (a cut value would hide the very character that changed)."""
    if len(path) + len(before) + len(now) <= 72:
        return [f"{path}: {before} -> {now}"]
    return [f"{path}:", f"  - {before}", f"  + {now}"]
