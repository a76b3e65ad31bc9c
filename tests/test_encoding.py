"""The canonical encoding: golden vectors, round trips, and refusals.

The encoding is the input of every object id and every sample key, so the
golden vectors below pin it byte for byte. If one of them fails, the change
breaks every existing store: it needs a new ENCODING_VERSION, not a new vector.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import math
import struct
from typing import Any

import numpy as np
import pydantic
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from doteval._objects import encoding
from doteval._objects.encoding import decode, encode
from doteval._objects.hashing import hash_bytes
from doteval._running.experiment_run import sample_key
from doteval.errors import CorruptStoreError, EncodingError, UsageError


@dataclasses.dataclass
class Point:
    x: int
    label: str


class Sampler:
    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def __doteval_params__(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "name": "s"}


class Model(pydantic.BaseModel):
    name: str
    k: int = 3


# Pinned type names: independent of how pytest imports this module.
for _cls in (Point, Sampler, Model):
    _cls.__module__ = "golden"

GOLDEN: list[tuple[str, Any, bytes]] = [
    ("none", None, b"N"),
    ("true", True, b"T"),
    ("false", False, b"F"),
    ("zero", 0, b"i0;"),
    ("negative", -7, b"i-7;"),
    ("bigint", 2**70, b"i1180591620717411303424;"),
    ("float", 1.5, b"f\x3f\xf8\x00\x00\x00\x00\x00\x00"),
    ("negzero", -0.0, b"f\x80\x00\x00\x00\x00\x00\x00\x00"),
    ("nan", float("nan"), b"f\x7f\xf8\x00\x00\x00\x00\x00\x00"),
    ("inf", float("inf"), b"f\x7f\xf0\x00\x00\x00\x00\x00\x00"),
    ("neginf", float("-inf"), b"f\xff\xf0\x00\x00\x00\x00\x00\x00"),
    ("empty_str", "", b"s0:"),
    ("utf8", "héllo", b"s6:h\xc3\xa9llo"),
    ("bytes", b"\x00\xff", b"b2:\x00\xff"),
    ("bytearray", bytearray(b"\x00\xff"), b"b2:\x00\xff"),
    ("empty_list", [], b"l0:"),
    ("list", [1, "a"], b"l2:i1;s1:a"),
    ("tuple", (1, "a"), b"t2:i1;s1:a"),
    ("dict_sorted", {"b": 1, "a": 2}, b"d2:s1:ai2;s1:bi1;"),
    # keys sort by their encoded bytes, so "s10:..." comes before "s1:b"
    ("dict_by_bytes", {"b": 2, "aaaaaaaaaa": 1}, b"d2:s10:aaaaaaaaaai1;s1:bi2;"),
    ("dict_mixed_keys", {"1": "b", 1: "a"}, b"d2:i1;s1:as1:1s1:b"),
    (
        "nested",
        {"x": {"y": [1, (2.5,)]}},
        b"d1:s1:xd1:s1:yl2:i1;t1:f\x40\x04\x00\x00\x00\x00\x00\x00",
    ),
    ("set", {2, 1}, b"S2:i1;i2;"),
    ("frozenset", frozenset({"b", "a"}), b"S2:s1:as1:b"),
    ("datetime", datetime.datetime(2024, 1, 15, 14, 30, 22), b"D19:2024-01-15T14:30:22"),
    ("date", datetime.date(2024, 1, 15), b"Y10:2024-01-15"),
    ("decimal", decimal.Decimal("1.10"), b"m4:1.10"),
    ("dataclass", Point(1, "a"), b"cs12:golden.Pointd2:s1:xi1;s5:labels1:a"),
    (
        "params_hook",
        Sampler(0.5),
        b"cs14:golden.Samplerd2:s11:temperaturef\x3f\xe0\x00\x00\x00\x00\x00\x00s4:names1:s",
    ),
    (
        "ndarray",
        np.array([[1, 2], [3, 4]], dtype=np.int32),
        b"As3:<i4t2:i2;i2;b16:\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00",
    ),
    ("np_float", np.float64(0.25), b"f\x3f\xd0\x00\x00\x00\x00\x00\x00"),
    ("np_int", np.int64(5), b"i5;"),
    ("np_bool", np.bool_(True), b"T"),
    ("pydantic", Model(name="m"), b"cs12:golden.Modeld2:s1:ki3;s4:names1:m"),
]


@pytest.mark.parametrize(("value", "expected"), [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN])
def test_golden_vectors(value: Any, expected: bytes) -> None:
    assert encode(value) == expected


def test_golden_hash_of_an_item() -> None:
    assert encode(("What is 2+2?", "4")) == b"t2:s12:What is 2+2?s1:4"
    assert (
        hash_bytes(encode(("What is 2+2?", "4")))
        == "f0a40be05b2d0c434f6b47ffea30a661ee11aa41bfecf56fb20b190399c50452"
    )


def test_golden_sample_key() -> None:
    fingerprint, params_digest, item = "f" * 64, "p" * 8, ("What is 2+2?", "4")
    key = sample_key(fingerprint, params_digest, encode(item), 0)
    assert key.hex() == "df08d46d4782d9401c459c2ea9fba82e8f88f6325f842ffe928ff138a7efe3a5"
    # the documented definition: blake3 of the encoded key tuple
    documented = encode(("doteval-sample", 1, fingerprint, params_digest, item, 0))
    assert key == blake3(documented).digest()
    assert sample_key(fingerprint, params_digest, encode(item), 1) != key


def test_every_nan_encodes_canonically() -> None:
    other_nan = struct.unpack(">d", b"\xff\xf8\x00\x00\x00\x00\x12\x34")[0]
    assert math.isnan(other_nan)
    assert encode(other_nan) == encode(float("nan")) == b"f\x7f\xf8\x00\x00\x00\x00\x00\x00"
    assert encode(np.float64("nan")) == encode(float("nan"))
    assert math.isnan(decode(encode(float("nan"))))
    assert encode([other_nan]) == encode([float("nan")])


def test_numpy_byte_order_and_layout_do_not_change_the_encoding() -> None:
    little = np.array([[1, 2, 3], [4, 5, 6]], dtype="<i4")
    big = little.astype(">i4")
    assert encode(big) == encode(little)
    transposed = little.T
    assert not transposed.flags.c_contiguous
    assert encode(transposed) == encode(np.ascontiguousarray(transposed))
    assert encode(little) != encode(little.astype("<i8"))
    assert encode(little) != encode(little.reshape(3, 2))


def test_structs_and_arrays_decode_to_plain_dicts() -> None:
    assert decode(encode(Point(1, "a"))) == {"__type__": "golden.Point", "x": 1, "label": "a"}
    assert decode(encode(Model(name="m"))) == {"__type__": "golden.Model", "name": "m", "k": 3}
    arr = decode(encode(np.array([1, 2], dtype="<u1")))
    assert arr == {"__ndarray__": "|u1", "shape": [2], "data": b"\x01\x02"}


def test_other_types_round_trip() -> None:
    for value in (
        datetime.datetime(2024, 1, 15, 14, 30, 22),
        datetime.date(2024, 1, 15),
        decimal.Decimal("1.10"),
        frozenset({1, "a"}),
        {frozenset({1, 2}), frozenset()},  # members must come back hashable
        "\ud800 lone surrogate",
    ):
        back = decode(encode(value))
        assert back == value
        assert encode(back) == encode(value)


# -- properties ------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)


def typed(value: Any) -> Any:
    """A form where equal means same types too (True != 1 != 1.0, [] != ())."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(x) for x in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(typed(k)), typed(v)) for k, v in value.items()))
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    back = decode(data)
    assert back == value
    assert typed(back) == typed(value)
    assert encode(back) == data


