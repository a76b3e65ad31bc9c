"""Work the suite runs in a fresh interpreter: ``python -m bench.child TASK JSON``.

Each task prints one ``BENCH-RESULT {json}`` line. A fresh process per task
keeps peak RSS and caches of one measurement out of the others.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULT_TAG


def _rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _items(kind: str, n: int, offset: int = 0) -> list[Any]:
    from bench.data import arithmetic_items, chat_items

    return arithmetic_items(n, offset) if kind == "arith" else chat_items(n, offset)


# -- measurement 1: the JSON-lines baseline of recording ------------------------------


def record_baseline(n: int, path: str, repeat: int) -> dict[str, Any]:
    """The loop a run replaces: call the model, score, build the result dict, one JSON line + flush."""
    from bench.data import MODEL_SOURCE, arithmetic_items
    from doteval.evaluators import exact_match

    namespace: dict[str, Any] = {}
    exec(MODEL_SOURCE, namespace)
    model = namespace["InstantModel"]()
    times, cpu = [], []
    for _ in range(repeat):
        Path(path).unlink(missing_ok=True)
        started, cpu_started = time.perf_counter(), time.process_time()
        items = arithmetic_items(n)
        with open(path, "w") as f:
            for prompt, expected in items:
                t0 = time.time()
                response = model.generate(prompt)
                score = exact_match(response, expected)
                record = {
                    "scores": [{"name": score.name, "value": score.value, "metrics": score.metric_names}],
                    "prompt": prompt,
                    "response": response,
                    "error": None,
                    "metadata": {},
                    "type": "result",
                    "v": 1,
                    "item": [prompt, expected],
                    "duration": round(time.time() - t0, 6),
                }
                f.write(json.dumps(record) + "\n")
                f.flush()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return {"times": times, "cpu": cpu, "bytes": os.path.getsize(path)}


# -- measurement 2: resume and its baseline ------------------------------------------


def resume(n: int, store: str, profile: str = "") -> dict[str, Any]:
    """Re-run a finished evaluation of ``n`` items: everything is reused, nothing evaluated."""
    from bench.workloads import drive

    items = _items("arith", n)
    rss_items = _rss()
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    started = time.perf_counter()
    outcome = drive(store, "resume", "arith", items)
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        _write_profile(profiler, profile)
    if outcome.evaluated or outcome.reused != n:
        raise SystemExit(f"resume evaluated {outcome.evaluated} and reused {outcome.reused} of {n}")
    return {"seconds": elapsed, "rss": _rss(), "rss_after_items": rss_items, "reused": outcome.reused}


def resume_baseline(n: int, repeat: int) -> dict[str, Any]:
    """Encoding and hashing every item: the least a resume that checks every item must do."""
    from blake3 import blake3

    from doteval._objects.encoding import encode

    items = _items("arith", n)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        keys = [blake3(encode(item)).digest() for item in items]
        times.append(time.perf_counter() - started)
        del keys
    return {"times": times, "rss": _rss()}


def _write_profile(profiler: Any, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    Path(path).with_suffix(".html").write_text(profiler.output_html())


# -- building stores through the library ------------------------------------------------


def drive_runs(store: str, runs: list[dict[str, Any]], durable: bool = True) -> dict[str, Any]:
    """Run each {experiment, which, kind, n, offset, samples} in order into ``store``."""
    from bench.workloads import drive
    from doteval._objects import Store

    st = Store(Path(store), durable=durable)
    evaluated = 0
    started = time.perf_counter()
    cache: dict[tuple[str, int, int], list[Any]] = {}
    for r in runs:
        key = (r["kind"], r["n"], r.get("offset", 0))
        if key not in cache:
            cache.clear()
            cache[key] = _items(*key)
        outcome = drive(st, r["experiment"], r["which"], cache[key], samples=r.get("samples"))
        evaluated += outcome.evaluated
    return {"evaluated": evaluated, "seconds": time.perf_counter() - started, "rss": _rss()}


def export_jsonl(store: str, out: str) -> dict[str, Any]:
    """Every result of every experiment's current view as one compact JSON line."""
    from doteval._objects import Store
    from doteval._repository.experiments import iter_samples, list_experiments

    st = Store(Path(store))
    lines = 0
    with open(out, "w", encoding="utf-8") as f:
        for info in list_experiments(st):
            assert info.manifest is not None
            for ev in info.manifest.evaluations:
                for sample in iter_samples(st, ev):
                    record = {k: v for k, v in sample.record.items() if k not in ("type", "v")}
                    f.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
                    lines += 1
    return {"lines": lines, "bytes": os.path.getsize(out)}


