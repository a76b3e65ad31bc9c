"""The benchmark suite runs end to end (``python -m bench --smoke``) and reports every measurement.

Not a timing test: on a noisy machine ratios may miss their targets (the table
says so); the exit code is non-zero only when a measurement crashed. It starts every
benchmark's processes, so it is kept out of the default run (marked slow):
``python -m pytest -m slow tests/test_bench_smoke.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEASUREMENTS = ["record", "resume", "disk", "cli", "diff", "gc", "push", "peer", "cache", "ratelimit"]


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "bench" / "__main__.py").exists(), reason="no bench/ in this checkout")
def test_bench_smoke_pass_reports_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DOTEVAL_STORE", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--no-latest",
            "--json",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    document = json.loads(out.read_text())
    assert document["mode"] == "smoke"
    assert document["measurements"] == MEASUREMENTS
    rows = document["rows"]
    groups = {row["group"] for row in rows}
    assert groups == set(MEASUREMENTS)
    for row in rows:
        assert row["status"] in ("ok", "skipped"), row
        assert (row["name"] and row["target"]) or row["status"] == "skipped", row
        if row["status"] == "ok":
            assert isinstance(row["value"], (int, float)), row
            assert row["holds"] in (True, False, None), row
            if row["check"] != "info":
                assert row["baseline"], row
                assert row["ratio"] is not None, row
    # every measurement's rows are printed in the table
    for row in rows:
        assert row["name"] in done.stdout
