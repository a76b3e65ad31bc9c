"""The measurements. Each takes a ``Context`` and returns its table rows.

Every number is compared with a baseline timed in the same run (these
machines are noisy: absolute times are not stable). Timings that are short are
repeated and the best is kept; commands whose cold start matters (the CLI,
pytest) run in a fresh process each time.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    LAST_CPU,
    PYTHON,
    BenchError,
    Cache,
    Row,
    allocated,
    base_env,
    best_of,
    child,
    copy_tree,
    doteval_cmd,
    file_count,
    run,
    snapshot,
    time_command,
)
from bench.data import MODEL_SOURCE

GiB = 1 << 30


@dataclass
class Sizes:
    """How big each measurement is in one mode (quick, full, smoke)."""

    mode: str
    repeat: int  # repeats of short timings (best kept)
    record: list[int]
    resume: list[int]
    disk_short: int
    disk_chat: int
    disk_runs: int  # the disk stores are recorded in this many runs (several packs, superseded tables)
    cli_results: int
    cli_experiments: int
    diff: int
    push_extra: int
    peer: int
    cli_repeat: int = 3  # fresh-process CLI timings: best of this many
    ratelimit: int = 4_000  # samples of the rate-limited run (measurement 7)

    def repeats_for(self, n: int, big: int) -> int:
        """Fewer repeats for the big sizes (one big run is long enough to be stable)."""
        return self.repeat if n < big else max(1, self.repeat - 1)


SIZES = {
    "full": Sizes(
        mode="full",
        repeat=3,
        record=[10_000, 100_000],
        resume=[100_000, 1_000_000],
        disk_short=100_000,
        disk_chat=10_000,
        disk_runs=4,
        cli_results=1_000_000,
        cli_experiments=200,
        diff=100_000,
        push_extra=1_000,
        peer=2_000,
    ),
    "quick": Sizes(
        mode="quick",
        repeat=3,
        record=[2_000],
        resume=[20_000],
        disk_short=20_000,
        disk_chat=2_000,
        disk_runs=4,
        cli_results=50_000,
        cli_experiments=20,
        diff=20_000,
        push_extra=500,
        peer=200,
        ratelimit=2_000,
    ),
    # for the test suite: every code path, tiny sizes, numbers meaningless
    "smoke": Sizes(
        mode="smoke",
        repeat=1,
        record=[200],
        resume=[1_000],
        disk_short=1_000,
        disk_chat=300,
        disk_runs=2,
        cli_results=2_000,
        cli_experiments=4,
        diff=1_000,
        push_extra=50,
        peer=20,
        cli_repeat=1,
        ratelimit=100,
    ),
}


@dataclass
class Context:
    sizes: Sizes
    cache: Cache
    tmp: Path  # scratch folder of this run of the suite
    profile_dir: Path | None = None
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)
    shared: dict[str, Any] = field(default_factory=dict)

    def fresh(self, name: str) -> Path:
        path = self.tmp / name
        n = 0
        while path.exists():
            n += 1
            path = self.tmp / f"{name}-{n}"
        return path


# -- pytest runs (measurements 1 and 6) -------------------------------------------------

EVAL_FILE = """
import os

from bench.data import arithmetic_items
from doteval import Result, foreach
from doteval.evaluators import exact_match


@foreach("prompt,expected", arithmetic_items(int(os.environ["BENCH_N"])))
def eval_bench(prompt, expected, model):
    response = model.generate(prompt)
    return Result(exact_match(response, expected), prompt=prompt, response=response)
"""

CONFTEST = (
    "import pytest\n"
    + MODEL_SOURCE
    + """

@pytest.fixture
def model():
    return InstantModel()


# In-process timing: from the start of the session (before collection, which
# builds the dataset) to the very end (after doteval has sealed the run).
import os as _os  # noqa: E402
import time as _time  # noqa: E402

_STARTED = [0.0]


def pytest_sessionstart(session):
    _STARTED[0] = _time.perf_counter()


def pytest_unconfigure(config):
    path = _os.environ.get("BENCH_TIMING_FILE")
    if path and _STARTED[0]:
        with open(path, "w") as f:
            f.write(repr(_time.perf_counter() - _STARTED[0]))