def store_objects(store: str) -> dict[str, Any]:
    """Stored bytes per kind of packed object (samples, details, entries, manifest...) and of pack indexes."""
    from doteval._objects import Store
    from doteval._objects.encoding import decode

    st = Store(Path(store))
    kinds: dict[str, dict[str, int]] = {}
    for pack in st.objects.packs():
        for pos in range(pack.count):
            entry = pack.entry(pos)
            raw = st.objects.decompress(
                entry.codec,
                entry.raw_len,
                entry.payload,
                where=str(pack.pack_path),
                dictionary=entry.dictionary,
            )
            value = decode(raw)
            kind = str(value.get("type", "?")) if isinstance(value, dict) else "?"
            k = kinds.setdefault(kind, {"objects": 0, "stored": 0, "raw": 0})
            k["objects"] += 1
            k["stored"] += len(entry.payload) + 9  # + the entry header
            k["raw"] += entry.raw_len
    k = kinds.setdefault("pack index", {"objects": 0, "stored": 0, "raw": 0})
    for pack in st.objects.packs():
        k["objects"] += pack.count
        k["stored"] += pack.idx_path.stat().st_size
    return kinds


def add_objects(store: str, n: int) -> dict[str, Any]:
    """One pack of ``n`` small objects no experiment names (what deleted experiments or a
    call cache would leave): the objects a gc has to walk and drop."""
    from doteval._objects import Store

    st = Store(Path(store))
    raws = [b"d3:s1:ii%d;s4:types4:junks4:datas16:%016d" % (i, i) for i in range(n)]
    st.objects.write_pack(raws)
    return {"objects": n}


# -- measurement 6: the peer ------------------------------------------------------------


def peer_inspect(n: int, log_dir: str, warmup: int = 5) -> dict[str, Any]:
    """The same arithmetic samples through inspect_ai with its mockllm model, offline."""
    try:
        import inspect_ai
        from inspect_ai import Task
        from inspect_ai import eval as inspect_eval
        from inspect_ai.dataset import MemoryDataset, Sample
        from inspect_ai.model import ModelOutput, ModelUsage, get_model
        from inspect_ai.scorer import match
        from inspect_ai.solver import generate
    except Exception as e:  # not installed, or broken: the row says so
        return {"skipped": f"inspect_ai not importable ({type(e).__name__}: {e})"}

    from bench.data import arithmetic_answer, arithmetic_items

    def outputs(messages: Any, tools: Any, tool_choice: Any, config: Any) -> Any:
        # usage filled in: the mock would otherwise count tokens with tiktoken,
        # which downloads a vocabulary (no network here)
        output = ModelOutput.from_content(model="mockllm", content=arithmetic_answer(messages[-1].text))
        output.usage = ModelUsage(input_tokens=12, output_tokens=2, total_tokens=14)
        return output

    def one(items: list[tuple[str, str]], where: str) -> tuple[float, Any]:
        task = Task(
            dataset=MemoryDataset([Sample(input=q, target=a) for q, a in items]),
            solver=generate(),
            scorer=match(numeric=True),
        )
        model = get_model("mockllm/model", custom_outputs=outputs)
        started = time.perf_counter()
        logs = inspect_eval(task, model=model, log_dir=where, display="none")
        elapsed = time.perf_counter() - started
        if logs[0].status != "success":
            raise SystemExit(f"inspect_ai eval ended {logs[0].status}: {logs[0].error}")
        return elapsed, logs[0]

    warm_dir = str(Path(log_dir) / "warmup")
    if warmup:
        one(arithmetic_items(warmup), warm_dir)
    items = arithmetic_items(n)
    elapsed, log = one(items, str(Path(log_dir) / "run"))
    files = [p for p in (Path(log_dir) / "run").rglob("*") if p.is_file()]
    return {
        "seconds": elapsed,
        "version": getattr(inspect_ai, "__version__", "?"),
        "log_files": [p.name for p in files],
        "log_bytes": sum(p.stat().st_size for p in files),
        "log_allocated": sum(p.stat().st_blocks * 512 for p in files),
        "rss": _rss(),
        "samples": len(log.samples or []) if hasattr(log, "samples") else None,
    }


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "record_baseline": record_baseline,
    "resume": resume,
    "resume_baseline": resume_baseline,
    "drive_runs": drive_runs,
    "export_jsonl": export_jsonl,
    "store_objects": store_objects,
    "add_objects": add_objects,
    "peer_inspect": peer_inspect,
}


def main() -> None:
    task, args = sys.argv[1], json.loads(sys.argv[2])
    result = TASKS[task](**args)
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
