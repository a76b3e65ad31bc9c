"""Showing what changed between two versions of an evaluation: code and params.

Used when a run refuses changed code, by ``--dry-run``, ``log`` and ``diff``.
"""

from __future__ import annotations

import difflib
from typing import Any

from doteval.objects.encoding import decode, encode


def code_diff(old_sources: dict[str, str], new_sources: dict[str, str], limit: int = 40) -> list[str]:
    def text(sources: dict[str, str]) -> list[str]:
        return [line for name in sorted(sources) for line in sources[name].splitlines()]

    lines = list(
        difflib.unified_diff(text(old_sources), text(new_sources), "before", "now", lineterm="", n=1)
    )
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else [])


def params_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append(f"{name}: {_short(old[name])} -> (gone)")
            continue
        # ``old`` was read back from the store: compare and show ``new`` in that same
        # form (a dataclass or __doteval_params__ object decodes to a dict with __type__).
        now = decode(encode(new[name]))
        if name not in old:
            out.append(f"{name}: (new) -> {_short(now)}")
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
                lines.append(f"{sub}: {_short(old[key])} -> (gone)")
            elif key not in old:
                lines.append(f"{sub}: (new) -> {_short(new[key])}")
            else:
                lines.extend(_value_diff(sub, old[key], new[key]))
        if lines:
            return lines
    return [f"{path}: {_short(old)} -> {_short(new)}"]


def changed_params(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the params whose stored values differ, sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
