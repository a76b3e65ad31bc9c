"""A damaged store is refused with one clear line, never read as wrong data."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from storekit import PYTEST_FLAGS, Project, flip, take_lines

from doteval._objects import Store
from doteval.errors import NotFoundError, StoreError
from doteval.storage import get_storage_backend

REFUSALS: list[str] = []  # messages of the refused reads, for the wording check

N = 20


def expected_response(prompt: str) -> str:
    """What the model of ``Project(..., reply="padded")`` answers."""
    return prompt.upper() + " " + "padding to make results compressible " * 3


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, wide_output: None) -> pytest.Pytester:
    monkeypatch.setenv("DOTEVAL_TEST_CALLS", str(pytester.path / "calls.txt"))
    Project(pytester.path, N, reply="padded")
    return pytester


def run(pytester: pytest.Pytester, name: str) -> pytest.RunResult:
    return pytester.runpytest("eval_x.py", "--experiment", name, *PYTEST_FLAGS[1:])  # in this process


def calls(pytester: pytest.Pytester) -> list[str]:
    return take_lines(pytester.path / "calls.txt")


def doteval_cli(*args: str, cwd: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "doteval", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    return proc.returncode, proc.stdout + proc.stderr


def store_root() -> Path:
    return Path(os.environ["DOTEVAL_STORE"])


def results_pack() -> Path:
    packs = sorted((store_root() / "packs").glob("*.pack"), key=lambda p: p.stat().st_size)
    assert packs, "the run wrote no pack"
    return packs[-1]


def assert_one_line_error(code: int, out: str, *words: str) -> str:
    """One ``Error:`` line (plus at most a hint line after it), no traceback.

    ``show`` may have printed the experiment's header before it met the damage.
    Returns the error line and its hint, lowercased.
    """
    assert code != 0, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    at = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    assert len(at) == 1, out
    tail = lines[at[0] :]
    assert len(tail) == 1 or (len(tail) == 2 and tail[1].startswith("hint:")), out
    message = " ".join(tail).lower()
    for word in words:
        assert word in message, out
    return message


def loaded_or_refused(name: str) -> dict[str, str] | None:
    """prompt -> response read back, or None when the read is refused as damaged."""
    try:
        data = get_storage_backend().load_session(name)
    except (StoreError, NotFoundError) as e:  # the damaged-store errors, each with an fsck hint
        REFUSALS.append(str(e))
        return None
    assert data is not None
    return {r["prompt"]: r["response"] for r in data["results"]}


def test_flipped_byte_in_the_pack_is_refused(project: pytest.Pytester) -> None:
    result = run(project, "flip")
    assert result.ret == 0, result.stdout.str()
    assert len(calls(project)) == N

    pack = results_pack()
    flip(pack, pack.stat().st_size // 2)

    code, out = doteval_cli("show", "flip", "--full", cwd=project.path)
    message = assert_one_line_error(code, out)
    assert "corrupt" in message or "damaged" in message, out

    # Resuming: refuse, or evaluate again; either way no wrong data is ever shown.
    result = run(project, "flip")
    out = result.stdout.str() + result.stderr.str()
    if result.ret != 0:
        assert "corrupt" in out.lower() or "damaged" in out.lower(), out
    assert "Traceback" not in out
    calls(project)
    shown = loaded_or_refused("flip")
    if shown is not None:
        assert shown == {f"q{i}": expected_response(f"q{i}") for i in range(N)}
    code, out = doteval_cli("show", "flip", "--full", cwd=project.path)
    if code != 0:
        message = assert_one_line_error(code, out)
        assert "corrupt" in message or "damaged" in message, out
    else:
        for i in range(N):
            assert expected_response(f"q{i}").rstrip() in out or f"Q{i} " in out


def test_resume_over_a_damaged_result_refuses_or_reevaluates(project: pytest.Pytester) -> None:
    assert run(project, "heal").ret == 0
    calls(project)
    pack = results_pack()
    flip(pack, pack.stat().st_size // 2)
    assert loaded_or_refused("heal") is None  # damaged: reading it is refused

    result = run(project, "heal")
    out = result.stdout.str() + result.stderr.str()
    refused = result.ret != 0 and ("corrupt" in out.lower() or "damaged" in out.lower())
    if not refused:
        assert result.ret == 0, out
        assert calls(project), "the damaged sample was neither refused nor evaluated again"
        assert loaded_or_refused("heal") == {f"q{i}": expected_response(f"q{i}") for i in range(N)}


def _sweep(positions_per_file: int | None, seed: int) -> None:
    """Flip bytes of every pack and index, one at a time: a read is exact or refused."""
    want = {f"q{i}": expected_response(f"q{i}") for i in range(N)}
    assert loaded_or_refused("sweep") == want
    rng = random.Random(seed)
    files = sorted((store_root() / "packs").iterdir())
    assert files
    for path in files:
        original = path.read_bytes()
        positions = list(range(len(original)))
        if positions_per_file is not None and len(positions) > positions_per_file:
            positions = sorted(rng.sample(positions, positions_per_file))
        try:
            for at in positions:
                flip(path, at)
                shown = loaded_or_refused("sweep")
                assert shown is None or shown == want, f"{path.name} byte {at}: wrong data read"
                path.write_bytes(original)
        finally:
            path.write_bytes(original)
    assert loaded_or_refused("sweep") == want


def test_any_flipped_byte_is_exact_or_refused(project: pytest.Pytester) -> None:
    assert run(project, "sweep").ret == 0
    _sweep(positions_per_file=150, seed=5)


@pytest.mark.slow
def test_every_flipped_byte_is_exact_or_refused(project: pytest.Pytester) -> None:
    assert run(project, "sweep").ret == 0
    _sweep(positions_per_file=None, seed=0)


def test_every_refusal_message_says_the_store_is_damaged(project: pytest.Pytester) -> None:
    assert run(project, "wording").ret == 0
    REFUSALS.clear()
    pack = results_pack()
    original = pack.read_bytes()
    for at in range(len(original) // 4, min(len(original), len(original) // 4 + 300)):
        flip(pack, at)  # over entry headers and payloads alike
        try:
            get_storage_backend().load_session("wording")
        except (StoreError, NotFoundError) as e:
            REFUSALS.append(str(e))
        pack.write_bytes(original)
    assert REFUSALS
    unclear = [m for m in REFUSALS if "corrupt" not in m.lower() and "damaged" not in m.lower()]
    assert unclear == []


def test_missing_manifest_object_is_a_clear_error(project: pytest.Pytester) -> None:
    assert run(project, "gone").ret == 0
    assert len(calls(project)) == N
    store = Store()
    state = store.refs.read("gone")
    assert state is not None and state.head.manifest
    loose = store.objects.loose_path(state.head.manifest)
    assert loose.exists()
    loose.unlink()

    code, out = doteval_cli("show", "gone", cwd=project.path)
    assert_one_line_error(code, out, "missing")
    assert state.head.manifest[:12] in out

    result = run(project, "gone")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret != 0, out
    assert "missing" in out
    assert "Traceback" not in out
    assert calls(project) == []


def _object_entry(kind: str) -> tuple[Path, int, int]:
    """(pack, offset, stored length) of the one object of ``kind`` ("samples" or "details")
    of the last run's pack."""
    from doteval._objects.encoding import decode
    from doteval._objects.packs import PackIndex

    st = Store(store_root())
    for idx in sorted((store_root() / "packs").glob("*.idx")):
        pack = PackIndex(idx)
        try:
            for pos in range(pack.count):
                entry = pack.entry(pos)
                raw = st.objects.decompress(entry.codec, entry.raw_len, entry.payload, where="")
                if decode(raw).get("type") == kind:
                    return pack.pack_path, pack.offset(pos) + 9, len(entry.payload)
        finally:
            pack.close()
    raise AssertionError(f"no {kind} object in any pack")


