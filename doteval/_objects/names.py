"""Experiment names: checked before they ever become part of a path."""

from __future__ import annotations

import re

from doteval.errors import InvalidNameError

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=,-]{0,199}\Z")


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain experiment name, else raise InvalidNameError."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(str(name), "it is empty")
    if "/" in name or "\\" in name or name.startswith((".", "~")):
        raise InvalidNameError(name, "it looks like a path; use a plain name such as long_eval")
    if not _NAME_RE.match(name):
        raise InvalidNameError(
            name,
            "use letters, digits and . _ - + = , (at most 200, not starting with '.')",
        )
    return name


def is_name(name: str) -> bool:
    """Whether ``name`` is a valid experiment name (``check_name`` without the error)."""
    try:
        check_name(name)
    except InvalidNameError:
        return False
    return True
