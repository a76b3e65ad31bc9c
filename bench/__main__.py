"""``python -m bench`` (full) or ``python -m bench --quick``: see bench/README.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import BENCH, Cache, Row
from bench.measures import MEASUREMENTS, SIZES, Context


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.0f} B"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "s/sample":
        return f"{value * 1000:.3f} ms/sample"
    if unit == "B":
        return _human_bytes(value)
    if unit == "B/sample":
        return f"{value:,.0f} B/sample"
    if unit == "files":
        return f"{value:,.0f} files"
    return f"{value:g} {unit}"


def holds_text(row: Row) -> str:
    if row.status == "skipped":
        return f"skipped: {row.reason}"
    if row.status == "error":
        return f"error: {row.reason.splitlines()[0] if row.reason else '?'}"
    h = row.holds
    return "info" if h is None else ("yes" if h else "NO")


def table(rows: list[Row]) -> str:
    header = ["measurement", "value", "baseline", "ratio", "target", "holds"]
    lines = [
        [
            r.name,
            fmt(r.value, r.unit),
            fmt(r.baseline, r.unit)
            + (f" ({r.baseline_label})" if r.baseline_label and r.baseline is not None else ""),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
            r.target or "-",
            holds_text(r),
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header) - 1)]
    out = []
    for cells in [header, ["-" * w for w in widths] + ["-----"], *lines]:
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1])
    return "\n".join(line.rstrip() for line in out)


def machine() -> dict[str, Any]:
    from doteval import __version__

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "doteval": __version__,
    }
    try:
        from doteval._repository.run_journal import git_commit

        info["git_commit"] = git_commit(BENCH.parent)
    except Exception:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="doteval's benchmark suite (targets: DESIGN.md)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="short pass (under ~2 minutes with a warm cache)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, every code path: for the test suite (numbers meaningless)",
    )
    parser.add_argument(
        "--only", metavar="NAMES", help=f"comma-separated subset of: {','.join(MEASUREMENTS)}"
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results here")
    parser.add_argument("--no-latest", action="store_true", help="do not write bench/results/latest.json")
    parser.add_argument(
        "--cache-dir", type=Path, default=BENCH / ".cache", help="generated stores (default bench/.cache)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument profiles of record and resume into bench/results/profiles/",
    )
    args = parser.parse_args(argv)

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    names = list(MEASUREMENTS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in MEASUREMENTS]
        if unknown:
            parser.error(
                f"unknown measurement(s) {', '.join(unknown)}; choose from {', '.join(MEASUREMENTS)}"
            )

    if args.profile:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            parser.error("--profile needs pyinstrument: pip install -e '.[bench]'")
    tmp = Path(tempfile.mkdtemp(prefix="doteval-bench-"))
    profile_dir = BENCH / "results" / "profiles" if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(sizes=SIZES[mode], cache=Cache(args.cache_dir), tmp=tmp, profile_dir=profile_dir)
    started = time.perf_counter()
    rows: list[Row] = []
    timings: dict[str, float] = {}
    try:
        for name in names:
            t0 = time.perf_counter()
            try:
                rows.extend(MEASUREMENTS[name](ctx))
            except Exception as e:
                ctx.log(f"[{name}] FAILED:\n{traceback.format_exc()}")
                rows.append(Row(group=name, name=name, status="error", reason=f"{type(e).__name__}: {e}"))
            timings[name] = round(time.perf_counter() - t0, 3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started

    document = {
        "mode": mode,
        "measurements": names,
        "seconds": round(total, 3),
        "seconds_by_measurement": timings,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "rows": [r.to_json() for r in rows],
    }
    text = json.dumps(document, indent=2, default=str)
    outputs = [] if args.no_latest else [BENCH / "results" / "latest.json"]
    if args.json:
        outputs.append(args.json)
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")

    info = machine()
    print(f"\ndoteval bench ({mode}), {total:.0f} s, {info['cpus']} CPUs, Python {info['python']}")
    print(table(rows))
    notes = [f"  {r.name}: {n}" for r in rows for n in r.notes]
    if notes:
        print("\nNotes:")
        print("\n".join(notes))
    if outputs:
        print("\nJSON: " + ", ".join(str(p) for p in outputs))
    return 1 if any(r.status == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
