"""Listing a store's folders without ever leaving the store.

A store is untrusted input (copied from a colleague with rsync or tar): any
entry in it may be a symbolic link to anywhere, a FIFO or a device. Every
walker of the store lists folders through ``scan``, which never follows a
link: it hands back plain folders and regular files, and everything else
apart, so that fsck and gc report what they refuse to walk instead of
following it. A store folder that is a link is never listed at all.

Removal (gc) is allowed only for names of the store's own shapes
(``is_temp_name``, ``is_pack_name``, object names), in folders checked here
to be real folders of the store.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from doteval.errors import CorruptStoreError

STORE_FOLDERS = ("objects", "packs", "refs", "journals", "locks")

# Files being written and lock files, which a copy must skip. Each rule is anchored
# to its folder, so that no experiment name (``results.lock``, ``x.journal``) matches.
RSYNC_FILTER_RULES = (
    "- /journals/",
    "- /locks/",
    "- /.tmp-*",
    "- /objects/*/.tmp-*",
    "- /packs/.tmp-*",
    "- /refs/*/.tmp-*",
)
RSYNC_FILTER = (
    "# doteval store: copy only immutable files (see docs/how-to/share-results.md)\n"
    + "\n".join(RSYNC_FILTER_RULES)
    + "\n"
)

_TEMP_RE = re.compile(r"\.tmp-\d+-[0-9a-f]{12}\Z")  # doteval._objects.files.temp_name
_PACK_RE = re.compile(r"pack-[0-9a-f]{64}\.(?:pack|idx)\Z")
_RSYNC_TEMP_RE = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9]{6}\Z")  # rsync's partial files: .NAME.XXXXXX


def is_temp_name(name: str) -> bool:
    """A temporary file doteval writes before publishing (``.tmp-<pid>-<12 hex>``)."""
    return _TEMP_RE.match(name) is not None


def is_pack_name(name: str) -> bool:
    return _PACK_RE.match(name) is not None


def rsync_temp_of(name: str) -> str | None:
    """The file name an rsync partial file (``.NAME.XXXXXX``) is for, or None."""
    m = _RSYNC_TEMP_RE.match(name)
    return m.group("name") if m else None


@dataclass
class Listing:
    """One folder's entries, by kind; ``refused`` are links, FIFOs, devices, sockets."""

    dirs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def is_real_dir(path: Path) -> bool:
    """``path`` is a folder itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def scan(directory: Path, *, root: bool = False) -> Listing:
    """The entries of ``directory`` (empty if it is missing), sorted, never following a link.

    Raises CorruptStoreError if ``directory`` itself is a link or not a folder,
    unless it is the store's ``root`` (which may be a link the user made).
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | (0 if root else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(directory, flags)
    except FileNotFoundError:
        return Listing()
    except OSError:
        if os.path.islink(directory):
            raise CorruptStoreError("store folder is a symbolic link", path=str(directory)) from None
        raise CorruptStoreError("store folder is not a folder", path=str(directory)) from None
    listing = Listing()
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    listing.dirs.append(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    listing.files.append(entry.name)
                else:
                    listing.refused.append(entry.name)
    finally:
        os.close(fd)
    listing.dirs.sort()
    listing.files.sort()
    listing.refused.sort()
    return listing


def check_store_folders(root: Path) -> list[Path]:
    """The store's top folders that exist but are not plain folders (links, files)."""
    bad = []
    for name in STORE_FOLDERS:
        path = root / name
        if os.path.lexists(path) and not is_real_dir(path):
            bad.append(path)
    return bad


def remove_store_file(root: Path, path: Path) -> bool:
    """Unlink ``path`` if every folder between ``root`` and it is a real folder; True if removed."""
    parent = path.parent
    while parent != root:
        if not is_real_dir(parent):
            return False
        if parent.parent == parent:  # not under root at all
            return False
        parent = parent.parent
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def refused_entries(root: Path) -> list[Path]:
    """Links, FIFOs and devices among the entries of the store's folders (never followed).

    Assumes the store folders themselves are plain (see ``check_store_folders``).
    """
    refused: list[Path] = []
    objects = root / "objects"
    top = scan(objects)
    refused.extend(objects / n for n in top.refused)
    for sub in top.dirs:
        refused.extend(objects / sub / n for n in scan(objects / sub).refused)
    for name in ("packs", "refs", "journals"):
        refused.extend(root / name / n for n in scan(root / name).refused)
    return refused
