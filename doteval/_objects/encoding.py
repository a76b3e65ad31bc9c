"""The canonical encoding: one byte string per value, the input of every hash.

Two equal values always encode to the same bytes, on every machine and Python
version, and values of different types never do (``1``, ``1.0``, ``True`` and
``"1"`` are four encodings; so are a list and a tuple). The format is written
down in ``docs/reference/store-format.md`` and pinned by golden vectors in the
tests: changing a single byte here changes every sample key in every store, so
it must never happen without a new ``ENCODING_VERSION``.

This module must never import numpy or pydantic: it recognises their values by
duck typing so that importing doteval stays cheap.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import struct
from collections.abc import Callable
from typing import Any

from doteval.errors import CorruptStoreError, EncodingError

ENCODING_VERSION = 1

_pack_double = struct.Struct(">d").pack
_unpack_double = struct.Struct(">d").unpack_from
_CANONICAL_NAN = b"\x7f\xf8\x00\x00\x00\x00\x00\x00"
# Python refuses to read or write an int of more than 4300 decimal digits (a guard
# against quadratic conversions), and the decoder reads at most that many: larger
# ints are refused with an EncodingError rather than stored unreadable.
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS


def encode(value: Any) -> bytes:
    """Return the canonical encoding of ``value``.

    Raises ``EncodingError`` naming the type and where in ``value`` it sits.
    """
    try:
        return _fast(value)
    except _NotPlain:
        pass  # the general encoder below gives the same bytes, or the error with its path
    except RecursionError:
        raise EncodingError("cannot encode a value nested too deeply (or containing itself)") from None
    out: list[bytes] = []
    try:
        _encode_into(value, out, "")
    except RecursionError:
        raise EncodingError("cannot encode a value nested too deeply (or containing itself)") from None
    return b"".join(out)


# Records of one kind share their keys: the sorted order of a key tuple is
# computed once. Only dicts whose keys are all str get a layout.
_LAYOUTS: dict[tuple[Any, ...], tuple[tuple[str, bytes], ...]] = {}
_MAX_LAYOUTS = 4096


def _layout(v: dict[Any, Any]) -> tuple[tuple[str, bytes], ...]:
    if not all(type(k) is str for k in v):
        return ()
    encoded = []
    for k in v:
        d = k.encode("utf-8", "surrogatepass")
        encoded.append((k, b"s%d:%s" % (len(d), d)))
    encoded.sort(key=lambda pair: pair[1])
    layout = tuple(encoded)
    if layout and len(_LAYOUTS) < _MAX_LAYOUTS:
        _LAYOUTS[tuple(v)] = layout
    return layout


class _NotPlain(Exception):
    """Raised by the fast encoder for anything but exact plain types."""


def _fast(v: Any) -> bytes:
    # The hot path (every result of every run): exact built-in types only, no
    # path bookkeeping, strings handled inline (calls are what costs here).
    # It must produce the same bytes as ``_encode_into``.
    t = type(v)
    if t is str:
        d = v.encode("utf-8", "surrogatepass")
        return b"s%d:%s" % (len(d), d)
    if t is dict:
        if not v:
            return b"d0:"
        layout = _LAYOUTS.get(tuple(v))
        if layout is None:
            layout = _layout(v)
        if layout:
            parts = [b"d%d:" % len(v)]
            for k, kb in layout:
                x = v[k]
                if type(x) is str:
                    d = x.encode("utf-8", "surrogatepass")
                    parts.append(b"%ss%d:%s" % (kb, len(d), d))
                else:
                    parts.append(kb + _fast(x))
            return b"".join(parts)
        pairs = [(_fast(k), _fast(x)) for k, x in v.items()]
        pairs.sort()
        for i in range(1, len(pairs)):
            if pairs[i][0] == pairs[i - 1][0]:
                raise _NotPlain  # let the general encoder name the clash
        return b"d%d:" % len(pairs) + b"".join([kb + vb for kb, vb in pairs])
    if t is list or t is tuple:
        parts = [(b"l%d:" if t is list else b"t%d:") % len(v)]
        for x in v:
            if type(x) is str:
                d = x.encode("utf-8", "surrogatepass")
                parts.append(b"s%d:%s" % (len(d), d))
            else:
                parts.append(_fast(x))
        return b"".join(parts)
    if t is int:
        if -_INT_BOUND < v < _INT_BOUND:
            return b"i%d;" % v
        raise _NotPlain  # the general encoder refuses it, naming where it sits
    if v is None:
        return b"N"
    if t is bool:
        return b"T" if v else b"F"
    if t is float:
        return b"f" + (_CANONICAL_NAN if v != v else _pack_double(v))
    if t is bytes:
        return b"b%d:%s" % (len(v), v)
    raise _NotPlain


def _fail(value: Any, path: str) -> None:
    type_name = type(value).__qualname__
    where = f" at {path}" if path else ""
    raise EncodingError(
        f"cannot encode a value of type {type_name!r}{where}: use plain data "
        "(str, numbers, lists, dicts, dataclasses) or give the object a "
        "__doteval_params__ method",
        type_name=type_name,
        path=path,
    )


def _enc_none(v: Any, out: list[bytes], path: str) -> None:
    out.append(b"N")


def _enc_bool(v: bool, out: list[bytes], path: str) -> None:
    out.append(b"T" if v else b"F")


def _enc_int(v: int, out: list[bytes], path: str) -> None:
    if not -_INT_BOUND < v < _INT_BOUND:
        where = f" at {path}" if path else ""
        raise EncodingError(
            f"cannot encode an int of more than {MAX_INT_DIGITS} digits{where}: store it as a str "
            "(or a float)",
            type_name="int",
            path=path,
        )
    out.append(b"i%d;" % v)


def _enc_float(v: float, out: list[bytes], path: str) -> None:
    out.append(b"f" + (_CANONICAL_NAN if v != v else _pack_double(v)))


def _enc_str(v: str, out: list[bytes], path: str) -> None:
    data = v.encode("utf-8", "surrogatepass")
    out.append(b"s%d:" % len(data))
    out.append(data)


def _enc_bytes(v: bytes, out: list[bytes], path: str) -> None:
    data = bytes(v)
    out.append(b"b%d:" % len(data))
    out.append(data)


def _enc_items(tag: bytes, v: list[Any] | tuple[Any, ...], out: list[bytes], path: str) -> None:
    out.append(b"%s%d:" % (tag, len(v)))
    for i, x in enumerate(v):
        enc = _SCALARS.get(type(x))
        if enc is None or enc is _enc_int:  # an int may be too big: its error names where
            _encode_into(x, out, f"{path}[{i}]")
        else:
            enc(x, out, path)


def _enc_list(v: list[Any], out: list[bytes], path: str) -> None:
    _enc_items(b"l", v, out, path)


def _enc_tuple(v: tuple[Any, ...], out: list[bytes], path: str) -> None:
    _enc_items(b"t", v, out, path)


def _enc_dict(v: dict[Any, Any], out: list[bytes], path: str) -> None:
    pairs = []
    for k, x in v.items():
        if type(k) is str:
            data = k.encode("utf-8", "surrogatepass")
            kb = b"s%d:%s" % (len(data), data)
        else:
            kb = encode_at(k, f"{path}[{_shown(k)}] (key)")
        pairs.append((kb, x, k))
    pairs.sort(key=lambda p: p[0])
    out.append(b"d%d:" % len(pairs))
    previous = None
    for kb, x, k in pairs:
        if kb == previous:
            raise EncodingError(f"two keys encode alike at {path or 'top level'}: {_shown(k)}")
        previous = kb
        out.append(kb)
        enc = _SCALARS.get(type(x))
        if enc is None or enc is _enc_int:
            _encode_into(x, out, f"{path}[{_shown(k)}]")
        else:
            enc(x, out, path)


def _shown(key: Any) -> str:
    """A dict key as an error message shows it: short, and never too big to print."""
    if type(key) is int and not -_INT_BOUND < key < _INT_BOUND:
        return f"<int of {key.bit_length()} bits>"
    text = repr(key)
    return text if len(text) <= 80 else text[:77] + "..."


def _enc_set(v: set[Any] | frozenset[Any], out: list[bytes], path: str) -> None:
    items = sorted(encode_at(x, f"{path}{{}}") for x in v)
    out.append(b"S%d:" % len(items))
    out.extend(items)


def _enc_datetime(v: _dt.datetime, out: list[bytes], path: str) -> None:
    data = v.isoformat().encode()
    out.append(b"D%d:" % len(data))
    out.append(data)


def _enc_date(v: _dt.date, out: list[bytes], path: str) -> None:
    data = v.isoformat().encode()
    out.append(b"Y%d:" % len(data))
    out.append(data)


def _enc_decimal(v: decimal.Decimal, out: list[bytes], path: str) -> None:
    data = str(v).encode()
    out.append(b"m%d:" % len(data))
    out.append(data)


def _enc_struct(type_name: str, fields: dict[str, Any], out: list[bytes], path: str) -> None:
    out.append(b"c")
    _enc_str(type_name, out, path)
    _enc_dict(fields, out, path)


_ENCODERS: dict[type, Callable[[Any, list[bytes], str], None]] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    memoryview: _enc_bytes,
    list: _enc_list,
    tuple: _enc_tuple,
    dict: _enc_dict,
    set: _enc_set,
    frozenset: _enc_set,
    _dt.datetime: _enc_datetime,
    _dt.date: _enc_date,
    decimal.Decimal: _enc_decimal,
}


_SCALARS = {t: _ENCODERS[t] for t in (type(None), bool, int, float, str, bytes)}


def encode_at(value: Any, path: str) -> bytes:
    out: list[bytes] = []
    _encode_into(value, out, path)
    return b"".join(out)


def _encode_into(value: Any, out: list[bytes], path: str) -> None:
    enc = _ENCODERS.get(type(value))
    if enc is not None:
        enc(value, out, path)
        return
    # Subclasses and foreign types, checked in a fixed order.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        _enc_struct(_type_name(value), fields, out, path)
        return
    hook = getattr(type(value), "__doteval_params__", None)
    if hook is not None:
        _enc_struct(_type_name(value), _as_dict(hook(value), value, path), out, path)
        return
    if _is_numpy_array(value):
        _enc_ndarray(value, out, path)
        return
    if _is_numpy_scalar(value):
        _encode_into(value.item(), out, path)
        return
    dump = getattr(value, "model_dump", None)
    if dump is not None and hasattr(type(value), "model_fields"):
        _enc_struct(_type_name(value), dump(mode="python"), out, path)
        return
    for base, enc in _SUBCLASS_ORDER:
        if isinstance(value, base):
            enc(value, out, path)
            return
    _fail(value, path)


# bool before int: bool is an int subclass; datetime before date likewise.
_SUBCLASS_ORDER: list[tuple[type, Callable[[Any, list[bytes], str], None]]] = [
    (bool, _enc_bool),
    (int, lambda v, out, path: _enc_int(int(v), out, path)),
    (float, lambda v, out, path: _enc_float(float(v), out, path)),
    (str, lambda v, out, path: _enc_str(str(v), out, path)),
    (bytes, _enc_bytes),
    (tuple, _enc_tuple),
    (list, _enc_list),
    (dict, _enc_dict),
    (_dt.datetime, _enc_datetime),
    (_dt.date, _enc_date),
    (decimal.Decimal, _enc_decimal),
    (frozenset, _enc_set),
    (set, _enc_set),
]


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _as_dict(described: Any, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(described, dict):
        raise EncodingError(
            f"{_type_name(value)}.__doteval_params__ must return a dict, "
            f"not {type(described).__qualname__}" + (f" (at {path})" if path else "")
        )
    return described


def _is_numpy_array(value: Any) -> bool:
    cls = type(value)
    return cls.__module__ == "numpy" and cls.__name__ == "ndarray"


def _is_numpy_scalar(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "item") and hasattr(value, "dtype")


def _enc_ndarray(value: Any, out: list[bytes], path: str) -> None:
    if value.dtype.hasobject:
        _encode_into(value.tolist(), out, path)
        return
    little = value.astype(value.dtype.newbyteorder("<"), copy=False)
    out.append(b"A")
    _enc_str(little.dtype.str, out, path)
    _enc_tuple(tuple(int(n) for n in value.shape), out, path)
    _enc_bytes(little.tobytes(order="C"), out, path)


# -- decoding -----------------------------------------------------------------


def decode(data: bytes) -> Any:
    """Inverse of ``encode`` for plain types.

    Dataclasses and pydantic models come back as dicts with a ``__type__`` key,
    numpy arrays as dicts with ``__ndarray__``: decoding never imports or runs
    code named by the data.
    """
    try:
        value, end = _decode_at(bytes(data), 0)
    except (
        IndexError,
        ValueError,
        TypeError,
        UnicodeDecodeError,
        struct.error,
        decimal.InvalidOperation,
    ) as e:  # TypeError: e.g. a list decoded where a dict key or struct fields must be
        raise CorruptStoreError(f"malformed encoded value: {e}") from None
    except RecursionError:
        raise CorruptStoreError("malformed encoded value: nested too deeply") from None
    if end != len(data):
        raise CorruptStoreError(f"malformed encoded value: {len(data) - end} trailing bytes")
    return value


def _read_len(buf: bytes, pos: int, stop: int, limit: int = 20, *, signed: bool = False) -> tuple[int, int]:
    end = buf.index(stop, pos, pos + limit + 1)  # ValueError: no end within the limit
    text = buf[pos:end]
    negative = signed and text[:1] == b"-"
    if not text or not (text.isdigit() or (negative and text[1:].isdigit())):
        raise ValueError(f"bad number {text!r}")
    return int(text), end + 1


def _decode_at(buf: bytes, pos: int) -> tuple[Any, int]:
    tag = buf[pos]
    pos += 1
    if tag == 0x73:  # s
        n, pos = _read_len(buf, pos, 0x3A)
        end = pos + n
        if end > len(buf):
            raise ValueError("string past end")
        return buf[pos:end].decode("utf-8", "surrogatepass"), end
    if tag == 0x69:  # i
        return _read_len(buf, pos, 0x3B, limit=MAX_INT_DIGITS + 1, signed=True)  # digits and a sign
    if tag == 0x66:  # f
        return _unpack_double(buf, pos)[0], pos + 8
    if tag == 0x4E:
        return None, pos
    if tag == 0x54:
        return True, pos
    if tag == 0x46:
        return False, pos
    if tag in (0x6C, 0x74, 0x53):  # l t S
        n, pos = _read_len(buf, pos, 0x3A)
        items = []
        for _ in range(n):
            x, pos = _decode_at(buf, pos)
            items.append(x)
        if tag == 0x74:
            return tuple(items), pos
        if tag == 0x53:
            return frozenset(items), pos
        return items, pos
    if tag == 0x64:  # d
        n, pos = _read_len(buf, pos, 0x3A)
        d = {}
        for _ in range(n):
            k, pos = _decode_at(buf, pos)
            v, pos = _decode_at(buf, pos)
            d[k] = v
        return d, pos
    if tag == 0x62:  # b
        n, pos = _read_len(buf, pos, 0x3A)
        end = pos + n
        if end > len(buf):
            raise ValueError("bytes past end")
        return buf[pos:end], end
    if tag in (0x44, 0x59, 0x6D):  # D Y m
        n, pos = _read_len(buf, pos, 0x3A)
        if pos + n > len(buf):
            raise ValueError("text past end")
        text = buf[pos : pos + n].decode()
        if tag == 0x44:
            return _dt.datetime.fromisoformat(text), pos + n
        if tag == 0x59:
            return _dt.date.fromisoformat(text), pos + n
        return decimal.Decimal(text), pos + n
    if tag == 0x63:  # c
        name, pos = _decode_at(buf, pos)
        fields, pos = _decode_at(buf, pos)
        return {"__type__": name, **fields}, pos
    if tag == 0x41:  # A
        dtype, pos = _decode_at(buf, pos)
        shape, pos = _decode_at(buf, pos)
        data, pos = _decode_at(buf, pos)
        return {"__ndarray__": dtype, "shape": list(shape), "data": data}, pos
    raise ValueError(f"unknown tag {bytes([tag])!r} at byte {pos - 1}")