def test_a_resume_evaluates_again_the_samples_whose_results_are_damaged(project: pytest.Pytester) -> None:
    assert run(project, "heal").ret == 0
    assert len(calls(project)) == N
    pack, at, length = _object_entry("details")
    flip(pack, at + length // 2)
    assert loaded_or_refused("heal") is None  # reading the damaged results is refused

    result = run(project, "heal")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert "are damaged or missing; they are evaluated again" in out  # a warning in pytest's summary
    assert sorted(calls(project)) == sorted(f"q{i}" for i in range(N))  # every sample of that table
    assert loaded_or_refused("heal") == {f"q{i}": expected_response(f"q{i}") for i in range(N)}
    code, out = doteval_cli("show", "heal", cwd=project.path)
    assert code == 0 and "Samples: 20/20" in out, out

    assert run(project, "heal").ret == 0  # and then it is a plain resume again
    assert calls(project) == []


def test_a_resume_over_a_damaged_sample_table_is_refused_in_one_line(project: pytest.Pytester) -> None:
    assert run(project, "table").ret == 0
    calls(project)
    pack, at, length = _object_entry("samples")
    flip(pack, at + length // 2)
    result = run(project, "table")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert "corrupt" in out.lower() or "damaged" in out.lower(), out
    assert "Traceback" not in out, out
    assert calls(project) == []  # nothing evaluated over a view it cannot read
