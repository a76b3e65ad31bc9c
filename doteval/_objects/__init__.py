"""The content-addressed store: objects, packs, refs, locks and journals.

This package is the core layer. It never imports the evaluation API, the
operations, typer or rich.
"""

from __future__ import annotations

from pathlib import Path

from doteval._objects.hashing import ObjectId, hash_bytes
from doteval._objects.locks import live_holder
from doteval._objects.names import check_name, is_name
from doteval._objects.overlay import MemoryObjects, MemoryRefs
from doteval._objects.refs import RefRecord, RefState, RefStore
from doteval._objects.store import (
    ObjectStore,
    check_store_layout,
    check_store_version,
    check_writable,
    default_store_path,
    init_store,
)
from doteval._objects.walk import is_real_dir, scan

__all__ = ["ObjectId", "RefRecord", "RefState", "Store", "check_name", "hash_bytes"]


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
        if reading:
            self.objects: ObjectStore = MemoryObjects(self.root, durable=durable)
            self.refs: RefStore = MemoryRefs(self.root, self.objects)
        else:
            self.objects = ObjectStore(self.root, durable=durable)
            self.refs = RefStore(self.root, self.objects)
        self.journals_dir = self.root / "journals"
        self._sealed: set[Path] = set()  # journals a reader sealed in memory

    @property
    def exists(self) -> bool:
        return (self.root / "VERSION").exists() or (self.root / "refs").is_dir()

    def create(self) -> None:
        init_store(self.root)

    def check_writable(self) -> None:
        """Refuse, in one line, a store that cannot be written (a read-only mount)."""
        check_writable(self.root)

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