"""
)


def _pytest_project(ctx: Context) -> Path:
    proj = ctx.shared.get("pytest_project")
    if proj is None:
        proj = ctx.tmp / "pytest-project"
        proj.mkdir(parents=True)
        (proj / "conftest.py").write_text(CONFTEST)
        (proj / "eval_bench.py").write_text(textwrap.dedent(EVAL_FILE).lstrip())
        ctx.shared["pytest_project"] = proj
    return proj  # type: ignore[no-any-return]


def _pytest_argv(store: Path, *, profile: Path | None = None) -> list[str]:
    # Third-party plugins of this venv (hypothesis, anyio...) are not loaded: they cost
    # seconds of noisy startup that has nothing to do with doteval.
    args = [
        "-p",
        "doteval._pytest_plugin",
        "-p",
        "no:cacheprovider",
        "eval_bench.py",
        "--experiment",
        "bench",
        "--store",
        str(store),
        "-q",
    ]
    if profile is not None:
        return [
            PYTHON,
            "-m",
            "pyinstrument",
            "-i",
            "0.001",
            "-r",
            "text",
            "-o",
            str(profile),
            "-m",
            "pytest",
            *args,
        ]
    return [PYTHON, "-m", "pytest", *args]


def pytest_run(
    ctx: Context, n: int, store: Path | None = None, *, profile: Path | None = None
) -> tuple[float, Path]:
    """Wall time of one pytest process recording ``n`` samples into a fresh store.

    The time measured inside it (session start to unconfigure) is left in
    ``ctx.shared["inner"]``.
    """
    proj = _pytest_project(ctx)
    store = store or ctx.fresh(f"store-pytest-{n}")
    timing = ctx.fresh("timing.txt")
    env = base_env(BENCH_N=str(n), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", BENCH_TIMING_FILE=str(timing))
    elapsed, done = run(_pytest_argv(store, profile=profile), cwd=proj, env=env)
    ctx.shared["inner"] = float(timing.read_text()) if timing.exists() else None
    timing.unlink(missing_ok=True)
    # doteval's summary line: "this run evaluated X, reused Y"
    found = re.search(r"evaluated (\d+), reused (\d+)", done.stdout)
    ctx.shared["counts"] = (int(found.group(1)), int(found.group(2))) if found else None
    if n and found is None:
        raise BenchError(f"no doteval summary in the pytest output:\n{done.stdout[-1500:]}")
    return elapsed, store


def pytest_startup(ctx: Context) -> float:
    """Best wall time of the same pytest command with N=0 items (startup, collection, an empty seal)."""
    if "startup" not in ctx.shared:
        cpus, inner = [], []

        def once() -> float:
            elapsed = pytest_run(ctx, 0)[0]
            cpus.append(LAST_CPU[0])
            inner.append(ctx.shared["inner"])
            return elapsed

        best, times = best_of(max(3, ctx.sizes.repeat), once)
        ctx.shared["startup"] = best
        ctx.shared["startup_times"] = times
        ctx.shared["startup_cpu"] = min(cpus)
        ctx.shared["startup_inner"] = min(inner)
    return ctx.shared["startup"]  # type: ignore[no-any-return]


# -- 1. recording ------------------------------------------------------------------------


def measure_record(ctx: Context) -> list[Row]:
    """N samples through pytest; the value is the time inside pytest minus that of N=0.

    Inside: from ``pytest_sessionstart`` (before collection, which builds the
    dataset, as the baseline does) to ``pytest_unconfigure`` (after doteval's
    seal), reported by a hook of the generated conftest. The wall time of the
    whole process minus that of N=0 is in the notes: the same quantity, noisier.
    """
    rows = []
    startup = pytest_startup(ctx)
    startup_inner = ctx.shared["startup_inner"]
    for n in ctx.sizes.record:
        repeat = ctx.sizes.repeats_for(n, 100_000)
        ctx.log(f"[record] pytest runs of N={n} (best of {repeat}), N=0 run {startup:.3f} s")
        stores: list[Path] = []
        cpus: list[float] = []
        inner: list[float] = []

        def once(
            n: int = n, stores: list[Path] = stores, cpus: list[float] = cpus, inner: list[float] = inner
        ) -> float:
            elapsed, store = pytest_run(ctx, n)
            stores.append(store)
            cpus.append(LAST_CPU[0])
            inner.append(ctx.shared["inner"])
            return elapsed

        best, times = best_of(repeat, once)
        if ctx.shared["counts"] != (n, 0):
            raise BenchError(f"the N={n} run evaluated/reused {ctx.shared['counts']}, expected ({n}, 0)")
        store = stores[-1]
        value = min(inner) - startup_inner
        cpu = min(cpus) - ctx.shared["startup_cpu"]
        store_bytes = allocated(store)
        resume_wall, _ = pytest_run(ctx, n, store)  # the same command again: nothing left to run
        resume_inner = ctx.shared["inner"]
        resume_counts = ctx.shared["counts"]
        for s in stores:
            shutil.rmtree(s, ignore_errors=True)
        base = child("record_baseline", n=n, path=str(ctx.fresh(f"baseline-{n}.jsonl")), repeat=repeat)
        base_best = min(base["times"])
        rows.append(
            Row(
                group="record",
                name=f"record N={n:,} via pytest",
                value=value,
                baseline=base_best,
                baseline_label="JSON lines, flush per line",
                target="≤ 3x",
                limit=3.0,
                notes=[
                    f"time inside pytest (sessionstart → unconfigure, best of {repeat}) {min(inner):.3f} s "
                    f"minus the same for N=0 {startup_inner:.3f} s",
                    f"whole-process wall instead: {best:.3f} s - {startup:.3f} s (N=0) = {best - startup:.3f} s"
                    f" = {(best - startup) / base_best:.2f}x",
                    f"CPU time instead: {cpu:.3f} s vs {min(base['cpu']):.3f} s = {cpu / min(base['cpu']):.2f}x",
                    f"the same command again (a resume: evaluated {resume_counts[0]}, reused "
                    f"{resume_counts[1]}): {resume_inner - startup_inner:.3f} s beyond N=0",
                ],
                details={
                    "n": n,
                    "method": "in-process: pytest_sessionstart → pytest_unconfigure, minus the same at N=0",
                    "inner_times": inner,
                    "startup_inner": startup_inner,
                    "pytest_wall_times": times,
                    "startup_seconds": startup,
                    "startup_times": ctx.shared["startup_times"],
                    "wall_minus_startup": best - startup,
                    "cpu_seconds": cpu,
                    "pytest_cpu": cpus,
                    "startup_cpu": ctx.shared["startup_cpu"],
                    "baseline_times": base["times"],
                    "baseline_cpu": base["cpu"],
                    "per_sample_seconds": value / n,
                    "store_allocated_bytes": store_bytes,
                    "jsonl_bytes": base["bytes"],
                    "pytest_resume_wall": resume_wall,
                    "pytest_resume_inner_minus_n0": resume_inner - startup_inner,
                    "pytest_resume_evaluated_reused": resume_counts,
                },
            )
        )
    if ctx.profile_dir is not None:
        n = max(ctx.sizes.record)
        out = ctx.profile_dir / f"record-{n}.txt"
        ctx.log(f"[record] profiling a pytest run of N={n} with pyinstrument -> {out}")
        pytest_run(ctx, n, profile=out)
        rows[-1].details["profile"] = str(out)
    return rows


# -- 2. resuming ---------------------------------------------------------------------------


def _build(
    ctx: Context, kind: str, params: dict[str, Any], runs: list[dict[str, Any]]
) -> tuple[Path, dict[str, Any], bool]:
    def build(path: Path) -> dict[str, Any]:
        ctx.log(
            f"[build] {kind} {params} ({len(runs)} runs through the library, cached under {ctx.cache.root})"
        )
        info = child("drive_runs", store=str(path), runs=runs, durable=False)
        info["allocated"] = allocated(path)
        info["files"] = file_count(path)
        return info

    return ctx.cache.get(kind, params, build)


def measure_resume(ctx: Context) -> list[Row]:
    rows = []
    for n in ctx.sizes.resume:
        store, info, reused = _build(
            ctx, "resume", {"n": n}, [{"experiment": "resume", "which": "arith", "kind": "arith", "n": n}]
        )
        repeat = ctx.sizes.repeats_for(n, 1_000_000)
        ctx.log(f"[resume] N={n} (best of {repeat}; store {'cached' if reused else 'built'})")
        runs = []
        for _ in range(repeat):
            copy = ctx.fresh(f"resume-{n}")
            copy_tree(store, copy)  # a resume appends a manifest and a ref record: keep the cache as built
            runs.append(child("resume", n=n, store=str(copy)))
            shutil.rmtree(copy, ignore_errors=True)
        profile = ""
        if ctx.profile_dir is not None and n == max(ctx.sizes.resume):
            profile = str(ctx.profile_dir / f"resume-{n}.txt")
            ctx.log(f"[resume] profiling one more resume of N={n} with pyinstrument -> {profile}")
            copy = ctx.fresh(f"resume-{n}")
            copy_tree(store, copy)
            child("resume", n=n, store=str(copy), profile=profile)
            shutil.rmtree(copy, ignore_errors=True)
        base = child("resume_baseline", n=n, repeat=repeat)
        seconds = [r["seconds"] for r in runs]
        rows.append(
            Row(
                group="resume",
                name=f"resume finished eval N={n:,}",
                value=min(seconds),
                baseline=min(base["times"]),
                baseline_label="encode + blake3 per item",
                target="≤ 3x",
                limit=3.0,
                notes=[
                    "ExperimentRun open → close in a fresh process (what the pytest plugin calls), dataset built before timing"
                ],
                details={"n": n, "times": seconds, "baseline_times": base["times"], "store_build": info},
            )
        )
        peak = max(r["rss"] for r in runs)
        big = n >= 1_000_000
        rows.append(
            Row(
                group="resume",
                name=f"resume N={n:,}: peak RSS",
                value=peak,
                unit="B",
                baseline=max(r["rss_after_items"] for r in runs),
                baseline_label="same process, dataset loaded",
                target="< 1 GiB" if big else "< 1 GiB (at N=1M)",
                check="abs" if big else "info",
                limit=GiB if big else None,
                notes=["resource.getrusage(RUSAGE_SELF).ru_maxrss in the child that resumed"],
                details={"rss": [r["rss"] for r in runs], "baseline_child_rss": base["rss"]},
            )
        )
        if profile:
            rows[-2].details["profile"] = profile
    return rows


# -- 3. disk --------------------------------------------------------------------------------


def _disk_store(ctx: Context, label: str, n: int) -> tuple[Path, dict[str, Any], bool]:
    which = "arith" if label == "short" else "chat"
    r = ctx.sizes.disk_runs
    runs = [
        {"experiment": f"disk-{label}", "which": which, "kind": which, "n": n, "samples": n * (k + 1) // r}
        for k in range(r)
    ]

    def build(path: Path) -> dict[str, Any]:
        import zstandard

        ctx.log(f"[build] disk store {label} N={n} in {r} runs, its JSON lines and their zstd -19")
        store = path / "store"
        info = child("drive_runs", store=str(store), runs=runs, durable=False)
        jsonl = path / "results.jsonl"
        info.update(child("export_jsonl", store=str(store), out=str(jsonl)))
        data = jsonl.read_bytes()
        info["jsonl_bytes"] = len(data)
        info["jsonl_allocated"] = allocated(jsonl)
        info["zstd19_bytes"] = len(zstandard.ZstdCompressor(level=19).compress(data))
        return info

    path, info, reused = ctx.cache.get(f"disk-{label}", {"n": n, "runs": r}, build)
    return path, info, reused


def measure_disk(ctx: Context) -> list[Row]:
    rows = []
    for label, n, after_limit in (("short", ctx.sizes.disk_short, 0.5), ("chat", ctx.sizes.disk_chat, 0.3)):
        path, info, _ = _disk_store(ctx, label, n)
        store = ctx.fresh(f"disk-{label}")
        copy_tree(path / "store", store)
        before = allocated(store)
        files_before = file_count(store)
        layout_before = breakdown(store)
        ctx.log(f"[disk] {label}: doteval gc --aggressive --prune now on {n} results")
        gc_seconds, done = run(
            [*doteval_cmd(), "gc", "--aggressive", "--prune", "now", "--json", "--store", str(store)]
        )
        gc_json = json.loads(done.stdout)
        after = allocated(store)
        layout_after = breakdown(store)
        objects_after = child("store_objects", store=str(store))
        jsonl, z19 = info["jsonl_bytes"], info["zstd19_bytes"]
        common = {
            "n": n,
            "runs": ctx.sizes.disk_runs,
            "jsonl_bytes_per_line": jsonl / info["lines"],
            "jsonl_bytes": jsonl,
            "zstd19_bytes": z19,
            "store_before": before,
            "store_after": after,
            "files_before": files_before,
            "files_after": file_count(store),
            "gc_seconds": gc_seconds,
            "gc": gc_json,
            "layout_before": layout_before,
            "layout_after": layout_after,
            "objects_after": objects_after,
        }
        avg = f"{jsonl / info['lines']:.0f} B/line"
        rows.append(
            Row(
                "disk",
                f"disk {label} ({avg}) before gc, N={n:,}",
                value=before,
                unit="B",
                baseline=jsonl,
                baseline_label="JSON lines",
                target="≤ 1.5x",
                limit=1.5,
                notes=[f"store recorded in {ctx.sizes.disk_runs} runs; allocated blocks (st_blocks*512)"],
                details=common,
            )
        )
        rows.append(
            Row(
                "disk",
                f"disk {label} after gc --aggressive",
                value=after,
                unit="B",
                baseline=jsonl,
                baseline_label="JSON lines",
                target=f"≤ {after_limit}x",
                limit=after_limit,
                notes=[
                    "after gc, stored: "
                    + ", ".join(
                        f"{kind} {v['objects']:,} = {v['stored'] / (1 << 20):.1f} MiB"
                        for kind, v in sorted(objects_after.items(), key=lambda kv: -kv[1]["stored"])
                        if v["stored"] >= 64 << 10
                    )
                ],
                details=common,
            )
        )
        rows.append(
            Row(
                "disk",
                f"disk {label} after gc vs zstd -19",
                value=after,
                unit="B",
                baseline=z19,
                baseline_label="zstd -19 of the JSON lines",
                target="≤ 2x",
                limit=2.0,
                details=common,
            )
        )
        shutil.rmtree(store, ignore_errors=True)
    return rows


# -- 4. list / show / log -----------------------------------------------------------------------


def _many_experiments(ctx: Context) -> tuple[Path, dict[str, Any], bool]:
    total, count = ctx.sizes.cli_results, ctx.sizes.cli_experiments
    per = total // count
    runs = []
    for e in range(count):
        for samples in (per // 2, None):  # two runs each: a history to log, two tables per view
            runs.append(
                {
                    "experiment": f"exp-{e:03d}",
                    "which": "arith",
                    "kind": "arith",
                    "n": per,
                    "offset": e * per,
                    "samples": samples,
                }
            )
    return _build(ctx, "many", {"results": total, "experiments": count}, runs)


def profile_cli(ctx: Context, name: str, args: list[str]) -> str | None:
    """With --profile: one more run of ``doteval ARGS`` under pyinstrument (not timed)."""
    if ctx.profile_dir is None:
        return None
    out = ctx.profile_dir / f"{name}.txt"
    run([PYTHON, "-m", "pyinstrument", "-i", "0.001", "-r", "text", "-o", str(out), "-m", "doteval", *args])
    return str(out)


def breakdown(store: Path) -> dict[str, dict[str, int]]:
    """Allocated bytes and files per kind: pack data, pack indexes, loose objects, refs, other."""
    out: dict[str, dict[str, int]] = {}
    for path in store.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(store).parts
        kind = (
            "packs/*.pack"
            if path.suffix == ".pack"
            else "packs/*.idx"
            if path.suffix == ".idx"
            else "objects (loose)"
            if rel[0] == "objects"
            else rel[0]
            if len(rel) > 1
            else "other"
        )
        entry = out.setdefault(kind, {"files": 0, "allocated": 0, "size": 0})
        st = path.stat()
        entry["files"] += 1
        entry["allocated"] += st.st_blocks * 512
        entry["size"] += st.st_size
    return out


def import_baseline(ctx: Context) -> tuple[float, list[float]]:
    if "import" not in ctx.shared:
        ctx.shared["import"] = time_command([PYTHON, "-c", "import doteval"], max(3, ctx.sizes.cli_repeat))
    return ctx.shared["import"]  # type: ignore[no-any-return]


def measure_cli(ctx: Context) -> list[Row]:
    store, info, _ = _many_experiments(ctx)
    base, base_times = import_baseline(ctx)
    name = f"exp-{ctx.sizes.cli_experiments // 2:03d}"
    total, count = ctx.sizes.cli_results, ctx.sizes.cli_experiments
    rows = []
    repeat = ctx.sizes.cli_repeat
    for label, args in (("list", ["list"]), ("show", ["show", name]), ("log", ["log"])):
        ctx.log(
            f"[cli] doteval {' '.join(args)} on {total:,} results in {count} experiments (best of {repeat})"
        )
        best, times = time_command([*doteval_cmd(), *args, "--store", str(store)], repeat)
        profile = profile_cli(ctx, f"cli-{label}", [*args, "--store", str(store)])
        rows.append(
            Row(
                "cli",
                f"doteval {label} ({total:,} results, {count} exps)",
                value=best,
                baseline=base,
                baseline_label='python -c "import doteval"',
                target="≤ 0.5 s",
                check="abs",
                limit=0.5,
                notes=[f"fresh process each, best of {repeat}"],
                details={
                    "times": times,
                    "baseline_times": base_times,
                    "args": args,
                    "store": info,
                    "profile": profile,
                },
            )
        )
    return rows


# -- 5. diff, gc, push ----------------------------------------------------------------------


def measure_diff(ctx: Context) -> list[Row]:
    n = ctx.sizes.diff
    store, info, _ = _build(
        ctx,
        "diff",
        {"n": n},
        [
            {"experiment": "diff-a", "which": "arith", "kind": "arith", "n": n},
            {"experiment": "diff-b", "which": "arith_v2", "kind": "arith", "n": n},
        ],
    )
    base, base_times = import_baseline(ctx)
    repeat = ctx.sizes.cli_repeat
    ctx.log(f"[diff] doteval diff of two {n:,}-sample experiments (best of {repeat})")
    best, times = time_command([*doteval_cmd(), "diff", "diff-a", "diff-b", "--store", str(store)], repeat)
    profile = profile_cli(ctx, "diff", ["diff", "diff-a", "diff-b", "--store", str(store)])
    return [
        Row(
            "diff",
            f"doteval diff, 2 x {n:,} samples",
            value=best,
            baseline=base,
            baseline_label='python -c "import doteval"',
            target="≤ 2 s" + ("" if n >= 100_000 else " (set for 100k)"),
            check="abs",
            limit=2.0,
            notes=[f"fresh process each, best of {repeat}"],
            details={"times": times, "baseline_times": base_times, "store": info, "profile": profile},
        )
    ]


def _object_count(store: Path) -> int:
    from doteval._objects import Store

    st = Store(store)
    return sum(p.count for p in st.objects.packs()) + sum(1 for _ in st.objects.iter_loose_ids())


def measure_gc(ctx: Context) -> list[Row]:
    cached, info, _ = _many_experiments(ctx)
    store = ctx.fresh("gc-store")
    # Results live in a few sample tables per run, so a store of 1M results holds few
    # objects: a pack of as many small objects that nothing names makes up the count.
    copy_seconds = copy_tree(cached, store)
    child("add_objects", store=str(store), n=ctx.sizes.cli_results)
    objects = _object_count(store)
    before = allocated(store)
    ctx.log(f"[gc] doteval gc --prune now on {objects:,} objects")
    seconds, done = run([*doteval_cmd(), "gc", "--prune", "now", "--json", "--store", str(store)])
    stats = json.loads(done.stdout)
    limit = 30.0 * objects / 1_000_000
    shutil.rmtree(store, ignore_errors=True)
    profile = None
    if ctx.profile_dir is not None:
        copy_tree(cached, store)
        child("add_objects", store=str(store), n=ctx.sizes.cli_results)
        profile = profile_cli(ctx, "gc", ["gc", "--prune", "now", "--store", str(store)])
        shutil.rmtree(store, ignore_errors=True)
    return [
        Row(
            "gc",
            f"doteval gc --prune now, {objects:,} objects ({ctx.sizes.cli_results:,} results)",
            value=seconds,
            baseline=copy_seconds,
            baseline_label="copying the store (shutil.copytree)",
            target=f"≤ 30 s per 1M objects (= {limit:.2f} s)",
            check="abs",
            limit=limit,
            notes=["one run on a fresh copy (gc changes the store)"],
            details={
                "objects": objects,
                "bytes_before": before,
                "bytes_after": stats.get("bytes_after"),
                "gc": stats,
                "store": info,
                "profile": profile,
            },
        )
    ]


def _push(store: Path, dest: Path) -> dict[str, Any]:
    seconds, done = run([*doteval_cmd(), "push", str(dest), "--json", "--store", str(store)])
    stats: dict[str, Any] = json.loads(done.stdout)
    stats["seconds"] = seconds
    return stats


def _immutable(snap: dict[str, int]) -> dict[str, int]:
    return {p: s for p, s in snap.items() if not p.startswith(("journals/", "locks/")) and "/.tmp-" not in p}


def measure_push(ctx: Context) -> list[Row]:
    cached, _info, _ = _many_experiments(ctx)
    src, dst = ctx.fresh("push-src"), ctx.fresh("push-dst")
    copy_tree(cached, src)
    ctx.log("[push] first push, one more run, push again")
    first = _push(src, dst)
    before = _immutable(snapshot(src))
    per = ctx.sizes.cli_results // ctx.sizes.cli_experiments
    extra = ctx.sizes.push_extra
    child(
        "drive_runs",
        store=str(src),
        runs=[{"experiment": "exp-000", "which": "arith", "kind": "arith", "n": per + extra, "offset": 0}],
    )
    after = _immutable(snapshot(src))
    new = {p: s for p, s in after.items() if p not in before}
    changed = sorted(p for p, s in after.items() if p in before and before[p] != s)
    second = _push(src, dst)
    third = _push(src, dst)
    new_bytes = sum(new.values())
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(dst, ignore_errors=True)
    details = {
        "first_push": first,
        "second_push": second,
        "third_push_nothing_new": third,
        "new_files": sorted(new),
        "new_bytes": new_bytes,
        "changed_existing_files": changed,
        "run": f"exp-000 resumed with {extra} more items",
    }
    method = second.get("method", "?")
    return [
        Row(
            "push",
            f"push after one more run ({method}): bytes",
            value=second["bytes"],
            unit="B",
            baseline=new_bytes,
            baseline_label="size of the files the run created",
            target="only the new files (≤ 1x)",
            limit=1.0,
            notes=[
                f"first push moved {first['files']} files, {first['bytes']:,} B; a third push moved {third['files']} files"
            ]
            + ([f"{len(changed)} existing files changed size: {', '.join(changed[:5])}"] if changed else []),
            details=details,
        ),
        Row(
            "push",
            f"push after one more run ({method}): files",
            value=second["files"],
            unit="files",
            baseline=len(new),
            baseline_label="files the run created",
            target="only the new files (≤ 1x)",
            limit=1.0,
            details=details,
        ),
    ]


# -- 6. the peer ----------------------------------------------------------------------------------


def measure_peer(ctx: Context) -> list[Row]:
    n = ctx.sizes.peer
    startup = pytest_startup(ctx)
    repeat = ctx.sizes.repeat
    ctx.log(f"[peer] doteval: pytest runs of N={n}, each next to one of N=0 ({repeat} pairs)")
    stores: list[Path] = []
    inner: list[float] = []
    zero: list[float] = []
    times: list[float] = []
    for _ in range(max(3, repeat)):
        # in pairs, so that a change of the machine's load hits both
        zero_store = pytest_run(ctx, 0)[1]
        zero.append(ctx.shared["inner"])
        shutil.rmtree(zero_store, ignore_errors=True)
        elapsed, store = pytest_run(ctx, n)
        stores.append(store)
        inner.append(ctx.shared["inner"])
        times.append(elapsed)
    best = min(times)
    differences = sorted(a - b for a, b in zip(inner, zero))
    dot_time = differences[len(differences) // 2] / n
    dot_bytes = allocated(stores[-1]) / n
    for s in stores:
        shutil.rmtree(s, ignore_errors=True)
    ctx.log(f"[peer] inspect_ai: mockllm/model on the same N={n}")
    try:
        peer = child("peer_inspect", n=n, log_dir=str(ctx.fresh("inspect-logs")))
    except BenchError as e:
        peer = {"skipped": f"inspect_ai run failed: {str(e).splitlines()[-1]}"}
    if "skipped" in peer:
        return [
            Row(
                "peer",
                f"peer time/sample, N={n:,}",
                value=dot_time,
                unit="s/sample",
                check="info",
                status="skipped",
                reason=peer["skipped"],
            ),
            Row(
                "peer",
                f"peer log bytes/sample, N={n:,}",
                value=dot_bytes,
                unit="B/sample",
                check="info",
                status="skipped",
                reason=peer["skipped"],
            ),
        ]
    label = f"inspect_ai {peer['version']} mockllm"
    details = {
        "doteval_pytest_wall": times,
        "doteval_inner": inner,
        "doteval_inner_n0": zero,
        "doteval_wall_minus_startup_per_sample": (best - startup) / n,
        "inspect": peer,
    }
    return [
        Row(
            "peer",
            f"peer time/sample vs inspect_ai, N={n:,}",
            value=dot_time,
            unit="s/sample",
            baseline=peer["seconds"] / n,
            baseline_label=label,
            target="info",
            check="info",
            notes=[
                "doteval: median over 3 pairs of (time inside pytest) - (the same at N=0); inspect_ai: its eval() call after a 5-sample warm-up"
            ],
            details=details,
        ),
        Row(
            "peer",
            f"peer log bytes/sample vs inspect_ai, N={n:,}",
            value=dot_bytes,
            unit="B/sample",
            baseline=peer["log_allocated"] / n,
            baseline_label=label + " .eval log",
            target="info",
            check="info",
            notes=[
                "doteval: store allocated blocks after the run (before gc); inspect_ai: its log file's blocks"
            ],
            details=details,
        ),
    ]


def measure_cache(ctx: Context) -> list[Row]:
    """A ``@cached`` call answered from the store, against a dict lookup of the same encoded key."""
    import time as _time

    from doteval._objects import Store
    from doteval._objects.encoding import encode
    from doteval._repository.run_journal import Head, RunRecorder
    from doteval._running.call_cache import RunCalls, cached, sample_scope

    n = 200 if ctx.sizes.mode == "smoke" else 5_000
    store = Store(ctx.fresh("cache-store"))
    store.create()

    @cached
    def generate(prompt: str, temperature: float = 0.0) -> str:
        return prompt.upper()

    def calls(name: str, index: dict[str, str] | None) -> RunCalls:
        recorder = RunRecorder(store, name, Head(None, None, None))
        recorder.start()  # a real journal: a hit appends its record, as in a run
        run = RunCalls(store, recorder)
        run._index = index  # as built from the manifests at a run's first lookup
        return run

    prompts = [f"question {i}: what is {i} + {i}?" for i in range(n)]
    first = calls("cache-first", {})
    for prompt in prompts:  # the first run makes every call
        with sample_scope(first):
            generate(prompt)
    ctx.log(f"[cache] {n:,} cache hits, entries read from the store")
    replay = calls("cache-replay", dict(first._fresh))
    started = _time.perf_counter()
    for prompt in prompts:
        with sample_scope(replay):
            generate(prompt)
    hit = (_time.perf_counter() - started) / n * 1e6
    started = _time.perf_counter()
    for prompt in prompts:  # the same calls again: entries already read
        with sample_scope(replay):
            generate(prompt)
    warm = (_time.perf_counter() - started) / n * 1e6
    assert replay.stats.cached == 2 * n and replay.stats.made == 0, replay.stats
    table = {encode({"prompt": p, "temperature": 0.0}): p.upper() for p in prompts}
    started = _time.perf_counter()
    for prompt in prompts:
        table.get(encode({"prompt": prompt, "temperature": 0.0}))
    lookup = (_time.perf_counter() - started) / n * 1e6
    for each in (first, replay):
        each.recorder.finish("completed")
    return [
        Row(
            "cache",
            f"cache hit per call, {n:,} calls",
            value=hit,
            baseline=lookup,
            unit="µs/call",
            baseline_label="dict lookup of the same encoded key",
            target="≤ 20 µs/call",
            check="abs",
            limit=20.0,
            notes=[
                "each hit: key (code fingerprint, args, occurrence), index, entry read from the store "
                f"and rebuilt, journal record; {warm:.1f} µs/call once the entries are in memory"
            ],
            details={"warm_us": warm},
        )
    ]
# -- 7. a rate-limited API --------------------------------------------------------------------------

# The stand-in API, in the pytest process: it serves CAPACITY calls at once, each in LATENCY
# seconds, and refuses the others at once with an SDK-like RateLimitError (status_code 429).
RATELIMIT_CAPACITY = 8
RATELIMIT_LATENCY = 0.02

RATELIMIT_CONFTEST = f"""
import asyncio
import json
import os
import threading
import time

