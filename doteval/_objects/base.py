"""The object store's interface: what the layers above may ask of any store of objects.

Two stores implement it, and one contract suite (``tests/test_store_contract.py``)
holds them to the same behaviour:

- ``DiskObjectStore`` (``doteval._objects.store``): loose files and packs under a
  store folder, in the format ``docs/reference/store-format.md`` describes;
- ``MemoryObjectStore`` (``doteval._objects.memory``): a dict, for fast tests and for
  what a reader computes without writing (a dead run sealed in memory).

An object is immutable bytes named by the blake3 hash of them; ``put`` and ``get``
take and give decoded values (the canonical encoding). The physical work is the
store's own: ``repack`` keeps what its caller names and whatever is too young to
judge, ``prune`` clears what interrupted writes left. Which objects to keep is
the caller's decision (gc computes it from the refs): this layer knows bytes and
ids, never what an object means.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from doteval._objects.encoding import decode, encode
from doteval._objects.hashing import ObjectId

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: what a long operation reports as it goes."""

TrainingRows = Callable[[bytes], Iterable[bytes]]
"""Given a large object's bytes, the records inside it worth training a compression
dictionary on (none for most objects). The caller knows what objects mean; the store
only compresses."""


class Snapshot:
    """What a store held at one instant. Opaque: each store makes and reads its own.

    A repack touches only what its snapshot names, so an object written after the
    snapshot (by a run beside a gc) is never removed, whatever the caller's keep set says.
    """


@dataclass(frozen=True)
class RepackOptions:
    """How to repack: objects younger than ``grace_period`` seconds at ``now`` stay,
    whoever keeps them.

    ``aggressive``: compress harder and train a new dictionary for small objects (on
    them and on what ``training_rows`` finds inside large ones); if training fails the
    current dictionary stays. ``dry_run``: change nothing, say what would change.
    """

    grace_period: float
    now: float
    aggressive: bool = False
    dry_run: bool = False
    training_rows: TrainingRows | None = None
    progress: Progress | None = None


@dataclass
class RepackStats:
    """What a repack did (or, dry, would do)."""

    kept: int = 0  # ids the caller keeps, plus the dictionaries the remaining packs need
    kept_young: int = 0  # objects nobody keeps, kept because they are younger than the grace period
    removed_loose: int = 0
    removed_packed: int = 0
    removed_packs: int = 0
    new_packs: int = 0
    repacked: int = 0  # objects written into the new pack
    dictionary: ObjectId | None = None  # the dictionary the new pack's small objects use


class BaseObjectStore(ABC):
    """Immutable objects named by their hash: put, get, has, list, add many, repack, prune."""

    def put(self, value: Any) -> ObjectId:
        """Store ``value`` (canonically encoded); storing it again is harmless."""
        return self.put_bytes(encode(value))

    def get(self, object_id: str, *, loose_first: bool = False) -> Any:
        return decode(self.get_bytes(object_id, loose_first=loose_first))

    def __contains__(self, object_id: object) -> bool:
        return isinstance(object_id, str) and self.has(object_id)

    @abstractmethod
    def put_bytes(self, raw: bytes) -> ObjectId:
        """Store ``raw`` under its hash and return the hash; an object stored already is
        only refreshed (a concurrent repack keeps it), never rewritten."""

    @abstractmethod
    def get_bytes(self, object_id: str, *, loose_first: bool = False) -> bytes:
        """The verified bytes of an object; ``ObjectNotFoundError`` if there is none,
        ``StoreError`` for an id that is not one (before it is used anywhere).
        ``loose_first`` is a hint: the object is more likely a file than in a pack."""

    @abstractmethod
    def has(self, object_id: str) -> bool: ...

    @abstractmethod
    def write_pack(self, raws: Iterable[bytes], raw_ids: list[bytes] | None = None) -> list[ObjectId]:
        """Store many objects at once (a run's results, when it is sealed) and return their
        ids; ``raw_ids``, if the caller knows them already, are their 32-byte hashes."""

    @abstractmethod
    def iter_ids(self) -> Iterator[ObjectId]:
        """Every object's id, once each, in no particular order."""

    @abstractmethod
    def snapshot(self) -> Snapshot:
        """What the store holds now: take it before deciding what to keep (see ``Snapshot``)."""

    @abstractmethod
    def repack(self, snapshot: Snapshot, keep: set[str], how: RepackOptions) -> RepackStats:
        """Rewrite what ``snapshot`` holds so that it keeps exactly the objects in ``keep``
        and those younger than the grace period; the rest goes (see ``RepackOptions``)."""

    @abstractmethod
    def prune(self, *, grace_period: float, now: float) -> int:
        """Remove what interrupted writes left (temporary files), once older than both
        ``grace_period`` and a day; return how many were removed."""
