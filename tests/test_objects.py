"""The object store contract: ids, loose objects, packs, corruption, hostile input."""

from __future__ import annotations

import ast
import os
import random
import struct
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import doteval
from doteval._objects import Store, check_name
from doteval._objects.encoding import encode
from doteval._objects.hashing import hash_bytes
from doteval._objects.packs import PackIndex, write_pack
from doteval._objects.store import CODEC_RAW, CODEC_ZSTD, LOOSE_MAGIC, MAX_OBJECT_SIZE
from doteval.errors import (
    CorruptObjectError,
    CorruptStoreError,
    DotevalError,
    InvalidNameError,
    ObjectNotFoundError,
    StoreError,
    StoreVersionError,
)

ALLOWED = (CorruptObjectError, CorruptStoreError, ObjectNotFoundError)


def new_store(root: Path) -> Store:
    store = Store(root)
    store.create()
    return store


def loose_files(store: Store) -> list[Path]:
    return sorted(p for p in store.objects.objects_dir.rglob("*") if p.is_file())


def codec_of(path: Path) -> int:
    return path.read_bytes()[len(LOOSE_MAGIC)]


# -- put / get ---------------------------------------------------------------


def test_put_returns_the_hash_of_the_encoding(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    value = {"type": "result", "scores": [1, 2.5, None], "item": ("q", "a")}
    oid = store.objects.put(value)
    assert oid == hash_bytes(encode(value))
    assert store.objects.get(oid) == value
    assert store.objects.get_bytes(oid) == encode(value)
    assert store.objects.has(oid)
    assert store.objects.loose_path(oid) == store.root / "objects" / oid[:2] / oid[2:]
    assert list(store.objects.iter_loose_ids()) == [oid]


def test_put_twice_is_idempotent_and_refreshes_mtime(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    oid = store.objects.put("hello")
    path = store.objects.loose_path(oid)
    os.utime(path, (1_000_000, 1_000_000))
    before = path.read_bytes()
    assert store.objects.put("hello") == oid
    assert path.stat().st_mtime > 1_000_000
    assert path.read_bytes() == before
    assert loose_files(store) == [path]  # no second file, no temp file left


@pytest.mark.parametrize(
    ("value", "codec"),
    [("x" * 100_000, CODEC_ZSTD), ("tiny", CODEC_RAW), (os.urandom(4096), CODEC_RAW)],
    ids=["compressible", "tiny", "incompressible"],
)
def test_compression_never_changes_the_id(tmp_path: Path, value: Any, codec: int) -> None:
    store = new_store(tmp_path / "s")
    oid = store.objects.put(value)
    assert oid == hash_bytes(encode(value))
    path = store.objects.loose_path(oid)
    assert codec_of(path) == codec
    if codec == CODEC_ZSTD:
        assert path.stat().st_size < len(encode(value)) // 10
    assert store.objects.get(oid) == value
    # the same bytes in a pack have the same name
    other = new_store(tmp_path / "p")
    assert other.objects.write_pack([encode(value)]) == [oid]
    assert other.objects.get(oid) == value


def test_missing_object(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    absent = hash_bytes(b"absent")
    assert not store.objects.has(absent)
    with pytest.raises(ObjectNotFoundError) as info:
        store.objects.get_bytes(absent)
    assert isinstance(info.value, KeyError)
    assert absent[:16] in str(info.value)


# -- packs -------------------------------------------------------------------


def test_pack_round_trip(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    raws = [encode(i) for i in range(50)] + [encode("y" * 5000), b"", encode(None)]
    ids = store.objects.write_pack(raws)
    assert ids == [hash_bytes(r) for r in raws]
    assert loose_files(store) == []
    for oid, raw in zip(ids, raws):
        assert store.objects.has(oid)
        assert store.objects.get_bytes(oid) == raw
    assert not store.objects.has(hash_bytes(b"nope"))
    (index,) = store.objects.packs()
    index.verify()
    index.verify_pack()
    assert index.count == len(set(raws))
    assert sorted(index.ids()) == sorted(bytes.fromhex(i) for i in set(ids))


def test_second_pack_is_picked_up(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    (a,) = store.objects.write_pack([b"first"])
    assert store.objects.get_bytes(a) == b"first"
    (b,) = store.objects.write_pack([b"second"])
    assert store.objects.get_bytes(b) == b"second"
    assert len(store.objects.packs()) == 2


def test_rewriting_the_same_pack_is_harmless(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    ids = store.objects.write_pack([b"a", b"b"])
    assert store.objects.write_pack([b"b", b"a"]) == ids[::-1]
    assert len(list(store.objects.packs_dir.iterdir())) == 2  # one pack, one index


def _index_of(directory: Path, raw_ids: list[bytes]) -> PackIndex:
    entries = [(rid, CODEC_RAW, len(rid), rid) for rid in raw_ids]
    name = write_pack(directory, entries)
    return PackIndex(directory / f"{name}.idx")


id32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(st.sets(id32, min_size=1, max_size=60), st.lists(id32, max_size=30))
def test_index_finds_every_id_and_no_other(present: set[bytes], probes: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as d:
        index = _index_of(Path(d), list(present))
        try:
            ordered = sorted(present)
            for pos, rid in enumerate(ordered):
                assert index.find(rid) == pos
                assert index.entry(pos).payload == rid
            for rid in probes:
                assert index.find(rid) == (ordered.index(rid) if rid in present else -1)
        finally:
            index.close()


def test_index_fanout_edges(tmp_path: Path) -> None:
    rnd = random.Random(7)
    ids = {bytes([first]) + rnd.randbytes(31) for first in (0, 0, 0, 1, 127, 254, 255, 255)}
    ids |= {b"\x00" * 32, b"\xff" * 32, b"\x80" + b"\x00" * 31, b"\x80" + b"\xff" * 31}
    ids |= {rnd.randbytes(32) for _ in range(500)}
    index = _index_of(tmp_path, list(ids))
    ordered = sorted(ids)
    for pos, rid in enumerate(ordered):
        assert index.find(rid) == pos
    for rid in ordered[:50]:
        for at in (0, 31):  # neighbours differing in the first or the last byte
            for delta in (1, 255):
                near = bytearray(rid)
                near[at] = (near[at] + delta) % 256
                if bytes(near) not in ids:
                    assert index.find(bytes(near)) == -1
    index.close()


def test_index_without_its_pack_errors_clearly(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    (oid,) = store.objects.write_pack([b"payload"])
    (pack,) = store.objects.packs_dir.glob("*.pack")
    pack.unlink()
    fresh = Store(tmp_path / "s")
    assert fresh.objects.has(oid)  # the index alone still names it
    with pytest.raises(CorruptStoreError, match="cannot read pack") as info:
        fresh.objects.get_bytes(oid)
    assert pack.name in str(info.value)


def test_empty_and_foreign_index_files(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    store.objects.packs_dir.mkdir()
    idx = store.objects.packs_dir / "pack-x.idx"
    idx.write_bytes(b"")
    with pytest.raises(CorruptStoreError, match="empty pack index"):
        store.objects.get_bytes(hash_bytes(b"x"))
    idx.write_bytes(b"not an index at all" * 100)
    with pytest.raises(CorruptStoreError, match="not a pack index"):
        Store(tmp_path / "s").objects.get_bytes(hash_bytes(b"x"))


# -- corruption --------------------------------------------------------------


def _read_back(root: Path, oid: str) -> bytes | None:
    """The object's bytes, or None for an allowed error; anything else propagates."""
    store = Store(root)
    try:
        return store.objects.get_bytes(oid)
    except ALLOWED:
        return None
    finally:
        for pack in list(store.objects._packs.values()):
            pack.close()


def _positions(size: int, seed: int) -> list[int]:
    if size <= 2048:
        return list(range(size))
    rnd = random.Random(seed)
    return sorted(set(range(64)) | set(rnd.sample(range(size), 200)) | {size - 1})


def _check_damage(
    root: Path, path: Path, originals: dict[str, bytes], mutate: Callable[[bytes], list[bytes]]
) -> int:
    pristine = path.read_bytes()
    changed = 0
    try:
        for damaged in mutate(pristine):
            path.write_bytes(damaged)
            for oid, raw in originals.items():
                got = _read_back(root, oid)
                assert got is None or got == raw, f"wrong bytes for {oid[:12]}"
                changed += got is None
    finally:
        path.write_bytes(pristine)
    for oid, raw in originals.items():
        assert _read_back(root, oid) == raw
    return changed


def _flips(seed: int) -> Callable[[bytes], list[bytes]]:
    def mutate(data: bytes) -> list[bytes]:
        out = []
        for at in _positions(len(data), seed):
            for mask in (0x01, 0x80, 0xFF):
                damaged = bytearray(data)
                damaged[at] ^= mask
                out.append(bytes(damaged))
        return out

    return mutate


def _truncations(data: bytes) -> list[bytes]:
    return [data[:n] for n in _positions(len(data), 11)]


@pytest.mark.parametrize(
    "value",
    ["small", "z" * 300 + "".join(map(str, range(200))), os.urandom(20_000)],
    ids=["raw", "zstd", "big"],
)
@pytest.mark.parametrize("mutate", [_flips(3), _truncations], ids=["flip", "truncate"])
def test_damaged_loose_object(tmp_path: Path, value: Any, mutate: Any) -> None:
    store = new_store(tmp_path / "s")
    oid = store.objects.put(value)
    path = store.objects.loose_path(oid)
    changed = _check_damage(store.root, path, {oid: encode(value)}, mutate)
    assert changed > 0


def _packed(tmp_path: Path) -> tuple[Store, dict[str, bytes]]:
    store = new_store(tmp_path / "s")
    raws = [encode("short"), encode(["repeat"] * 40), encode(12345)]
    ids = store.objects.write_pack(raws)
    return store, dict(zip(ids, raws))


@pytest.mark.parametrize("mutate", [_flips(5), _truncations], ids=["flip", "truncate"])
@pytest.mark.parametrize("suffix", [".pack", ".idx"])
def test_damaged_pack_and_index(tmp_path: Path, suffix: str, mutate: Any) -> None:
    store, originals = _packed(tmp_path)
    (path,) = store.objects.packs_dir.glob(f"*{suffix}")
    changed = _check_damage(store.root, path, originals, mutate)
    assert changed > 0


def test_swapped_object_file_is_refused(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    a = store.objects.put("a")
    b = store.objects.put("b")
    store.objects.loose_path(b).write_bytes(store.objects.loose_path(a).read_bytes())
    with pytest.raises(CorruptObjectError) as info:
        store.objects.get_bytes(b)
    assert info.value.expected == b
    assert info.value.actual == a


# -- hostile input -----------------------------------------------------------


def _hostile_ids(store: Store) -> list[Any]:
    real = store.objects.put("target")
    real_path = str(store.objects.loose_path(real))
    return [
        "../../etc/passwd",
        ".." + real_path,  # would resolve to a real object file if it became a path
        "../" + "a" * 61,
        "a" * 63,
        "a" * 65,
        "a" * 64 + "\n",
        real.upper(),
        "g" * 64,
        "",
        None,
        b"a" * 64,
    ]


def test_hostile_object_ids_are_refused_before_any_path(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    for bad in _hostile_ids(store):
        for op in (store.objects.get_bytes, store.objects.get, store.objects.has,
                   store.objects.loose_path):  # fmt: skip
            with pytest.raises(CorruptStoreError, match="invalid object id"):
                op(bad)


def test_newer_store_version_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "s"
    new_store(root)
    (root / "VERSION").write_text("doteval-store 3\n")
    with pytest.raises(StoreVersionError) as info:
        Store(root)
    assert (info.value.found, info.value.supported) == (3, 2)
    assert isinstance(info.value, StoreError)


def test_a_pre_release_store_format_is_refused_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "s"
    new_store(root)
    (root / "VERSION").write_text("doteval-store 1\n")
    with pytest.raises(StoreError, match="store format 1 was written by a pre-release doteval"):
        Store(root)


def test_unreadable_version_file(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "VERSION").write_text("something else\n")
    with pytest.raises(CorruptStoreError):
        Store(root)


def test_create_writes_the_version_and_refuses_a_file(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = Store(root)
    assert not store.exists
    store.create()
    assert (root / "VERSION").read_text() == "doteval-store 2\n"
    assert store.exists
    store.create()  # idempotent
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        Store(blocker).create()


def _loose_file(codec: int, raw_len: int, payload: bytes) -> bytes:
    return LOOSE_MAGIC + struct.pack(">BQ", codec, raw_len) + payload


@pytest.mark.parametrize("codec", [CODEC_RAW, CODEC_ZSTD])
@pytest.mark.parametrize("raw_len", [2**63, MAX_OBJECT_SIZE + 1, MAX_OBJECT_SIZE])
def test_huge_length_claim_is_not_allocated(tmp_path: Path, codec: int, raw_len: int) -> None:
    store = new_store(tmp_path / "s")
    oid = hash_bytes(b"whatever")
    path = store.objects.loose_path(oid)
    path.parent.mkdir(parents=True)
    payload = zstandard.ZstdCompressor().compress(b"whatever") if codec else b"whatever"
    path.write_bytes(_loose_file(codec, raw_len, payload))
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStoreError):
            store.objects.get_bytes(oid)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_reading_a_compressed_object_allocates_about_its_size(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    oid = store.objects.put("x" * 100_000)
    assert codec_of(store.objects.loose_path(oid)) == CODEC_ZSTD
    tracemalloc.start()
    try:
        assert len(store.objects.get_bytes(oid)) > 100_000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


@pytest.mark.parametrize("claimed", [2000, 1 << 28, 1 << 40])
def test_zstd_frame_claiming_more_than_the_header_is_refused(tmp_path: Path, claimed: int) -> None:
    store = new_store(tmp_path / "s")
    raw = b"a" * 1000
    frame = zstandard.ZstdCompressor().compress(raw)
    assert frame[4] == 0x60  # single segment, 2-byte content size
    forged = frame[:4] + bytes([0xE0]) + struct.pack("<Q", claimed) + frame[7:]
    assert zstandard.frame_content_size(forged) == claimed
    oid = hash_bytes(raw)
    path = store.objects.loose_path(oid)
    path.parent.mkdir(parents=True)
    path.write_bytes(_loose_file(CODEC_ZSTD, len(raw), forged))
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStoreError):
            store.objects.get_bytes(oid)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_unknown_codec(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    oid = hash_bytes(b"x")
    path = store.objects.loose_path(oid)
    path.parent.mkdir(parents=True)
    path.write_bytes(_loose_file(7, 1, b"x"))
    with pytest.raises(CorruptStoreError, match="unknown codec"):
        store.objects.get_bytes(oid)


# -- names -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["long_eval", "exp-1.2", "a", "A_b+c=d,e", "0", "x" * 200, "_private"])
def test_check_name_accepts_plain_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "../x", "/abs", "a/b", "a\\b", ".hidden", ".", "..", "~x", "x" * 201, "a b",
     "a\nb", "é", "-dash", "a\x00", None, 3],
)  # fmt: skip
def test_check_name_refuses_paths_and_junk(name: Any) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name(name)
    assert isinstance(info.value, DotevalError)


def test_store_entry_points_check_names(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s")
    for call in (store.lock, store.live_holder, store.journals, store.refs.read):
        with pytest.raises(InvalidNameError):
            call("../escape")
    assert not (tmp_path / "escape").exists()


def test_put_of_an_object_a_gc_removes_at_that_instant_writes_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs share an object (their code); a gc may pack and unlink the loose copy between
    the second writer's exists() and its touch. The write must not fail, and the object stays."""
    store = new_store(tmp_path / "s")
    oid = store.objects.put({"type": "code", "sources": {"f": "def f(): ..."}})
    path = store.objects.loose_path(oid)
    real_utime = os.utime

    def gc_got_there_first(target: Any, *args: Any, **kwargs: Any) -> None:
        if Path(target) == path:
            path.unlink()  # what gc does once the object is in its new pack
        real_utime(target, *args, **kwargs)

    monkeypatch.setattr(os, "utime", gc_got_there_first)
    assert store.objects.put({"type": "code", "sources": {"f": "def f(): ..."}}) == oid
    monkeypatch.setattr(os, "utime", real_utime)
    assert path.exists() and store.objects.get(oid)["type"] == "code"


def test_store_files_are_opened_only_through_the_files_module() -> None:
    """One safe open: a file is opened by ``doteval._objects.files`` (``open_regular`` to read:
    ``O_NOFOLLOW|O_NONBLOCK``, regular files only; ``open_new`` to create); only ``walk.scan``
    opens folders itself. A copy elsewhere drifts from it (it did: the rsync filter, sync)."""
    package = Path(doteval.__file__).parent
    allowed = {package / "_objects" / "files.py", package / "_objects" / "walk.py"}
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "open"
                and isinstance(func.value, ast.Name)
                and func.value.id == "os"
                and path not in allowed
            ):
                found.append(f"{path.relative_to(package)}:{node.lineno}")
    assert found == []
