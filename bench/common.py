"""Helpers every measurement shares: subprocesses, timing, disk usage, the cache."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from doteval._operations.gc import allocated_bytes

ROOT = Path(__file__).resolve().parent.parent  # the repository (holds bench/ and doteval/)
BENCH = ROOT / "bench"
PYTHON = sys.executable
RESULT_TAG = "BENCH-RESULT "
LAST_CPU = [0.0]  # CPU seconds of the last child that ``run`` waited for


class BenchError(RuntimeError):
    """A measurement could not be taken (a command failed): the row says why."""


@dataclass
class Row:
    """One line of the table (and one object of the JSON)."""

    group: str  # the measurement it belongs to: record, resume, disk, cli, diff, gc, push, peer
    name: str
    value: float | None = None
    baseline: float | None = None
    unit: str = "s"  # s, B, B/sample, ms/sample, files
    baseline_label: str = ""
    target: str = ""
    # how the target is checked: "ratio" (ratio <= limit), "abs" (value <= limit), "info" (no target)
    check: str = "ratio"
    limit: float | None = None
    status: str = "ok"  # ok, skipped, error
    reason: str = ""  # why skipped / what failed
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def holds(self) -> bool | None:
        if self.status != "ok" or self.check == "info" or self.limit is None:
            return None
        measured = self.ratio if self.check == "ratio" else self.value
        return None if measured is None else measured <= self.limit

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["holds"] = self.holds
        return data


# -- environment and subprocesses -------------------------------------------------


def base_env(**extra: str) -> dict[str, str]:
    """The environment of every child: no inherited store or pytest options, no colour."""
    env = dict(os.environ)
    for name in ("DOTEVAL_STORE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "120"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def doteval_cmd() -> list[str]:
    """How a user runs the CLI: the console script next to this Python, else ``-m doteval``."""
    script = Path(PYTHON).with_name("doteval")
    return [str(script)] if script.exists() else [PYTHON, "-m", "doteval"]


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    check: bool = True,
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``argv``; return its wall time (fork to exit) and the completed process.

    The child's CPU time (user + sys) is left in ``LAST_CPU[0]``: on a loaded
    machine it tells how much of the wall time was waiting for a CPU.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=cwd or ROOT,
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    if check and done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise BenchError(f"{' '.join(argv[:6])}... exited {done.returncode}:\n{tail}")
    return elapsed, done


def child(task: str, timeout: float = 3600, **args: Any) -> dict[str, Any]:
    """Run ``bench.child`` TASK in a fresh interpreter; return the JSON it reports."""
    _, done = run([PYTHON, "-m", "bench.child", task, json.dumps(args)], timeout=timeout)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])  # type: ignore[no-any-return]
    raise BenchError(f"child task {task} reported nothing:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def best_of(repeat: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    times = [fn() for _ in range(max(1, repeat))]
    return min(times), times


def time_command(argv: list[str], repeat: int, **kwargs: Any) -> tuple[float, list[float]]:
    """Best wall time of ``repeat`` fresh runs of a command (cold interpreter each time)."""
    return best_of(repeat, lambda: run(argv, **kwargs)[0])


# -- disk -----------------------------------------------------------------------------


def allocated(path: Path) -> int:
    """Bytes allocated on disk (st_blocks * 512) under ``path``, a file or a folder."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return allocated_bytes(path)  # what `doteval gc` reports, counted the same way


def file_count(path: Path) -> int:
    return sum(len(files) for _d, _s, files in os.walk(path))


def snapshot(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``root``."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.stat().st_size
    return out


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder outside the repository (so pytest finds no ini file above it)."""
    path = Path(tempfile.mkdtemp(prefix=f"doteval-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the cache of generated stores ------------------------------------------------------

CACHE_VERSION = 1


def code_digest() -> str:
    """Changes whenever doteval or the bench workloads change: a cached store is then rebuilt."""
    h = hashlib.sha256(str(CACHE_VERSION).encode())
    files = [*sorted((ROOT / "doteval").rglob("*.py")), BENCH / "data.py", BENCH / "workloads.py"]
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


class Cache:
    """Stores built once per (kind, parameters, code) under ``bench/.cache``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._digest: str | None = None

    def get(
        self, kind: str, params: dict[str, Any], build: Callable[[Path], dict[str, Any]]
    ) -> tuple[Path, dict[str, Any], bool]:
        """The folder of a finished build (built now if missing); its info; whether it was reused."""
        if self._digest is None:
            self._digest = code_digest()
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{kind}-{key}-{self._digest}"
        path = self.root / name
        marker = path / "BUILT.json"
        if marker.exists():
            return path / "data", json.loads(marker.read_text()), True
        self.root.mkdir(parents=True, exist_ok=True)
        # Builds of older code are stale whatever their parameters: drop them.
        for old in self.root.iterdir():
            if old.is_dir() and not old.name.endswith(f"-{self._digest}"):
                shutil.rmtree(old, ignore_errors=True)
        path.mkdir(parents=True)
        started = time.perf_counter()
        info = build(path / "data")
        info["build_seconds"] = round(time.perf_counter() - started, 3)
        info["params"] = params
        marker.write_text(json.dumps(info, indent=2))
        return path / "data", info, False


def copy_tree(src: Path, dst: Path) -> float:
    started = time.perf_counter()
    shutil.copytree(src, dst, symlinks=True)
    return time.perf_counter() - started
