"""Nothing outside the store is written or removed through it, and reading a store writes nothing.

A store's folders may be symbolic links (a store copied with ``tar`` or ``rsync -a``
from someone else, or a careless ``ln -s``): gc, fsck, push, pull and every walker
never follow them, gc removes only names of the store's own shapes, and every
write opens with ``O_NOFOLLOW | O_EXCL`` in a folder checked to be real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import storekit
from storekit import PY, Project, copy_store, read_only_mount_works, snapshot

from doteval._operations.sync import rsync_available

OLD = time.time() - 3 * 86400  # older than any grace period gc keeps temp files for


def age(path: Path, when: float = OLD) -> Path:
    os.utime(path, (when, when), follow_symlinks=False)
    return path


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """gc's clock three days ahead: files written now count as old (ctime cannot be set back)."""
    import doteval._operations.gc

    monkeypatch.setattr(doteval._operations.gc, "time", SimpleNamespace(time=lambda: time.time() + 3 * 86400))


def cli(store: Path, *args: str) -> storekit.Done:
    return storekit.cli(store, *args, ok=None)  # asserts no traceback; a refusal is fine here


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with experiments X and Y (same evaluation), built by real pytest runs."""
    root = tmp_path_factory.mktemp("paths-base")
    store = root / "store"
    project = Project(root / "project", 6)
    project.run("X", store)
    project.run("Y", store)
    return store


# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = [pytest.mark.usefixtures("wide_output"), pytest.mark.xdist_group("hostile_paths")]


# -- gc never deletes outside the store (issue 10, item 1) ------------------------------------------


def test_gc_never_deletes_through_a_linked_object_folder(base: Path, tmp_path: Path, later: None) -> None:
    store = copy_store(base, tmp_path / "store")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / ("a" * 62)).write_bytes(b"object-shaped, unreachable, old")
    age(victim / ("a" * 62))
    for name in (".bashrc", ".gitconfig", ".tmp-1-0123456789ab"):
        (victim / name).write_text("dot file")
        age(victim / name)
    (store / "objects" / "ab").symlink_to(victim)
    before = snapshot(victim)
    dry = cli(store, "gc", "--dry-run", "--prune", "now")
    assert dry.returncode == 0
    assert f"warning: {store / 'objects' / 'ab'}: not a plain file or folder" in dry.stdout, dry.stdout
    assert storekit.cli_json(store, "gc", "--dry-run")["refused"] == [str(store / "objects" / "ab")]
    for args in (("gc", "--prune", "now"), ("gc", "--aggressive", "--prune", "now"), ("fsck",)):
        done = cli(store, *args)
        assert args[0] == "fsck" or done.returncode == 0, done.stderr
    assert snapshot(victim) == before
    assert (store / "objects" / "ab").is_symlink()


def test_a_linked_packs_folder_stops_gc_and_nothing_behind_it_is_removed(
    base: Path, tmp_path: Path, later: None
) -> None:
    store = copy_store(base, tmp_path / "store")
    victim = tmp_path / "victim"
    shutil.move(store / "packs", victim)
    (victim / ".bashrc").write_text("dot file")
    age(victim / ".bashrc")
    (victim / f"pack-{'0' * 64}.pack").write_bytes(b"an orphan pack shape")
    age(victim / f"pack-{'0' * 64}.pack")
    (store / "packs").symlink_to(victim)
    before = snapshot(victim)
    for args in (("gc", "--dry-run"), ("gc", "--prune", "now")):
        done = cli(store, *args)
        assert done.returncode == 1 and "packs in the store is not a plain folder" in done.stderr, done.stderr
    assert "store folder is not a plain folder" in cli(store, "fsck").stdout
    assert snapshot(victim) == before


def test_gc_removes_only_temp_files_of_the_stores_own_shapes(base: Path, tmp_path: Path, later: None) -> None:
    store = copy_store(base, tmp_path / "store")
    folder = store / "objects" / "ab"
    folder.mkdir(exist_ok=True)
    kept = [folder / ".bashrc", folder / ".gitconfig", store / "packs" / ".profile", folder / ".tmp-filter"]
    removed = [
        folder / ".tmp-123-0123456789ab",  # ours
        folder / f".{'c' * 62}.Ab12Cd",  # rsync's partial file of an object
        store / "packs" / ".tmp-9-aaaaaaaaaaaa",
    ]
    for path in kept + removed:
        path.write_text("x")
        age(path)
    stats = storekit.cli_json(store, "gc", "--prune", "now")
    assert stats["removed_temp"] == len(removed)
    assert [p.exists() for p in kept] == [True] * len(kept)
    assert [p.exists() for p in removed] == [False] * len(removed)


# -- push writes nothing, and never through a link (items 2 and 17) ---------------------------------

METHODS = ["rsync", "copy"] if rsync_available() else ["copy"]


@pytest.mark.parametrize("method", METHODS)
def test_push_never_writes_through_a_linked_filter_and_writes_nothing_in_its_store(
    base: Path, tmp_path: Path, method: str
) -> None:
    store = copy_store(base, tmp_path / "store")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (store / "rsync-filter").unlink(missing_ok=True)
    (store / ".tmp-filter").symlink_to(victim)
    (store / "rsync-filter").symlink_to(victim)
    before = snapshot(store)
    flags = ["--no-rsync"] if method == "copy" else []
    done = cli(store, "push", str(tmp_path / "dst"), *flags)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious\n"
    assert snapshot(store) == before  # reading a store to push it writes nothing in it
    assert sorted(e["name"] for e in storekit.cli_json(tmp_path / "dst", "list")["experiments"]) == ["X", "Y"]


@pytest.mark.parametrize("method", METHODS)
def test_push_from_a_store_on_a_read_only_mount(base: Path, tmp_path: Path, method: str) -> None:
    if not read_only_mount_works(tmp_path):
        pytest.skip("needs unshare and mount (root) for a read-only bind mount")
    store = copy_store(base, tmp_path / "store")
    (store / "rsync-filter").unlink(missing_ok=True)  # push used to write it
    dst = tmp_path / "dst"
    flags = " --no-rsync" if method == "copy" else ""
    script = f"mount --bind -o ro {store} {store} && {PY} -m doteval push {dst}{flags} --store {store}"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("Pushed "), done.stdout
    assert sorted(e["name"] for e in storekit.cli_json(dst, "list")["experiments"]) == ["X", "Y"]


# -- a store whose folders are links to a decoy: nothing in the decoy changes ----------------------


def _decoy_store(base: Path, tmp_path: Path, shape: str) -> tuple[Path, Path]:
    """A copy of ``base`` whose folders (``top``: objects, packs, refs, journals, locks;
    ``sub``: each object folder and ref folder) were moved into a decoy and linked back.
    The decoy also holds old files that look like garbage and temp files."""
    store = copy_store(base, tmp_path / "store")
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (store / "journals" / "X").mkdir(parents=True, exist_ok=True)
    (store / "locks").mkdir(exist_ok=True)
    if shape == "top":
        folders = [store / name for name in ("objects", "packs", "refs", "journals", "locks")]
    else:
        folders = [p for p in (store / "objects").iterdir()] + [p for p in (store / "refs").iterdir()]
        folders += [store / "journals" / "X"]
    for n, folder in enumerate(folders):
        target = decoy / f"{n}-{folder.name}"
        shutil.move(folder, target)
        folder.symlink_to(target)
    for folder in [decoy, *(p for p in decoy.iterdir() if p.is_dir())]:
        for name in (".bashrc", ".tmp-1-0123456789ab", "a" * 62, f"pack-{'0' * 64}.pack"):
            (folder / name).write_text("old")
            age(folder / name)
    return store, decoy


@pytest.mark.parametrize("shape", ["top", "sub"])
def test_no_command_changes_anything_in_a_decoy_the_stores_folders_link_to(
    base: Path, tmp_path: Path, shape: str, later: None
) -> None:
    store, decoy = _decoy_store(base, tmp_path, shape)
    good = copy_store(base, tmp_path / "good")
    before = snapshot(decoy)
    out = tmp_path / "out"
    out.mkdir()
    commands: list[tuple[str, ...]] = [
        ("list",),
        ("show", "X"),
        ("show", "X", "--full"),
        ("log",),
        ("log", "X"),
        ("diff", "X", "Y"),
        ("export", "X", "-f", "jsonl", "-o", str(out / "x.jsonl")),
        ("report", "X", "-o", str(out / "x.html")),
        ("gc", "--dry-run"),
        ("gc", "--prune", "now"),
        ("gc", "--aggressive", "--prune", "now"),
        ("fsck",),
        ("push", str(tmp_path / "pushed"), "--no-rsync"),
        ("pull", str(good), "--no-rsync"),
    ]
    if rsync_available():
        commands += [("push", str(tmp_path / "pushed-rsync")), ("pull", str(good))]
    for args in commands:
        cli(store, *args)  # a refusal is fine; a traceback or a change in the decoy is not
        assert snapshot(decoy) == before, args
    project = Project(tmp_path / "project", 6)
    for name in ("Z", "X"):  # a new experiment; X resumes (or is refused)
        _code, output = storekit.finish(project.popen(name, store))
        assert "Traceback" not in output, output
        assert snapshot(decoy) == before, output


def test_a_store_that_is_itself_a_link_the_user_made_works(base: Path, tmp_path: Path) -> None:
    """Only links *inside* a store are refused: the store folder may be a link (to a bigger disk)."""
    real = copy_store(base, tmp_path / "real")
    store = tmp_path / "store"
    store.symlink_to(real)
    Project(tmp_path / "project", 6).run("Z", store)
    assert storekit.cli(store, "fsck").returncode == 0
    stats = storekit.cli_json(store, "gc", "--prune", "now")
    assert stats["bytes_before"] > 0 and stats["refused"] == []
    for flags in (["--no-rsync"], []) if rsync_available() else (["--no-rsync"],):
        storekit.cli(store, "push", str(tmp_path / f"pushed{len(flags)}"), *flags)
        storekit.cli(store, "pull", str(base), *flags)
    assert sorted(e["name"] for e in storekit.cli_json(store, "list")["experiments"]) == ["X", "Y", "Z"]
    assert storekit.cli(store, "fsck").returncode == 0


def test_a_run_whose_seal_meets_a_linked_folder_says_so_in_one_line(base: Path, tmp_path: Path) -> None:
    """The journal is written (journals/ is real), the seal is refused: one line, no second failure."""
    store = copy_store(base, tmp_path / "store")
    decoy = tmp_path / "decoy"
    shutil.move(store / "objects", decoy)
    (store / "objects").symlink_to(decoy)
    before = snapshot(decoy)
    code, output = storekit.finish(Project(tmp_path / "project", 6).popen("Z", store))
    assert code != 0 and "Traceback" not in output, output
    assert "objects is a symbolic link" in output, output
    assert snapshot(decoy) == before


def test_an_object_is_never_read_through_a_linked_object_folder(base: Path, tmp_path: Path) -> None:
    """``O_NOFOLLOW`` guards only a path's last part: the folder ``objects/ab`` of a copied
    store that links elsewhere must not be read through either (the object there may even
    be the right one: it is still outside the store)."""
    store = copy_store(base, tmp_path / "store")
    folders = sorted(p for p in (store / "objects").iterdir() if p.is_dir() and any(p.iterdir()))
    assert folders, "the base store has loose objects"
    outside = tmp_path / "outside"
    outside.mkdir()
    for folder in folders:  # every loose object now lies outside, behind a link of the same name
        shutil.move(folder, outside / folder.name)
        folder.symlink_to(outside / folder.name)
    before = snapshot(outside)
    for args in (("show", "X"), ("list",), ("export", "X"), ("log", "X")):
        done = cli(store, *args)
        assert done.returncode != 0 or "Damaged" in done.stdout, (args, done.stdout)
        assert "symbolic link" in done.stdout + done.stderr, (args, done.stdout, done.stderr)
    assert snapshot(outside) == before
