"""Checking a store: every object re-hashed, every reference followed.

fsck reads everything (or a rolling subset of the objects, ``subset=(n, t)``)
and reports each problem with its path and what to do; it changes nothing.
Errors are damage (a corrupt or missing object, a malformed file); warnings
are states that need a command but lose nothing (an unsealed run, two heads
of one experiment, leftover temporary files).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doteval._objects import Store
from doteval._objects.encoding import decode
from doteval._objects.hashing import hash_bytes, is_object_id
from doteval._objects.names import check_name
from doteval._objects.packs import PackIndex
from doteval._objects.store import check_store_version
from doteval._objects.walk import check_store_folders, scan
from doteval._repository.call_entries import load_calls, load_entry
from doteval._repository.manifest import load_manifest
from doteval._repository.run_journal import journal_problem
from doteval._repository.sample_tables import SampleTable, load_details, load_parts
from doteval.errors import CorruptStoreError, DotevalError, ObjectNotFoundError, StoreError

STALE_TEMP = 3600.0
Progress = Callable[[str, int, int], None]


@dataclass
class Problem:
    severity: str  # "error" or "warning"
    path: str
    message: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity, "path": self.path, "message": self.message, "hint": self.hint}


@dataclass
class FsckReport:
    checked_objects: int = 0
    checked_packs: int = 0
    checked_manifests: int = 0
    checked_refs: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, path: Path | str, message: str, hint: str = "") -> None:
        self.problems.append(Problem("error", str(path), message, hint))

    def warn(self, path: Path | str, message: str, hint: str = "") -> None:
        self.problems.append(Problem("warning", str(path), message, hint))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked_objects": self.checked_objects,
            "checked_packs": self.checked_packs,
            "checked_manifests": self.checked_manifests,
            "checked_refs": self.checked_refs,
            "problems": [p.to_json() for p in self.problems],
        }


REFETCH = (
    "move the damaged file out of the store, then `doteval pull` from a good copy "
    "(pull never overwrites a file that exists), or restore it from a backup"
)


def _in_subset(oid: str, subset: tuple[int, int] | None) -> bool:
    return subset is None or int(oid[:8], 16) % subset[1] == subset[0] - 1


def fsck(
    store: Store, *, subset: tuple[int, int] | None = None, progress: Progress | None = None
) -> FsckReport:
    report = FsckReport()
    tell = progress or (lambda stage, done, total: None)
    try:
        check_store_version(store.root)
    except DotevalError as e:
        report.error(store.root / "VERSION", str(e), e.hint or "")
        return report
    if not store.root.is_dir():
        report.error(store.root, "no store here", "check --store or DOTEVAL_STORE")
        return report
    bad = check_store_folders(store.root)
    for path in bad:
        report.error(path, "store folder is not a plain folder (a symbolic link?): not walked", OUT)
    if store.object_files.objects_dir not in bad:
        _check_loose(store, report, subset, tell)
    if store.object_files.packs_dir not in bad:
        _check_packs(store, report, subset, tell)
    if store.refs.dir not in bad:
        _check_refs(store, report, tell, subset)
    if store.journals_dir not in bad:
        _check_journals(store, report)
    return report


OUT = "move it out of the store"


def _entries(directory: Path) -> list[tuple[str, str]]:
    """(name, kind) of each entry, sorted by name; kind is dir, file or other (never followed)."""
    listing = scan(directory)
    kinds = [(n, "dir") for n in listing.dirs] + [(n, "file") for n in listing.files]
    return sorted(kinds + [(n, "other") for n in listing.refused])


def _check_loose(store: Store, report: FsckReport, subset: tuple[int, int] | None, tell: Progress) -> None:
    objects_dir = store.object_files.objects_dir
    now = time.time()
    for name, kind in _entries(objects_dir):
        sub = objects_dir / name
        if kind == "file" and name.startswith("."):  # ours (.tmp-*) or rsync's (.name.XXXXXX)
            _temp(report, sub, now)
            continue
        if kind != "dir" or len(name) != 2:
            report.error(sub, "unexpected entry among object folders", OUT)
            continue
        for file_name, file_kind in _entries(sub):
            path = sub / file_name
            if file_kind == "file" and file_name.startswith("."):
                _temp(report, path, now)
                continue
            oid = name + file_name
            if not is_object_id(oid) or file_kind != "file":
                report.error(path, "unexpected file among objects", "move it out of the store")
                continue
            if not _in_subset(oid, subset):
                continue
            report.checked_objects += 1
            try:
                raw = store.object_files.read_loose(path)
            except DotevalError as e:
                report.error(path, f"unreadable object: {e}", REFETCH)
                continue
            actual = hash_bytes(raw)
            if actual != oid:
                report.error(path, f"corrupt object: its bytes hash to {actual[:16]}", REFETCH)


def _check_packs(store: Store, report: FsckReport, subset: tuple[int, int] | None, tell: Progress) -> None:
    packs_dir = store.object_files.packs_dir
    now = time.time()
    entries = _entries(packs_dir)
    names = [packs_dir / n for n, kind in entries if kind == "file"]
    for n, _kind in (e for e in entries if e[1] != "file"):
        report.error(packs_dir / n, "unexpected entry among packs: a symbolic link or not a plain file", OUT)
    idx_names = {p.stem for p in names if p.suffix == ".idx"}
    for path in names:
        if path.name.startswith("."):
            _temp(report, path, now)
        elif path.suffix == ".pack" and path.stem not in idx_names:
            report.warn(
                path,
                "pack without an index (a seal or gc was cut short)",
                "`doteval gc` removes it once it is a day old",
            )
        elif path.suffix not in (".pack", ".idx"):
            report.error(path, "unexpected file among packs", "move it out of the store")
    for i, stem in enumerate(sorted(idx_names)):
        idx_path = packs_dir / f"{stem}.idx"
        tell("packs", i, len(idx_names))
        report.checked_packs += 1
        try:
            pack = PackIndex(idx_path)
        except DotevalError as e:
            report.error(idx_path, f"unreadable pack index: {e}", "`doteval gc` cannot fix this: " + REFETCH)
            continue
        try:
            pack.verify()
            if not pack.pack_path.exists():
                report.error(pack.pack_path, "pack missing for its index", REFETCH)
                continue
            pack.verify_pack()
        except DotevalError as e:
            report.error(getattr(e, "path", "") or idx_path, str(e), REFETCH)
        try:
            for pos, raw_id in enumerate(pack.ids()):
                oid = raw_id.hex()
                if not _in_subset(oid, subset):
                    continue
                report.checked_objects += 1
                try:
                    entry = pack.entry(pos)
                    raw = store.object_files.decompress(
                        entry.codec,
                        entry.raw_len,
                        entry.payload,
                        where=str(pack.pack_path),
                        dictionary=entry.dictionary,
                    )
                except DotevalError as e:
                    report.error(pack.pack_path, f"object {oid[:16]}: {e}", REFETCH)
                    continue
                if hash_bytes(raw) != oid:
                    report.error(pack.pack_path, f"object {oid[:16]} is corrupt", REFETCH)
        finally:
            pack.close()


def _check_refs(store: Store, report: FsckReport, tell: Progress, subset: tuple[int, int] | None) -> None:
    refs_dir = store.refs.dir
    checked_manifests: set[str] = set()
    checked_entries: set[str] = set()
    for name, kind in _entries(refs_dir):
        directory = refs_dir / name
        try:
            check_name(name)
        except DotevalError:
            report.error(directory, "not an experiment name", "move it out of the store")
            continue
        if kind != "dir":
            report.error(directory, "ref folder is not a plain folder", "move it out of the store")
            continue
        try:
            state = store.refs.read(directory.name)
        except DotevalError as e:
            report.error(getattr(e, "path", "") or directory, str(e), REFETCH)
            continue
        if state is None:
            continue
        report.checked_refs += 1
        if state.diverged:
            heads = ", ".join(h.manifest[:10] if h.manifest else h.id[:10] for h in state.heads)
            report.warn(
                directory,
                f"experiment {directory.name!r} moved in two stores and has {len(state.heads)} heads ({heads})",
                f"`doteval show {directory.name}@REV` shows each line; "
                f"`doteval keep {directory.name}@REV` chooses one",
            )
        for record in state.records.values():
            if record.parent and record.parent not in state.records:
                report.warn(
                    directory / record.id,
                    "history is cut: the record before this one is missing",
                    "a partial copy? `doteval pull` again",
                )
            if record.manifest and record.manifest not in checked_manifests:
                checked_manifests.add(record.manifest)
                try:
                    _check_manifest(store, report, directory.name, record.manifest, checked_entries, subset)
                except DotevalError as e:  # a damaged pack index met while looking objects up
                    report.error(getattr(e, "path", "") or directory, str(e), REFETCH)
    report.checked_manifests = len(checked_manifests)


def _check_manifest(
    store: Store,
    report: FsckReport,
    name: str,
    manifest_id: str,
    checked: set[str],
    subset: tuple[int, int] | None = None,
) -> None:
    where = f"manifest {manifest_id[:12]} of {name!r}"
    try:
        manifest = load_manifest(store, manifest_id)
    except ObjectNotFoundError:
        report.error(where, "manifest is missing", REFETCH)
        return
    except DotevalError as e:
        report.error(where, f"unreadable manifest: {e}", REFETCH)
        return
    if manifest.calls and manifest.calls not in checked:
        checked.add(manifest.calls)
        _check_calls(store, report, where, manifest.calls, checked, subset)
    for ev in manifest.evaluations:
        if ev.code and not store.objects.has(ev.code):
            report.error(where, f"code object {ev.code[:12]} of {ev.node_id} is missing", REFETCH)
        if not ev.entries or ev.entries in checked:
            continue
        checked.add(ev.entries)
        try:
            parts = load_parts(store, ev.entries)
        except ObjectNotFoundError:
            report.error(where, f"entries {ev.entries[:12]} of {ev.node_id} is missing", REFETCH)
            continue
        except (DotevalError, StoreError) as e:
            report.error(where, f"entries of {ev.node_id}: {e}", REFETCH)
            continue
        columns = len(ev.columns)
        for part in parts:
            for kind, object_id, read in (
                ("sample table", part.table_id, lambda p=part, n=columns: _read_table(store, p.table_id, n)),
                (
                    "results",
                    part.details_id,
                    lambda p=part: load_details(store, p.details_id, SampleTable.load(store, p.table_id)),
                ),
            ):
                # results are cut by their table's sizes: a pair is checked once
                seen = object_id if kind == "sample table" else part.table_id + object_id
                if seen in checked:
                    continue
                checked.add(seen)
                try:
                    if _in_subset(object_id, subset):
                        read()  # decoded: its shape is checked, not only its bytes
                    elif not store.objects.has(object_id):
                        raise ObjectNotFoundError(object_id)
                except ObjectNotFoundError:
                    report.error(
                        where,
                        f"{kind} {object_id[:12]} of {ev.node_id} ({part.length} samples) is missing",
                        REFETCH,
                    )
                except (DotevalError, StoreError) as e:
                    report.error(where, f"{kind} of {ev.node_id}: {e}", REFETCH)


def _check_calls(
    store: Store,
    report: FsckReport,
    where: str,
    calls_id: str,
    checked: set[str],
    subset: tuple[int, int] | None,
) -> None:
    """The ``calls`` object of a manifest, and every call cache entry it names."""
    try:
        calls = load_calls(store, calls_id)
    except ObjectNotFoundError:
        report.error(where, f"calls object {calls_id[:12]} is missing", REFETCH)
        return
    except (DotevalError, StoreError) as e:
        report.error(where, f"calls object {calls_id[:12]}: {e}", REFETCH)
        return
    for entry in calls.values():
        if entry in checked:
            continue
        checked.add(entry)
        try:
            if _in_subset(entry, subset):
                load_entry(store, entry)
            elif not store.objects.has(entry):
                raise ObjectNotFoundError(entry)
        except ObjectNotFoundError:
            report.error(where, f"call cache entry {entry[:12]} is missing", REFETCH)
        except (DotevalError, StoreError) as e:
            report.error(where, f"call cache entry {entry[:12]}: {e}", REFETCH)


def _read_table(store: Store, table_id: str, columns: int) -> None:
    """Read a sample table as every reader would: its scores, and each item decoded to one
    value per column (an item that does not decode would fail only the command that shows it)."""
    table = SampleTable.load(store, table_id)
    table.scores  # noqa: B018 - decoded for its checks
    for row, item in enumerate(table.items):
        value = decode(item)
        if type(value) is not tuple or len(value) != columns:
            raise CorruptStoreError(
                f"sample table {table_id[:12]}: the item of row {row} is not one value per column"
            )


def _check_journals(store: Store, report: FsckReport) -> None:
    for name, kind in _entries(store.journals_dir):
        directory = store.journals_dir / name
        if kind != "dir":
            report.error(directory, "journal folder is not a plain folder", "move it out of the store")
            continue
        for file_name, file_kind in _entries(directory):
            if not file_name.endswith(".journal"):
                continue
            path = directory / file_name
            if file_kind != "file":
                report.error(path, "journal is a symbolic link (or not a plain file)", OUT)
                continue
            try:
                holder = store.live_holder(directory.name)
            except DotevalError:
                holder = None
            problem = journal_problem(path)
            if holder is not None:
                report.warn(path, f"live run (pid {holder.get('pid', '?')} on {holder.get('host', '?')})")
            elif problem is not None:
                report.error(path, f"a journal that cannot be sealed: {problem}", "move it out of the store")
            else:
                report.warn(
                    path,
                    "a run that stopped without sealing",
                    f"the next run of {directory.name} seals it, keeping its finished samples "
                    f"(`doteval show {directory.name}` shows them now)",
                )


def _temp(report: FsckReport, path: Path, now: float) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if now - max(st.st_mtime, st.st_ctime) > STALE_TEMP:
        report.warn(
            path, "leftover temporary file of an interrupted write", "safe to delete; `doteval gc` does"
        )
