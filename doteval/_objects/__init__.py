"""The content-addressed store: objects, packs, refs, locks and journals.

This package is the core layer. It never imports the evaluation API, the
operations, typer or rich.

``Store`` is one store folder; ``MemoryStore`` the same in memory (objects, refs
and locks; no journals), for tests and tools that need no disk. The object store
interface both implement is ``doteval._objects.base.BaseObjectStore``.
"""

from __future__ import annotations

from pathlib import Path

from doteval._objects.base import BaseObjectStore
from doteval._objects.hashing import ObjectId, hash_bytes
from doteval._objects.locks import ExperimentLock, Lock, live_holder
from doteval._objects.memory import MEMORY_ROOT, MemoryLock, MemoryObjectStore, MemoryRefs
from doteval._objects.names import check_name, is_name
from doteval._objects.overlay import ReadingObjects, ReadingRefs
from doteval._objects.refs import RefRecord, RefState, RefStore
from doteval._objects.store import (
    DiskObjectStore,
    check_store_layout,
    check_store_version,
    check_writable,
    default_store_path,
    init_store,
)
from doteval._objects.walk import is_real_dir, scan
from doteval.errors import StoreError

__all__ = ["MemoryStore", "ObjectId", "RefRecord", "RefState", "Store", "check_name", "hash_bytes"]


class Store:
    """One store directory: objects, refs, journals of live runs, locks.

    Experiments are changed through ``doteval._repository.repository.Repository``, which
    takes their locks; this class only tells who holds one (``live_holder``)."""

    def __init__(
        self, root: Path | str | None = None, *, durable: bool = True, reading: bool = False
    ) -> None:
        """``reading``: opened by a reader, which never writes: what it computes (a dead
        run's journal sealed for the reader to see) is kept in memory (``doteval._objects.overlay``)."""
        self.root = Path(root) if root is not None else default_store_path()
        check_store_version(self.root)
        check_store_layout(self.root)
        self.reading = reading
        # The layers above use the interface (BaseObjectStore) only; fsck and pull, which
        # check and copy the files themselves, use ``object_files``.
        files = (
            ReadingObjects(self.root, durable=durable)
            if reading
            else DiskObjectStore(self.root, durable=durable)
        )
        self._files: DiskObjectStore | None = files
        self.objects: BaseObjectStore = files
        self.refs: RefStore = ReadingRefs(self.root, files) if reading else RefStore(self.root, files)
        self.journals_dir = self.root / "journals"
        self._sealed: set[Path] = set()  # journals a reader sealed in memory

    @property
    def object_files(self) -> DiskObjectStore:
        """The object store's files (loose objects and packs), for the tools that check or
        copy files as such (fsck, pull); everything else uses ``objects``."""
        if self._files is None:
            raise StoreError("a store in memory has no files to check or copy")
        return self._files

    @property
    def exists(self) -> bool:
        return (self.root / "VERSION").exists() or (self.root / "refs").is_dir()

    def create(self) -> None:
        init_store(self.root)

    def check_writable(self) -> None:
        """Refuse, in one line, a store that cannot be written (a read-only mount)."""
        check_writable(self.root)

    def lock(self, name: str) -> Lock:
        return ExperimentLock(self.root, check_name(name))

    def live_holder(self, name: str) -> dict[str, object] | None:
        return live_holder(self.root, check_name(name))

    def journals(self, name: str) -> list[Path]:
        directory = self.journals_dir / check_name(name)
        # never read or delete a journal outside the store (fsck reports the link)
        if not (is_real_dir(self.journals_dir) and is_real_dir(directory)):
            return []
        found = [directory / f for f in scan(directory).files if f.endswith(".journal")]
        return [path for path in found if path not in self._sealed]

    def sealed(self, path: Path) -> None:
        """The journal at ``path`` is sealed: removed, or (a reading store) set aside in memory."""
        if self.reading:
            self._sealed.add(path)
        else:
            path.unlink(missing_ok=True)

    def experiment_names(self) -> list[str]:
        names = set(self.refs.names())
        if is_real_dir(self.journals_dir):
            for d in scan(self.journals_dir).dirs:
                if is_name(d) and self.journals(d):
                    names.add(d)
        return sorted(names)


class MemoryStore(Store):
    """A store in memory: objects (``MemoryObjectStore``), ref records and experiment locks,
    with the behaviour of a store folder, and no folder. It has no journals, so nothing
    runs into it; everything that reads or changes experiments works on it."""

    def __init__(self) -> None:
        self.root = MEMORY_ROOT
        self.journals_dir = MEMORY_ROOT / "journals"
        self.reading = False
        self._files = None
        self.objects = MemoryObjectStore()
        self.refs = MemoryRefs()
        self._holders: dict[str, dict[str, object]] = {}
        self._sealed = set()

    @property
    def exists(self) -> bool:
        return True

    def create(self) -> None:
        pass

    def check_writable(self) -> None:
        """A run records into a journal file: refused here, in one line, before it starts."""
        raise StoreError(
            "a store in memory cannot record a run (a run writes its results to a journal file)",
            hint="run into a store folder (--store PATH)",
        )

    def lock(self, name: str) -> Lock:
        return MemoryLock(self._holders, check_name(name), f"experiment {name!r}")

    def live_holder(self, name: str) -> dict[str, object] | None:
        return self._holders.get(check_name(name))

    def journals(self, name: str) -> list[Path]:
        check_name(name)
        return []

    def sealed(self, path: Path) -> None:
        raise AssertionError("a store in memory has no journal to seal")

    def experiment_names(self) -> list[str]:
        return self.refs.names()