@settings(max_examples=200, deadline=None)
@given(values)
def test_encode_is_deterministic(value: Any) -> None:
    assert encode(value) == encode(copy.deepcopy(value))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=6), values, max_size=8), st.randoms(use_true_random=False))
def test_dict_encoding_ignores_insertion_order(d: dict[str, Any], rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert encode(dict(items)) == encode(d)
    assert encode(dict(reversed(items))) == encode(d)


@settings(max_examples=300, deadline=None)
@given(values, values)
def test_distinct_values_never_collide(a: Any, b: Any) -> None:
    assert (encode(a) == encode(b)) == (typed(a) == typed(b))


@settings(max_examples=200, deadline=None)
@given(values)
def test_no_encoding_is_a_prefix_of_another(value: Any) -> None:
    data = encode(value)
    for cut in range(len(data)):
        with pytest.raises(CorruptStoreError):
            decode(data[:cut])


def test_types_never_collide() -> None:
    distinct = [
        1, 1.0, True, "1", b"1", [1], (1,), {1}, decimal.Decimal(1),
        0, 0.0, -0.0, False, None, "", b"", [], (), {}, set(),
        datetime.date(2024, 1, 15), "2024-01-15",
        {"a": 1}, [("a", 1)], (("a", 1),),
    ]  # fmt: skip
    encodings = [encode(v) for v in distinct]
    assert len(set(encodings)) == len(distinct)
    assert encode([1]) != encode((1,))


# -- refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "type_name"),
    [(lambda p: object(), "object"), (lambda p: lambda: 1, "function")],
    ids=["object", "lambda"],
)
def test_unencodable_top_level(make: Any, type_name: str, tmp_path: Any) -> None:
    with pytest.raises(EncodingError) as info:
        encode(make(tmp_path))
    assert info.value.type_name == type_name
    assert repr(type_name) in str(info.value)
    assert isinstance(info.value, UsageError) and isinstance(info.value, TypeError)


def test_open_file_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    with open(path) as f, pytest.raises(EncodingError) as info:
        encode({"file": f})
    assert info.value.type_name == "TextIOWrapper"
    assert "['file']" in str(info.value)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([0, {"x": object()}], "[1]['x']"),
        ({"k": [1, 2, object()]}, "['k'][2]"),
        ((1, [object()]), "[1][0]"),
        ({"outer": Point(1, object())}, "['outer']['label']"),  # type: ignore[arg-type]
    ],
)
def test_encoding_error_names_type_and_path(value: Any, path: str) -> None:
    with pytest.raises(EncodingError) as info:
        encode(value)
    assert info.value.path == path
    assert info.value.type_name == "object"
    assert path in str(info.value)
    assert "'object'" in str(info.value)


