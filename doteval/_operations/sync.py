"""Copying stores: push and pull, with rsync or plain file copies.

Every file a sync copies is immutable, so copying never overwrites anything
and a repeated sync copies nothing. The order keeps the destination valid at
every instant, even if the copy is killed: VERSION, objects, packs (each
``.pack`` before its ``.idx``), then refs. Journals, locks and ``.tmp-*`` files
are never copied (see ``RSYNC_FILTER``). A pull publishes only ref records it
has checked (``doteval._operations.pull_checks``).

Refs are append-only records, so an experiment that moved on both sides ends
up with two heads: both lines are kept and reported, never overwritten. When
the heads are runs of the same code and params over different samples (for
example shards run on different machines) they are merged into one view by
``Repository.settle``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from doteval._objects import Store
from doteval._objects.files import (
    fsync_dir,
    open_new,
    open_regular,
    share_like_parent,
    store_dir,
    temp_name,
)
from doteval._objects.store import STORE_DIR
from doteval._objects.walk import RSYNC_FILTER as RSYNC_FILTER  # re-exported: the documented filter
from doteval._objects.walk import RSYNC_FILTER_RULES, check_store_folders, refused_entries, scan
from doteval._operations.pull_checks import check_source, publish_checked, staging_folder
from doteval._repository.repository import Repository
from doteval.errors import DotevalError, StoreError

_REMOTE_RE = re.compile(r"^(?:[\w.@-]+):(?!//)")

Progress = Callable[[str], None]


@dataclass
class SyncStats:
    source: str
    destination: str
    files: int = 0
    bytes: int = 0
    method: str = "copy"
    diverged: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "destination": self.destination,
            "files": self.files,
            "bytes": self.bytes,
            "method": self.method,
            "diverged": self.diverged,
            "merged": self.merged,
        }


def is_remote(location: str) -> bool:
    return bool(_REMOTE_RE.match(location)) and not Path(location).exists()


def rsync_available() -> bool:
    return shutil.which("rsync") is not None


def check_walkable(root: Path) -> None:
    """Refuse a store (either side of a local copy) with a link among its folders: a copy
    never reads or writes through one."""
    bad = check_store_folders(root) or refused_entries(root)
    if bad:
        raise StoreError(
            f"{bad[0]} is not a plain file or folder (a symbolic link?): doteval never follows it",
            path=str(bad[0]),
            hint="move it out of the store; `doteval fsck` lists what is wrong",
        )


# -- plain copies (local paths) -------------------------------------------------


def _copy_file(src: Path, dst: Path, dst_root: Path, stats: SyncStats) -> None:
    if os.path.lexists(dst):
        return
    try:  # never through a link, never blocking on a FIFO, never anything but a plain file
        src_fd = open_regular(src)
    except OSError:
        return  # not a plain file (or gone): check_walkable refused links already
    with os.fdopen(src_fd, "rb") as source:
        st = os.fstat(src_fd)
        store_dir(dst_root, dst.parent)
        tmp = dst.parent / temp_name()
        with os.fdopen(open_new(tmp), "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode))
            os.utime(out.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
    share_like_parent(tmp)  # the source's mode was copied: a group's store stays group-writable
    try:
        os.link(tmp, dst)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    stats.files += 1
    stats.bytes += dst.stat().st_size


def _immutable_files(root: Path, sub: str) -> list[Path]:
    """The files of ``root/sub`` a copy takes: regular files of real folders, no temp files.

    Locks and journals have folders of their own, never copied: a name ending in
    ``.lock`` or ``.journal`` here is an experiment's.
    """
    out: list[Path] = []
    todo = [root / sub]
    while todo:
        folder = todo.pop()
        listing = scan(folder)
        todo.extend(folder / d for d in listing.dirs if not d.startswith("."))
        # no store file starts with a dot: those are writes in progress (ours, rsync's)
        out.extend(folder / f for f in listing.files if not f.startswith("."))
    return sorted(out)


def copy_store(src: Path, dst: Path, stats: SyncStats) -> None:
    for name in ("VERSION",):
        if (src / name).exists():
            _copy_file(src / name, dst / name, dst, stats)
    for sub in ("objects", "packs", "refs"):
        files = _immutable_files(src, sub)
        if sub == "packs":  # a pack before its index
            files.sort(key=lambda p: (p.suffix == ".idx", p.name))
        for path in files:
            _copy_file(path, dst / path.relative_to(src), dst, stats)
        for d in {p.parent for p in files}:
            fsync_dir(dst / d.relative_to(src))


# -- rsync ------------------------------------------------------------------------


def _rsync(args: list[str], stats: SyncStats) -> None:
    try:
        done = subprocess.run(["rsync", *args], capture_output=True, text=True, check=False)
    except OSError as e:
        raise StoreError(f"cannot run rsync: {e}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        # the first line says why (ssh: could not resolve...), the last what rsync gave up on
        message = "; ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else f"exit code {done.returncode}"
        raise StoreError(f"rsync failed: {message}", hint="check the path, and ssh access for host:path")
    for line in done.stdout.splitlines():
        m = re.match(r"Number of regular files transferred: ([\d,]+)", line)
        if m:
            stats.files += int(m.group(1).replace(",", ""))
        m = re.match(r"Total transferred file size: ([\d,]+)", line)
        if m:
            stats.bytes += int(m.group(1).replace(",", ""))


def rsync_commands(src: str, dst: str) -> list[list[str]]:
    """The rsync calls of one sync, in order (also printed by `doteval push --print`)."""
    src = src.rstrip("/") + "/"
    dst = dst.rstrip("/") + "/"
    common = [
        "-rt",  # not -l: a store holds no symbolic links, and one from an untrusted store is not copied
        "--omit-dir-times",  # folders of a shared store belong to other users: leave their times alone
        "--ignore-existing",
        "--stats",
        *(f"--filter={rule}" for rule in RSYNC_FILTER_RULES),
    ]
    return [
        [
            *common,
            "--include=/VERSION",
            "--include=/objects/***",
            "--include=/packs/",
            "--include=/packs/*.pack",
            "--exclude=*",
            src,
            dst,
        ],
        [*common, "--include=/packs/***", "--exclude=*", src, dst],
        [*common, "--include=/refs/***", "--include=/rsync-filter", "--exclude=*", src, dst],
    ]


def share_folders(root: Path) -> None:
    """Folders rsync created got the receiving umask: share them like their parent (a group's store).

    Only real folders: a link is never followed (its target's mode is not the store's)."""
    todo = [root]
    while todo:
        folder = todo.pop()
        for d in scan(folder, root=folder == root).dirs:
            share_like_parent(folder / d)
            todo.append(folder / d)


def sync(src: str, dst: str, *, use_rsync: bool | None = None) -> SyncStats:
    stats = SyncStats(source=src, destination=dst)
    remote = is_remote(src) or is_remote(dst)
    if use_rsync is None:
        use_rsync = rsync_available()
    if remote and not use_rsync:
        raise StoreError(
            "copying to or from host:path needs rsync", hint="install rsync (apt-get install rsync)"
        )
    if not remote:
        source = Path(src)
        if not (source / "VERSION").exists() and not (source / "refs").is_dir():
            raise StoreError(f"{src} is not a doteval store", hint="give the path of a .doteval folder")
        Path(dst).mkdir(parents=True, exist_ok=True)
    for side in (src, dst):  # each local side: a copy never reads or writes through a link
        if not is_remote(side):
            check_walkable(Path(side))
    if use_rsync:
        stats.method = "rsync"
        for args in rsync_commands(src, dst):
            _rsync(args, stats)
        if not remote:
            share_folders(Path(dst))
    else:
        copy_store(Path(src), Path(dst), stats)
    return stats


def store_location(location: str, *, destination: bool) -> str:
    """The store a local path names: a store, or a project folder holding one (``DIR/.doteval``).

    A push never writes a store's files into a folder that holds other things: a
    non-empty folder that is no store and holds none is refused.
    """
    path = Path(location)
    if is_remote(location) or (path / "VERSION").exists() or (path / "refs").is_dir():
        return location
    if (path / STORE_DIR).is_dir():
        return str(path / STORE_DIR)
    if destination and path.is_dir() and any(path.iterdir()):
        raise StoreError(
            f"{location} is not a doteval store, and not empty",
            hint=f"give the path of a store (a .doteval folder, created if missing), e.g. {path / STORE_DIR}",
        )
    return location


def push(store: Store, destination: str, *, use_rsync: bool | None = None) -> SyncStats:
    if not store.exists:
        raise StoreError(f"no store at {store.root}", hint="run an evaluation first, or pass --store")
    destination = store_location(destination, destination=True)
    stats = sync(str(store.root), destination, use_rsync=use_rsync)
    if not is_remote(destination):
        settle_all(Store(destination), stats)
    return stats


def pull(store: Store, source: str, *, use_rsync: bool | None = None) -> SyncStats:
    source = store_location(source, destination=False)
    if not is_remote(source):
        check_source(Path(source))
    store.create()
    if is_remote(source) and use_rsync is not False:
        stats = _pull_remote(store, source)
    else:
        stats = sync(source, str(store.root), use_rsync=use_rsync)
    settle_all(store, stats)
    return stats


def _pull_remote(store: Store, source: str) -> SyncStats:
    """Pull from ``host:path`` with rsync, publishing only ref records that were checked."""
    stats = SyncStats(source=source, destination=str(store.root), method="rsync")
    *immutable, refs_step = rsync_commands(source, str(store.root))
    for args in immutable:
        _rsync(args, stats)
    with staging_folder(store) as staging:
        # only the records this store lacks: --compare-dest skips those it holds already
        _rsync([*refs_step[:-1], f"--compare-dest={store.root.resolve()}/", f"{staging}/"], stats)
        publish_checked(store, staging, source)
    share_folders(store.root)
    return stats


def settle_all(store: Store, stats: SyncStats) -> None:
    """Merge experiments whose lines can be merged; report those that cannot."""
    repo = Repository(store)
    for name in store.refs.names():
        try:
            state = store.refs.read(name)
        except DotevalError:
            continue
        if state is None or not state.diverged:
            continue
        if repo.settle(name):
            stats.merged.append(name)
        else:
            stats.diverged.append(name)
