"""``doteval fsck``: a clean store passes; every flipped byte, truncation or missing file is found.

The store is built once per module by real ``python -m pytest`` runs of an
evaluation project in a tmp folder, and copied for each test. Damage is done
to the copy. Bulk checks (a hundred flipped bytes) call fsck and export in this
process; the others run ``python -m doteval`` as a user would.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
from storekit import (
    Done,
    Project,
    cli,
    cli_json,
    copy_store,
    flip,
    loose_path,
    read_export,
    run_cli,
    run_cli_json,
)

from doteval._objects import Store
from doteval._objects.packs import PackIndex
from doteval._operations.fsck import fsck
from doteval._repository.manifest import load_manifest
from doteval._repository.sample_tables import load_parts
from doteval.errors import DotevalError

N = 20


def one_error_line(done: Done) -> str:
    """A refusal: exit 1, no traceback, exactly one ``Error:`` line on stderr."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def put_back(path: Path, pos: int, old: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        f.write(bytes([old]))


# its module-scoped fixtures are built once: all of its tests run in one xdist worker
pytestmark = [pytest.mark.usefixtures("wide_output"), pytest.mark.xdist_group("fsck")]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("fsck-base")
    store = root / "store"
    project = Project(root / "project", N, reply="unique")  # X and Y share no result
    project.run("X", store)
    project.run("Y", store)
    st = Store(store)
    ids = {}
    for name in ("X", "Y"):
        head = st.refs.read(name).head
        manifest = load_manifest(st, head.manifest)
        ids[name] = {"manifest": head.manifest, "entries": manifest.evaluations[0].entries, "record": head.id}
    exports = {name: read_export(store, name) for name in ("X", "Y")}
    assert all(len(text.splitlines()) == N for text in exports.values())
    return {"store": store, "ids": ids, "exports": exports}


@pytest.fixture
def store(base: dict, tmp_path: Path) -> Path:
    return copy_store(base["store"], tmp_path / "store")


def pack_of(store: Path, result_id: str) -> PackIndex:
    for idx in sorted((store / "packs").glob("*.idx")):
        pack = PackIndex(idx)
        if pack.find(bytes.fromhex(result_id)) >= 0:
            return pack
        pack.close()
    raise AssertionError(f"no pack holds {result_id}")


def first_result(base: dict, name: str) -> str:
    """The object holding the results (details) of the first sample table of ``name``."""
    return load_parts(Store(base["store"]), base["ids"][name]["entries"])[0].details_id


# -- a clean store ----------------------------------------------------------------------


def test_clean_store_has_no_errors(store: Path) -> None:
    done = run_cli(store, "fsck")
    assert "no errors, 0 warning(s)" in done.stdout, done.stdout
    report = cli_json(store, "fsck")
    assert report["ok"] is True and report["problems"] == []
    assert report["checked_packs"] == 2 and report["checked_manifests"] == 2 and report["checked_refs"] == 2


# -- one flipped byte -------------------------------------------------------------------------


def _damaged_file(base: dict, store: Path, where: str) -> tuple[Path, int]:
    if where == "loose":
        path = loose_path(store, base["ids"]["X"]["manifest"])
        return path, path.stat().st_size // 2
    pack = pack_of(store, first_result(base, "X"))
    try:
        if where == "pack":
            position = pack.find(bytes.fromhex(first_result(base, "X")))
            return pack.pack_path, pack.offset(position) + 9 + 3  # inside the entry's stored bytes
        # inside the sorted id of X's results (its sample table may equal Y's: found in Y's pack)
        position = pack.find(bytes.fromhex(first_result(base, "X")))
        return pack.idx_path, 8 + 4 + 256 * 4 + position * 32 + 5
    finally:
        pack.close()