import pytest

CAPACITY, LATENCY = {RATELIMIT_CAPACITY}, {RATELIMIT_LATENCY}


class RateLimitError(Exception):
    status_code = 429


class StandInAPI:
    def __init__(self):
        self.lock = threading.Lock()
        self.active = self.served = self.refused = 0
        self.first = self.last = self.most = None
        self.most_of = int(int(os.environ.get("BENCH_N", "0")) * 0.99)  # the first 99% of the samples

    def _enter(self):
        with self.lock:
            if self.first is None:
                self.first = time.perf_counter()
            if self.active >= CAPACITY:
                self.refused += 1
                raise RateLimitError("429 Too Many Requests")
            self.active += 1

    def _leave(self):
        with self.lock:
            self.active -= 1
            self.served += 1
            self.last = time.perf_counter()
            if self.served == self.most_of:
                self.most = self.last

    def generate(self, prompt):
        self._enter()
        try:
            time.sleep(LATENCY)
        finally:
            self._leave()
        return prompt

    async def agenerate(self, prompt):
        self._enter()
        try:
            await asyncio.sleep(LATENCY)
        finally:
            self._leave()
        return prompt


API = StandInAPI()


@pytest.fixture
def api():
    return API


def pytest_unconfigure(config):
    path = os.environ.get("BENCH_RATELIMIT_FILE")
    if path and API.first is not None:
        with open(path, "w") as f:
            most = None if API.most is None else API.most - API.first
            json.dump({{"served": API.served, "refused": API.refused, "seconds": API.last - API.first,
                       "seconds_99": most}}, f)
