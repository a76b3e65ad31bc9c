"""A store on a full disk (issue 10, item 15): a real 1 MB tmpfs, mounted for the test.

The run ends with one line naming the store and the room it needs, its journal keeps every
finished sample (cut back to its last whole record), ``list`` and ``show`` work while the disk
is full (they write nothing), and once there is room the same command resumes. Needs root and
a working ``mount``; skipped elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from storekit import Project, cli, cli_json, finish, read_export

from doteval._objects.files import write_temp
from doteval._objects.journal import JournalWriter, read_journal
from doteval._objects.locks import FileLock
from doteval.errors import NoSpaceError


def _mount(path: Path, size: str, *options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    opts = ",".join([*options, f"size={size}"])
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount(disk, "1m"):
        pytest.skip("needs root and mount -t tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_run_on_a_full_disk_is_one_line_keeps_its_samples_and_resumes(
    small_disk: Path, tmp_path: Path
) -> None:
    store = small_disk / "store"
    project = Project(tmp_path / "project", 3000, reply="chat")  # ~1.2 KB a result: fills 1 MB
    code, out = finish(project.popen("full", store))
    assert code != 0
    assert f"no space left on device writing to {store} (need about " in out
    assert "Traceback" not in out and "INTERNALERROR" not in out and "Errno" not in out, out
    asked = len(project.calls())
    assert 100 < asked < 3000

    (journal,) = (store / "journals" / "full").iterdir()
    _records, whole = read_journal(journal)
    assert whole  # no torn record at the end: cut back when the write failed

    # readers work while the disk is full, and write nothing
    info = cli_json(store, "list")["experiments"]
    # shown as the seal will record it: the run ended on an error (the full disk)
    assert [(e["name"], e["status"]) for e in info] == [("full", "failed")]
    kept = info[0]["done"]
    assert asked - 1 <= kept <= asked  # only the sample being written when the disk filled
    shown = cli(store, "show", "full").stdout
    assert f"Samples: {kept}/3000" in shown and "Not sealed" in shown

    # the same command while the disk is still full: the same line, nothing lost
    code, out = finish(project.popen("full", store))
    assert code != 0 and "no space left on device writing to" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    kept = cli_json(store, "list")["experiments"][0]["done"]
    assert kept >= asked - 1

    subprocess.run(["mount", "-o", "remount,size=40m", str(small_disk)], check=True)
    project.calls_path.unlink()
    out = project.run("full", store)
    assert "Completed, 3000/3000" in out
    assert len(project.calls()) == 3000 - kept  # resumed: nothing kept was asked again
    assert len(read_export(store, "full").splitlines()) == 3000
    cli(store, "fsck")  # exit 0: no problem


def test_every_write_path_says_the_disk_is_full(small_disk: Path) -> None:
    (small_disk / "VERSION").write_text("doteval-store 1\n")
    with pytest.raises(NoSpaceError, match=rf"writing to {small_disk} \(need about 2 MB free\)"):
        write_temp(small_disk / "packs", b"x" * 2_000_000)
    assert list((small_disk / "packs").iterdir()) == []  # the temporary file is gone
    writer = JournalWriter(small_disk / "journals" / "x" / "r.journal")
    with pytest.raises(NoSpaceError, match="no space left on device"):
        for _ in range(100):
            writer.append("y" * 100_000)
    with pytest.raises(NoSpaceError):
        writer.append("z" * 600_000)
    writer.close()
    (small_disk / "locks").mkdir()
    with open(small_disk / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
        while True:  # the last byte
            f.write(b"f" * 512)
    with pytest.raises(NoSpaceError):  # a lock cannot say who holds it
        FileLock(small_disk / "locks" / "x.lock", "experiment 'x'").acquire()
    records, whole = read_journal(writer.path)
    assert whole and records and set(records) == {"y" * 100_000}  # whole records only