@pytest.mark.parametrize("where", ["loose", "pack", "idx"])
def test_a_flipped_byte_is_an_error_naming_the_file(base: dict, store: Path, where: str) -> None:
    path, pos = _damaged_file(base, store, where)
    flip(path, pos, 0x40)
    done = run_cli(store, "fsck", ok=False)
    assert done.returncode == 1
    assert str(path) in done.stdout, done.stdout
    assert "error(s)" in done.stdout
    report = cli_json(store, "fsck", ok=False)
    assert report["ok"] is False
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert errors and any(str(path) in p["path"] or str(path) in p["message"] for p in errors), errors
    # Reading the damaged experiment is refused, never different data; Y is untouched.
    one_error_line(cli(store, "export", "X", ok=False))
    assert read_export(store, "Y") == base["exports"]["Y"]


def _flip_positions(store: Path, count: int, seed: int) -> list[tuple[Path, int, int]]:
    files = sorted(
        p
        for p in store.rglob("*")
        if p.is_file() and p.relative_to(store).parts[0] not in ("locks", "journals")
    )
    rng = random.Random(seed)
    picks: list[tuple[Path, int, int]] = []
    for path in files:  # every file: its first byte and one anywhere
        size = path.stat().st_size
        picks += [(path, 0, rng.randrange(1, 256)), (path, rng.randrange(size), rng.randrange(1, 256))]
    sizes = [p.stat().st_size for p in files]
    while len(picks) < count:
        path = rng.choices(files, weights=sizes)[0]
        picks.append((path, rng.randrange(path.stat().st_size), rng.randrange(1, 256)))
    return picks


def _flip_trials(base: dict, store: Path, count: int, seed: int) -> None:
    detected = harmless = 0
    for path, pos, mask in _flip_positions(store, count, seed):
        old = flip(path, pos, mask)
        try:
            try:
                opened = Store(store)
            except DotevalError as e:  # VERSION: every command refuses the store in one line
                assert path.name in str(e), (path, pos, e)
                detected += 1
                continue
            report = fsck(opened)
            exports: dict[str, str] = {}
            refused = None
            try:
                exports = {name: read_export(store, name) for name in ("X", "Y")}
            except DotevalError as e:
                refused = e
            where = f"{path.relative_to(store)} byte {pos} ^ {mask:#x}"
            if refused is None:  # whatever fsck says: never different data
                assert exports == base["exports"], where
            if report.ok:
                assert refused is None, (where, refused)
                harmless += 1
            else:
                detected += 1
                named = [p for p in report.errors if path.name in p.path or path.name in p.message]
                assert named, (where, [p.to_json() for p in report.errors])
        finally:
            put_back(path, pos, old)
    assert detected > harmless  # most bytes matter
    assert fsck(Store(store)).ok


def test_flipped_bytes_across_the_store_are_found_or_harmless(base: dict, store: Path) -> None:
    _flip_trials(base, store, count=100, seed=1234)


@pytest.mark.slow
def test_flipped_bytes_across_the_store_many(base: dict, store: Path) -> None:
    _flip_trials(base, store, count=1500, seed=99)


# -- truncated files -----------------------------------------------------------------------


@pytest.mark.parametrize("what", ["pack", "idx"])
@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["half", "empty"])
def test_truncated_pack_or_index_is_an_error_without_traceback(
    base: dict, store: Path, what: str, keep: float
) -> None:
    pack = pack_of(store, first_result(base, "X"))
    path = pack.pack_path if what == "pack" else pack.idx_path
    pack.close()
    os.truncate(path, int(path.stat().st_size * keep))
    done = run_cli(store, "fsck", ok=False)
    assert str(path) in done.stdout, done.stdout
    report = cli_json(store, "fsck", ok=False)
    assert any(p["severity"] == "error" and str(path) in p["path"] + p["message"] for p in report["problems"])
    one_error_line(cli(store, "export", "X", ok=False))


# -- missing files (a partial copy) ---------------------------------------------------------