"""

RATELIMIT_EVAL = """
import os

from doteval import Result, foreach

DATA = [f"q{i}" for i in range(int(os.environ["BENCH_N"]))]


@foreach("prompt", DATA)
def eval_threads(prompt, api):
    return Result(api.generate(prompt) == prompt, prompt=prompt)


@foreach("prompt", DATA)
async def eval_async(prompt, api):
    return Result(await api.agenerate(prompt) == prompt, prompt=prompt)
"""


def measure_ratelimit(ctx: Context) -> list[Row]:
    """``--concurrency 64`` against a stand-in API that serves 8 calls at once in 20 ms each
    and refuses the others with a rate limit: samples per second against the ideal (8 / 20 ms),
    and refused calls per sample. Timed from the first call to the last answer (pytest's
    startup and doteval's seal are the other rows' business), one run per evaluation kind."""
    n = ctx.sizes.ratelimit
    proj = ctx.tmp / "ratelimit-project"
    proj.mkdir(parents=True, exist_ok=True)
    (proj / "conftest.py").write_text(RATELIMIT_CONFTEST)
    (proj / "eval_ratelimit.py").write_text(RATELIMIT_EVAL)
    ideal = RATELIMIT_CAPACITY / RATELIMIT_LATENCY  # samples per second
    rows = []
    for kind in ("threads", "async"):
        ctx.log(f"[ratelimit] {kind}: N={n} at --concurrency 64, the API serving 8 at once")
        stats = ctx.fresh(f"ratelimit-{kind}.json")
        store = ctx.fresh(f"store-ratelimit-{kind}")
        argv = [PYTHON, "-m", "pytest", "-p", "doteval._pytest_plugin", "-p", "no:cacheprovider"]
        argv += ["eval_ratelimit.py", "-k", f"eval_{kind}", "--experiment", "rl", "--store", str(store)]
        argv += ["--concurrency", "64", "-q"]
        env = base_env(BENCH_N=str(n), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", BENCH_RATELIMIT_FILE=str(stats))
        _, done = run(argv, cwd=proj, env=env, check=False)
        if f"evaluated {n}, reused 0" not in done.stdout or not stats.exists():
            raise BenchError(f"the rate-limited run failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
        measured = json.loads(stats.read_text())
        errors = re.search(r"(\d+) errors?[;,]", done.stdout)  # errored samples: none expected
        shutil.rmtree(store, ignore_errors=True)
        rate = measured["served"] / measured["seconds"]
        refused = measured["refused"] / n
        details = {
            **measured,
            "n": n,
            "ideal_per_second": ideal,
            "errors": int(errors.group(1)) if errors else 0,
        }
        notes = [
            f"{rate:.0f} samples/s = {rate / ideal:.0%} of the ideal {ideal:.0f}/s; {measured['refused']} refused "
            f"calls for {n} samples; {details['errors']} errored samples"
        ]
        if measured.get("seconds_99"):
            rate_99 = int(n * 0.99) / measured["seconds_99"]
            notes.append(
                f"the first 99% of the samples: {rate_99:.0f} samples/s = {rate_99 / ideal:.0%} of the ideal "
                "(the last ones wait out a retry backoff of about 1 s)"
            )
        rows.append(
            Row(
                "ratelimit",
                f"rate-limited API, {kind}: time/sample, N={n:,}",
                value=1 / rate,
                unit="s/sample",
                baseline=1 / ideal,
                baseline_label="ideal: 8 at once, 20 ms each",
                target="≥ 80% of the ideal rate (≤ 1.25x)",
                limit=1.25,
                notes=notes,
                details=details,
            )
        )
        rows.append(
            Row(
                "ratelimit",
                f"rate-limited API, {kind}: refused/sample, N={n:,}",
                value=refused,
                unit="refused/sample",
                baseline=measured["served"] / n,
                baseline_label="calls served per sample",
                target="< 0.1",
                check="abs",
                limit=0.1,
                details=details,
            )
        )
    return rows


MEASUREMENTS: dict[str, Callable[[Context], list[Row]]] = {
    "record": measure_record,
    "resume": measure_resume,
    "disk": measure_disk,
    "cli": measure_cli,
    "diff": measure_diff,
    "gc": measure_gc,
    "push": measure_push,
    "peer": measure_peer,
    "cache": measure_cache,
    "ratelimit": measure_ratelimit,
}
