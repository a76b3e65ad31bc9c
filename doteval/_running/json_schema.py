"""A small JSON Schema check for ``valid_json(value, schema)``.

It covers the keywords evaluations use to describe a model's structured
output: ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``patternProperties``, ``items`` / ``prefixItems``,
``minItems`` / ``maxItems``, ``uniqueItems``, ``minLength`` / ``maxLength``,
``pattern``, ``minimum`` / ``maximum`` / ``exclusiveMinimum`` /
``exclusiveMaximum``, ``multipleOf``, ``minProperties`` / ``maxProperties``,
``allOf`` / ``anyOf`` / ``oneOf`` / ``not``, and local ``$ref`` (``#/...``).
Annotations (``title``, ``description``, ``$schema``, ``format``...) are ignored,
as the standard allows. A keyword that changes validation and is not listed
raises ``UsageError`` naming it: a schema is never half-checked in silence.

Pure Python on purpose: a score must not depend on which optional library the
machine that computed it had installed.
"""

from __future__ import annotations

import math
import re
from typing import Any

from doteval.errors import UsageError

_ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "definitions", "title", "description", "default",
        "examples", "format", "deprecated", "readOnly", "writeOnly", "contentMediaType",
        "contentEncoding",
    }
)  # fmt: skip
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
}


def matches_schema(value: Any, schema: Any) -> bool:
    """Whether the decoded JSON ``value`` satisfies ``schema``."""
    return _Checker(schema).check(value, schema)


def _same(a: Any, b: Any) -> bool:
    # JSON equality: 1 == 1.0, but true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


class _Checker:
    def __init__(self, root: Any) -> None:
        self.root = root

    def check(self, v: Any, s: Any) -> bool:
        if s is True or s == {}:
            return True
        if s is False:
            return False
        if not isinstance(s, dict):
            raise UsageError(f"a JSON schema must be an object or a boolean, not {s!r}")
        for key in s:
            if key not in _KEYWORDS and key not in _ANNOTATIONS:
                raise UsageError(
                    f"valid_json: the JSON-schema keyword {key!r} is not supported "
                    f"(supported: {', '.join(sorted(_KEYWORDS))})"
                )
        return all(_KEYWORDS[k](self, v, s[k], s) for k in s if k in _KEYWORDS)

    def ref(self, v: Any, ref: Any, _s: dict[str, Any]) -> bool:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UsageError(f"valid_json: only local $ref ('#/...') is supported, not {ref!r}")
        target = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                target = target[int(part)] if isinstance(target, list) else target[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise UsageError(f"valid_json: $ref {ref!r} points at nothing in the schema") from None
        return self.check(v, target)


def _type(c: _Checker, v: Any, t: Any, _s: dict[str, Any]) -> bool:
    names = t if isinstance(t, list) else [t]
    for name in names:
        if name not in _TYPES:
            raise UsageError(f"valid_json: unknown JSON-schema type {name!r}")
    return any(_TYPES[n](v) for n in names)


def _properties(c: _Checker, v: Any, props: dict[str, Any], _s: dict[str, Any]) -> bool:
    return not isinstance(v, dict) or all(c.check(v[k], sub) for k, sub in props.items() if k in v)


def _pattern_properties(c: _Checker, v: Any, pats: dict[str, Any], _s: dict[str, Any]) -> bool:
    if not isinstance(v, dict):
        return True
    return all(c.check(v[k], sub) for p, sub in pats.items() for k in v if re.search(p, k))


def _additional(c: _Checker, v: Any, extra: Any, s: dict[str, Any]) -> bool:
    if not isinstance(v, dict):
        return True
    known = set(s.get("properties", {}))
    pats = list(s.get("patternProperties", {}))
    rest = [k for k in v if k not in known and not any(re.search(p, k) for p in pats)]
    return all(c.check(v[k], extra) for k in rest)


def _items(c: _Checker, v: Any, items: Any, s: dict[str, Any]) -> bool:
    if not isinstance(v, list):
        return True
    if isinstance(items, list):  # the older tuple form
        return all(c.check(x, sub) for x, sub in zip(v, items))
    start = len(s.get("prefixItems", []))
    return all(c.check(x, items) for x in v[start:])


def _prefix_items(c: _Checker, v: Any, items: list[Any], _s: dict[str, Any]) -> bool:
    return not isinstance(v, list) or all(c.check(x, sub) for x, sub in zip(v, items))


def _unique(c: _Checker, v: Any, on: Any, _s: dict[str, Any]) -> bool:
    if not on or not isinstance(v, list):
        return True
    return not any(_same(v[i], v[j]) for i in range(len(v)) for j in range(i + 1, len(v)))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bound(test: Any, applies: Any) -> Any:
    def check(c: _Checker, v: Any, limit: Any, _s: dict[str, Any]) -> bool:
        return not applies(v) or bool(test(v, limit))

    return check


def _multiple(v: Any, m: Any) -> bool:
    q = v / m
    return math.isfinite(q) and abs(q - round(q)) < 1e-9


_KEYWORDS: dict[str, Any] = {
    "type": _type,
    "enum": lambda c, v, options, s: any(_same(v, o) for o in options),
    "const": lambda c, v, const, s: _same(v, const),
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional,
    "required": lambda c, v, names, s: not isinstance(v, dict) or all(n in v for n in names),
    "minProperties": _bound(lambda v, n: len(v) >= n, lambda v: isinstance(v, dict)),
    "maxProperties": _bound(lambda v, n: len(v) <= n, lambda v: isinstance(v, dict)),
    "items": _items,
    "prefixItems": _prefix_items,
    "minItems": _bound(lambda v, n: len(v) >= n, lambda v: isinstance(v, list)),
    "maxItems": _bound(lambda v, n: len(v) <= n, lambda v: isinstance(v, list)),
    "uniqueItems": _unique,
    "minLength": _bound(lambda v, n: len(v) >= n, lambda v: isinstance(v, str)),
    "maxLength": _bound(lambda v, n: len(v) <= n, lambda v: isinstance(v, str)),
    "pattern": _bound(lambda v, p: re.search(p, v), lambda v: isinstance(v, str)),
    "minimum": _bound(lambda v, n: v >= n, _number),
    "maximum": _bound(lambda v, n: v <= n, _number),
    "exclusiveMinimum": _bound(lambda v, n: v > n, _number),
    "exclusiveMaximum": _bound(lambda v, n: v < n, _number),
    "multipleOf": _bound(_multiple, _number),
    "allOf": lambda c, v, subs, s: all(c.check(v, sub) for sub in subs),
    "anyOf": lambda c, v, subs, s: any(c.check(v, sub) for sub in subs),
    "oneOf": lambda c, v, subs, s: sum(1 for sub in subs if c.check(v, sub)) == 1,
    "not": lambda c, v, sub, s: not c.check(v, sub),
    "$ref": _Checker.ref,
}