def test_unencodable_dict_key_and_set_member() -> None:
    with pytest.raises(EncodingError) as info:
        encode({object(): 1})
    assert "(key)" in info.value.path
    with pytest.raises(EncodingError):
        encode({1, object()})  # type: ignore[arg-type]


def test_keys_that_encode_alike_are_refused() -> None:
    class Anonymous:
        def __doteval_params__(self) -> dict[str, Any]:
            return {}

    with pytest.raises(EncodingError, match="encode alike"):
        encode({Anonymous(): 1, Anonymous(): 2})


def test_params_hook_must_return_a_dict() -> None:
    class Bad:
        def __doteval_params__(self) -> Any:
            return [1]

    with pytest.raises(EncodingError, match="must return a dict"):
        encode({"x": Bad()})


def test_cycles_and_depth_raise_encoding_error() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    with pytest.raises(EncodingError):
        encode(cyclic)
    d: dict[str, Any] = {}
    d["self"] = d
    with pytest.raises(EncodingError):
        encode(d)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(EncodingError):
        encode(deep)


# -- decoding bad bytes ----------------------------------------------------

GARBAGE = [
    b"",
    b"X",
    b"s5:abc",
    b"s",
    b"s1",
    b"i12",
    b"i;",
    b"i1a;",
    b"i" + b"9" * 5000 + b";",
    b"f\x00\x00",
    b"l2:N",
    b"d1:s1:a",
    b"Nxx",
    b"s9999999999999999999999999:",
    b"d1:l0:N",  # unhashable key
    b"S1:l0:",  # unhashable set member
    b"S1:d0:",
    b"cs1:xi1;",  # struct whose fields are not a dict
    b"cs1:xl0:",
    b"As1:xi3;b0:",  # array whose shape is not a sequence
    b"l1:" * 100_000,  # deeper than the recursion limit
    b"s-1:",
    b"b-1:",
    b"l-1:",  # negative counts must not decode to []
    b"t-2:",
    b"d-5:",
    b"S-1:",
    b"D19:2024-01-15",
    b"l1:D19:2024-01-15",
    b"Y99:2024-01-15",
    b"m3:abc",
    b"m9:1.1",
    b"D5:2024-",
    b"s2:\xff\xfe",
]


@pytest.mark.parametrize("data", GARBAGE, ids=[repr(g[:20]) for g in GARBAGE])
def test_garbage_raises_corrupt_store_error(data: bytes) -> None:
    with pytest.raises(CorruptStoreError):
        decode(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        decode(data)
    except CorruptStoreError:
        pass


@settings(max_examples=200, deadline=None)
@given(values, st.data())
def test_flipped_bytes_never_raise_anything_else(value: Any, data: Any) -> None:
    encoded = bytearray(encode(value))
    at = data.draw(st.integers(0, len(encoded) - 1))
    encoded[at] ^= data.draw(st.integers(1, 255))
    try:
        decode(bytes(encoded))
    except CorruptStoreError:
        pass


def _general(value: object) -> bytes:
    out: list[bytes] = []
    encoding._encode_into(value, out, "")
    return b"".join(out)


@given(values)
@settings(max_examples=300)
def test_the_fast_path_writes_the_same_bytes_as_the_general_encoder(value: object) -> None:
    # encode() takes a fast path for exact built-in types; it is an optimisation, never a format.
    assert encoding._fast(value) == _general(value)
    record = {"scores": [{"name": "s", "value": value, "metrics": []}], "item": (value, "x"), "v": 1}
    assert encoding._fast(record) == _general(record)


names = st.text(min_size=1, max_size=8)


@given(
    st.lists(st.tuples(names, values), max_size=3, unique_by=lambda t: t[0]),
    values,
    values,
    st.dictionaries(st.text(max_size=5), values, max_size=3),
    st.one_of(st.none(), st.tuples(st.text(max_size=8), st.text(max_size=8))),
    st.floats(min_value=0, max_value=1e6),
    st.integers(min_value=1, max_value=1000),
)
@settings(max_examples=300, deadline=None)
def test_a_result_record_built_on_the_hot_path_is_its_canonical_encoding(
    scores: list[tuple[str, Any]],
    prompt: Any,
    response: Any,
    metadata: dict[str, Any],
    error: Any,
    duration: float,
    attempts: int,
) -> None:
    from doteval._repository.results import ErrorInfo, Result, Score

    result = Result(
        *[Score(n, v, ["accuracy", "mean"][: len(n) % 3]) for n, v in scores],
        prompt=prompt,
        response=response,
        metadata=metadata,
        error=ErrorInfo(*error) if error else None,
    )
    record = {**result.to_record(check=False), "type": "result", "v": 1, "duration": duration}
    assert result.record_bytes(duration, attempts) == encode({**record, "attempts": attempts})
    assert result.record_bytes(duration, attempts) == _general({**record, "attempts": attempts})