def test_missing_pack_pair_is_reported_and_show_full_refuses_in_one_line(base: dict, store: Path) -> None:
    pack = pack_of(store, first_result(base, "X"))
    pack.close()
    pack.pack_path.unlink()
    pack.idx_path.unlink()
    done = run_cli(store, "fsck", ok=False)
    assert f"of eval_x.py::eval_x ({N} samples) is missing" in done.stdout, done.stdout
    line = one_error_line(run_cli(store, "show", "X", "--full", ok=False))
    assert "missing" in line, line
    assert "Samples: 20/20" in cli(store, "show", "X").stdout  # counts live in the manifest
    assert read_export(store, "Y") == base["exports"]["Y"]


def test_missing_entries_table_is_reported_and_show_full_refuses_in_one_line(base: dict, store: Path) -> None:
    entries = base["ids"]["X"]["entries"]
    loose_path(store, entries).unlink()
    done = run_cli(store, "fsck", ok=False)
    assert f"entries {entries[:12]} of eval_x.py::eval_x is missing" in done.stdout, done.stdout
    line = one_error_line(run_cli(store, "show", "X", "--full", ok=False))
    assert "missing" in line and entries[:16] in line, line
    one_error_line(cli(store, "export", "X", ok=False))
    assert read_export(store, "Y") == base["exports"]["Y"]


def test_missing_manifest_is_reported(base: dict, store: Path) -> None:
    manifest = base["ids"]["Y"]["manifest"]
    loose_path(store, manifest).unlink()
    report = cli_json(store, "fsck", ok=False)
    assert any(
        p["message"] == "manifest is missing" and manifest[:12] in p["path"] for p in report["problems"]
    )
    assert "missing" in one_error_line(cli(store, "show", "Y", ok=False))
    assert read_export(store, "X") == base["exports"]["X"]


# -- a run that died ----------------------------------------------------------------------------


def test_leftover_journal_of_a_killed_run_is_a_warning_until_the_next_run_seals_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    project = Project(tmp_path / "project", 200)
    proc = project.popen("K", store, sleep=0.02)
    project.wait_for_calls(10, proc, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert list((store / "journals" / "K").glob("*.journal"))

    done = run_cli(store, "fsck")  # warnings only: exit 0
    assert "a run that stopped without sealing" in done.stdout, done.stdout
    assert "the next run of K seals it" in done.stdout, done.stdout
    assert "no errors, 1 warning(s)" in done.stdout
    report = cli_json(store, "fsck")
    (problem,) = report["problems"]
    assert problem["severity"] == "warning" and problem["path"].endswith(".journal")

    shown = run_cli(store, "show", "K").stdout
    assert "Status: Interrupted" in shown and "Not sealed" in shown, shown
    assert "1 warning(s)" in run_cli(store, "fsck").stdout  # a read seals nothing
    project.run("K", store)  # the next run seals it
    done = run_cli(store, "fsck")
    assert "no errors, 0 warning(s)" in done.stdout, done.stdout
    assert not list((store / "journals" / "K").glob("*.journal"))


# -- rolling subsets ---------------------------------------------------------------------------


def test_subsets_check_part_of_the_objects_and_together_all(store: Path) -> None:
    full = run_cli_json(store, "fsck")["checked_objects"]
    parts = [cli_json(store, "fsck", "--subset", f"{k}/4") for k in range(1, 5)]
    counts = [p["checked_objects"] for p in parts]
    assert all(c < full for c in counts), (counts, full)
    assert sum(counts) == full
    # Refs and manifests are followed in every part.
    assert all(p["checked_refs"] == 2 and p["checked_manifests"] == 2 for p in parts)
    for bad in ("0/4", "5/4", "x"):
        assert "--subset" in one_error_line(cli(store, "fsck", "--subset", bad, ok=False))


def test_subset_finds_a_damaged_object_only_in_its_part(base: dict, store: Path) -> None:
    manifest = base["ids"]["X"]["manifest"]
    path = loose_path(store, manifest)
    flip(path, path.stat().st_size - 1, 0x01)
    part = int(manifest[:8], 16) % 4 + 1
    found = []
    for k in range(1, 5):
        report = cli_json(store, "fsck", "--subset", f"{k}/4", ok=None)
        if any(str(path) in p["path"] for p in report["problems"]):
            found.append(k)
    assert found == [part]
