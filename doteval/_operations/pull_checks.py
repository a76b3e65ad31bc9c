"""What a pull lets into a store: ref records and manifests checked before they are published.

A store pulled from someone else is untrusted input. A manifest with a value no
reader can use (a count of 10**400, a time of 1e300) would pass a plain copy and
then make every command that meets it fail, so a pull reads the ref records it
brings and the manifests they name first, and refuses the source in one line when
one is malformed. A local source is read where it is; from ``host:path`` the
immutable objects and packs are copied first (harmless until a ref names them), the
ref records into a temporary folder of the store, and only checked records are
linked into ``refs/``. The copying is ``doteval._operations.sync``'s; this module
never runs rsync.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from doteval._objects import Store
from doteval._objects.files import TMP_PREFIX, ensure_dir, fsync_dir
from doteval._objects.hashing import is_object_id
from doteval._objects.refs import RefStore
from doteval._repository.manifest import load_manifest
from doteval.errors import ObjectNotFoundError, StoreError


def check_refs(refs: RefStore, store: Store, source: str) -> None:
    """Read every ref record of ``refs`` and every manifest they name (from ``store``);
    a malformed one refuses the pull. A manifest missing from a partial copy is not."""
    seen: set[str] = set()
    for name in refs.names():
        try:
            state = refs.read(name)
            for record in state.records.values() if state is not None else ():
                if record.manifest is not None and record.manifest not in seen:
                    load_manifest(store, record.manifest)
                    seen.add(record.manifest)
        except ObjectNotFoundError:
            continue
        except StoreError as e:
            raise StoreError(
                f"not pulled: experiment {name!r} of {source} is damaged: {e.message}",
                path=e.path,
                hint=f"`doteval fsck --store {source}` lists what is damaged there",
            ) from None


def check_source(root: Path) -> None:
    """Refuse to pull the local store ``root`` before anything of it is copied."""
    if not (root / "VERSION").exists() and not (root / "refs").is_dir():
        return  # `sync` says it is not a store
    source = Store(root)
    check_refs(source.refs, source, str(root))


@contextlib.contextmanager
def staging_folder(store: Store) -> Iterator[Path]:
    """A temporary folder of ``store`` for the ref records a pull brings, removed afterwards."""
    staging = store.root / f"{TMP_PREFIX}pull-{os.getpid()}-{os.urandom(4).hex()}"
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_checked(store: Store, staging: Path, source: str) -> None:
    """Check the ref records copied into ``staging`` (and the manifests they name), then link
    them into the store's ``refs/``; one malformed record refuses them all."""
    staged = RefStore(staging, store.object_files)
    check_refs(staged, store, source)
    _publish_records(staged, store.root / "refs")


def _publish_records(staged: RefStore, refs: Path) -> None:
    """Link each checked record file into ``refs`` (never replacing one that exists)."""
    for name in staged.names():  # plain folders with experiment names only
        folder = staged.dir / name
        records = [
            f for f in sorted(folder.iterdir()) if is_object_id(f.name) and f.is_file() and not f.is_symlink()
        ]
        if not records:
            continue
        ensure_dir(refs / name)
        for record in records:
            try:
                os.link(record, refs / name / record.name)
            except FileExistsError:
                pass
        fsync_dir(refs / name)
