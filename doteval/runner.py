"""Running evaluations of an experiment: resume, change detection, evaluation.

``ExperimentRun`` is one run of one experiment, from taking its lock to sealing
its journal. For each evaluation it computes the code fingerprint and params,
refuses to mix results of changed code or params with old ones, computes every
item's sample key, skips the keys the experiment already holds with a non-error
result, and evaluates the rest (sync, threads or async with a bound), retrying
transient errors. Every result is journaled as soon as it exists.

Progress goes to a ``RunListener``; this module never prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import inspect
import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from blake3 import blake3

from doteval.errors import ChangedEvaluationError, DotevalError, EncodingError, UsageError
from doteval.fingerprint import CodeFingerprint, ParamsFingerprint, code_fingerprint
from doteval.foreach import EvaluationSpec
from doteval.manifest import FLAG_OK, EvaluationRecord, Manifest, item_digest, load_entries
from doteval.objects import Store, check_name
from doteval.objects.encoding import decode, encode
from doteval.results import Result, to_result
from doteval.retry import RetryPolicy, acall_with_retries, call_with_retries
from doteval.runs import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    Head,
    RunRecorder,
    read_head,
    recover,
)

KEY_VERSION = 1
_KEY_PREFIX = b"t6:" + encode("doteval-sample") + encode(KEY_VERSION)


class RunListener:
    """Callbacks a run reports progress through; every method may be left as is."""

    def evaluation_started(self, name: str, total: int, reused: int, pending: int) -> None: ...

    def sample_done(self, name: str, ok: bool) -> None: ...

    def evaluation_finished(self, name: str, outcome: EvaluationOutcome) -> None: ...

    def retrying(self, name: str, attempt: int, error: BaseException, delay: float) -> None: ...

    def interrupted(self, in_flight: int) -> None: ...


@dataclass
class EvaluationOutcome:
    node_id: str
    total: int = 0
    reused: int = 0
    evaluated: int = 0
    errors: int = 0
    interrupted: bool = False


@dataclass
class RunOptions:
    experiment: str
    samples: int | None = None
    concurrency: int | None = None
    rerun_changed: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    command: list[str] = field(default_factory=list)
    dry_run: bool = False
    shard: tuple[int, int] | None = None  # (I, N): evaluate only the keys in shard I of N


@dataclass
class PreparedEvaluation:
    node_id: str
    spec: EvaluationSpec
    code: CodeFingerprint
    line: int = 1
    changed: list[str] = field(default_factory=list)  # what changed, when a dry run lets it pass


@dataclass
class Plan:
    """What running an evaluation would do (``--dry-run``), and why."""

    node_id: str
    total: int
    reuse: int
    new: int  # items never evaluated with this code and params (new or changed items)
    retry: int  # items whose result is an error
    dropped: int  # items the experiment holds that the dataset no longer has
    changed: list[str]  # code or params changes (everything is evaluated again)
    blocked: bool  # a change that stops the run unless --rerun-changed

    @property
    def evaluate(self) -> int:
        return self.new + self.retry

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluation": self.node_id,
            "total": self.total,
            "reuse": self.reuse,
            "evaluate": self.evaluate,
            "new": self.new,
            "retry": self.retry,
            "dropped": self.dropped,
            "changed": self.changed,
            "blocked": self.blocked,
        }


def sample_key(fingerprint: str, params_digest: str, item_bytes: bytes, occurrence: int) -> bytes:
    """blake3 of the canonical encoding of the key tuple (see store-format.md)."""
    h = blake3(_KEY_PREFIX)
    h.update(encode(fingerprint))
    h.update(encode(params_digest))
    h.update(item_bytes)
    h.update(b"i%d;" % occurrence)
    return h.digest()


def in_shard(key: bytes, shard: tuple[int, int]) -> bool:
    """Shard I of N (1-based) holds the keys whose first 8 bytes are I-1 modulo N."""
    return int.from_bytes(key[:8], "big") % shard[1] == shard[0] - 1


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes I/N, such as 1/4, not {text!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard {text}: I must be between 1 and N")
    return i, n


def normalize_item(item: Any, columns: tuple[str, ...], position: int) -> tuple[Any, ...]:
    if isinstance(item, dict):
        try:
            return tuple(item[c] for c in columns)
        except KeyError as e:
            raise UsageError(f"dataset item {position} has no key {e.args[0]!r} for @foreach") from None
    if isinstance(item, (tuple, list)) and (len(columns) > 1 or len(item) == 1):
        if len(item) != len(columns):
            raise UsageError(
                f"dataset item {position} has {len(item)} values for {len(columns)} "
                f"columns ({', '.join(columns)})"
            )
        return tuple(item)
    if len(columns) == 1:
        return (item,)
    raise UsageError(
        f"dataset item {position} is a {type(item).__name__}, expected a tuple of "
        f"{len(columns)} values ({', '.join(columns)})"
    )


def encode_item(item: tuple[Any, ...], columns: tuple[str, ...], position: int) -> bytes:
    try:
        return encode(item)
    except EncodingError as e:
        column = ""
        if e.path.startswith("["):
            index = int(e.path[1 : e.path.index("]")])
            column = f", column {columns[index]!r}" if index < len(columns) else ""
        raise EncodingError(
            f"dataset item {position}{column}: cannot encode a value of type {e.type_name!r}; "
            "dataset items must be plain data (str, numbers, lists, dicts, dataclasses)",
            type_name=e.type_name,
            path=e.path,
        ) from None


def code_diff(old_sources: dict[str, str], new_sources: dict[str, str], limit: int = 40) -> list[str]:
    def text(sources: dict[str, str]) -> list[str]:
        return [line for name in sorted(sources) for line in sources[name].splitlines()]

    lines = list(
        difflib.unified_diff(text(old_sources), text(new_sources), "before", "now", lineterm="", n=1)
    )
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else [])


def params_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append(f"{name}: {_short(old[name])} -> (gone)")
            continue
        # ``old`` was read back from the store: compare and show ``new`` in that same
        # form (a dataclass or __doteval_params__ object decodes to a dict with __type__).
        now = decode(encode(new[name]))
        if name not in old:
            out.append(f"{name}: (new) -> {_short(now)}")
        else:
            out.extend(_value_diff(name, old[name], now))
    return out


def _value_diff(path: str, old: Any, new: Any) -> list[str]:
    """One line per changed leaf, so a long config still shows the field that moved."""
    if encode(old) == encode(new):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new), key=repr):
            sub = f"{path}.{key}"
            if key not in new:
                lines.append(f"{sub}: {_short(old[key])} -> (gone)")
            elif key not in old:
                lines.append(f"{sub}: (new) -> {_short(new[key])}")
            else:
                lines.extend(_value_diff(sub, old[key], new[key]))
        if lines:
            return lines
    return [f"{path}: {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def generated_name() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S")


class ExperimentRun:
    """One run of an experiment. Use ``open()``, then evaluations, then ``close()``."""

    def __init__(self, store: Store, options: RunOptions, listener: RunListener | None = None) -> None:
        self.store = store
        self.options = options
        self.listener = listener or RunListener()
        self.name = check_name(options.experiment)
        self.head = Head(None, None, None)
        self.recorder: RunRecorder | None = None
        self.outcomes: list[EvaluationOutcome] = []
        self.stop_requested = threading.Event()
        self.failed = False
        self.manifest: Manifest | None = None
        self._lock = store.lock(self.name)
        self._index = itertools.count()
        self._occurrences: dict[bytes, int] = {}  # sample key -> occurrence, when not 0

    # -- lifecycle ----------------------------------------------------------

    def open(self) -> None:
        self.store.create()
        self._lock.acquire()
        try:
            from doteval.merge import settle_locked

            recover(self.store, self.name)
            settle_locked(self.store, self.name)
            self.head = read_head(self.store, self.name)
        except BaseException:
            self._lock.release()
            raise

    def start(self) -> None:
        """Start the journal; called once the checks have passed."""
        if self.recorder is None:
            shard = self.options.shard
            self.recorder = RunRecorder(
                self.store,
                self.name,
                self.head,
                self.options.command,
                self.options.rerun_changed,
                shard=f"{shard[0]}/{shard[1]}" if shard else "",
            )
            self.recorder.start()

    def close(self) -> Manifest | None:
        try:
            if self.recorder is not None:
                status = STATUS_COMPLETED
                if self.stop_requested.is_set():
                    status = STATUS_INTERRUPTED
                elif self.failed:
                    status = STATUS_FAILED
                self.manifest = self.recorder.finish(status)
                self.recorder = None
        finally:
            self._lock.release()
        return self.manifest

    @property
    def interrupted(self) -> bool:
        return self.stop_requested.is_set()

    # -- checks ---------------------------------------------------------------

    def prepare(self, node_id: str, spec: EvaluationSpec) -> PreparedEvaluation:
        """Fingerprint the code and refuse a change unless --rerun-changed."""
        code = code_fingerprint(spec.func, columns=spec.columns, options=spec.options)
        prepared = PreparedEvaluation(node_id, spec, code)
        old = self._previous(node_id)
        if old is not None:
            prepared.line = old.line
            if old.fingerprint != code.digest:
                if self.options.dry_run:
                    prepared.changed = ["code changed:", *code_diff(self._old_sources(old), code.sources)]
                elif not self.options.rerun_changed:
                    old_sources = self._old_sources(old)
                    raise self._changed(node_id, "code", code_diff(old_sources, code.sources))
                prepared.line = old.line + 1
        return prepared

    def check_params(self, prepared: PreparedEvaluation, params: ParamsFingerprint) -> None:
        old = self._previous(prepared.node_id)
        if old is None or old.fingerprint != prepared.code.digest or old.line != prepared.line:
            return
        if old.params_digest != params.digest:
            if self.options.dry_run:
                prepared.changed = ["params changed:", *params_diff(old.params, params.values)]
            elif not self.options.rerun_changed:
                raise self._changed(prepared.node_id, "params", params_diff(old.params, params.values))
            prepared.line = old.line + 1

    def plan(self, prepared: PreparedEvaluation, params: ParamsFingerprint) -> Plan:
        """Count what ``run_evaluation`` would reuse and evaluate; evaluates nothing."""
        self.check_params(prepared, params)
        _items, keys, complete = self._read_dataset(prepared.spec, prepared.code.digest, params.digest)
        if self.options.shard is not None:
            keys = [k for k in keys if in_shard(k, self.options.shard)]
            complete = False
        old = self._previous(prepared.node_id)
        table = None
        if old is not None and old.fingerprint == prepared.code.digest and old.line == prepared.line:
            table = load_entries(self.store, old.entries)
        index = table.index() if table is not None else {}
        reuse = retry = 0
        for key in keys:
            i = index.get(key)
            if i is not None and table is not None:
                if table.flags[i] == FLAG_OK:
                    reuse += 1
                else:
                    retry += 1
        current = set(keys)
        dropped = sum(1 for k in index if k not in current) if complete else 0
        return Plan(
            node_id=prepared.node_id,
            total=len(keys),
            reuse=reuse,
            new=len(keys) - reuse - retry,
            retry=retry,
            dropped=dropped,
            changed=list(prepared.changed),
            blocked=bool(prepared.changed) and not self.options.rerun_changed,
        )

    def _previous(self, node_id: str) -> EvaluationRecord | None:
        return self.head.manifest.evaluation(node_id) if self.head.manifest else None

    def _old_sources(self, old: EvaluationRecord) -> dict[str, str]:
        if old.code is None:
            return {}
        try:
            return dict(self.store.objects.get(old.code).get("sources", {}))
        except DotevalError:
            return {}

    def _changed(self, node_id: str, what: str, details: list[str]) -> ChangedEvaluationError:
        command = " ".join(self.options.command) or "pytest ..."
        new_name = f"{self.name}_v2"
        replaced = command.replace(f"--experiment {self.name}", f"--experiment {new_name}")
        if replaced == command:
            replaced = f"{command} --experiment {new_name}"
        body = "\n".join("    " + line for line in details) or "    (no readable diff)"
        return ChangedEvaluationError(
            f"{node_id}: the {what} changed since experiment {self.name!r} last ran; "
            f"nothing was evaluated.\n{body}\n"
            f"  Keep old and new results apart, either:\n"
            f"    a new experiment:             {replaced}\n"
            f"    a new line in this one:       {command} --rerun-changed",
            experiment=self.name,
        )

    # -- evaluating -----------------------------------------------------------

    def run_evaluation(
        self, prepared: PreparedEvaluation, fixtures: dict[str, Any], params: ParamsFingerprint
    ) -> EvaluationOutcome:
        self.check_params(prepared, params)
        self.start()
        assert self.recorder is not None
        spec = prepared.spec
        index = next(self._index)
        outcome = EvaluationOutcome(prepared.node_id)
        self.outcomes.append(outcome)
        code_id = self.store.objects.put({"type": "code", "v": 1, "sources": prepared.code.sources})
        self.recorder.begin_evaluation(
            index,
            {
                "node_id": prepared.node_id,
                "fingerprint": prepared.code.digest,
                "params_digest": params.digest,
                "params": params.values,
                "unfingerprintable": list(params.unfingerprintable),
                "columns": list(spec.columns),
                "code": code_id,
                "line": prepared.line,
            },
        )
        items, keys, complete = self._read_dataset(spec, prepared.code.digest, params.digest)
        dataset_total = None
        if self.options.shard is not None:
            dataset_total = len(keys)
            picked = [(k, item) for k, item in zip(keys, items) if in_shard(k, self.options.shard)]
            keys, items = [k for k, _ in picked], [item for _, item in picked]
            complete = False
        self.recorder.record_keys(index, b"".join(keys), complete, dataset_total)
        old = self._previous(prepared.node_id)
        done: set[bytes] = set()
        if old is not None and old.fingerprint == prepared.code.digest and old.line == prepared.line:
            done = load_entries(self.store, old.entries).ok_keys()
        pending = [(k, item) for k, item in zip(keys, items) if k not in done]
        outcome.total = len(keys)
        outcome.reused = len(keys) - len(pending)
        self.listener.evaluation_started(prepared.node_id, len(keys), outcome.reused, len(pending))
        status = STATUS_COMPLETED
        try:
            if spec.is_async:
                self._run_async(index, prepared, fixtures, pending, outcome)
            elif self._concurrency(spec) > 1:
                self._run_threads(index, prepared, fixtures, pending, outcome)
            else:
                self._run_sync(index, prepared, fixtures, pending, outcome)
            if self.interrupted:
                status = STATUS_INTERRUPTED
        except BaseException:
            status = STATUS_INTERRUPTED
            self.failed = True
            raise
        finally:
            outcome.interrupted = status == STATUS_INTERRUPTED
            self.recorder.end_evaluation(index, status)
            self.listener.evaluation_finished(prepared.node_id, outcome)
        return outcome

    def _concurrency(self, spec: EvaluationSpec) -> int:
        if self.options.concurrency:
            return max(1, self.options.concurrency)
        return 16 if spec.is_async else 1

    def _read_dataset(
        self, spec: EvaluationSpec, fingerprint: str, params_digest: str
    ) -> tuple[list[tuple[Any, ...]], list[bytes], bool]:
        limit = self.options.samples
        iterator = iter(spec.dataset)
        source = itertools.islice(iterator, limit) if limit is not None else iterator
        items, keys = [], []
        seen: dict[bytes, int] = {}
        prefix = blake3(_KEY_PREFIX)
        prefix.update(encode(fingerprint))
        prefix.update(encode(params_digest))
        for position, raw in enumerate(source):
            item = normalize_item(raw, spec.columns, position)
            item_bytes = encode_item(item, spec.columns, position)
            occurrence = seen.get(item_bytes, 0)
            seen[item_bytes] = occurrence + 1
            h = prefix.copy()
            h.update(item_bytes)
            h.update(b"i%d;" % occurrence)
            key = h.digest()
            if occurrence:
                self._occurrences[key] = occurrence
            items.append(item)
            keys.append(key)
        complete = True
        if limit is not None and len(items) == limit:
            complete = next(iterator, _END) is _END
        return items, keys, complete

    def _record(
        self,
        index: int,
        prepared: PreparedEvaluation,
        key: bytes,
        item: tuple[Any, ...],
        result: Result,
        started: float,
        outcome: EvaluationOutcome,
    ) -> None:
        assert self.recorder is not None
        record = result.to_record(check=False)
        record["type"], record["v"], record["item"] = "result", 1, item
        record["duration"] = round(time.time() - started, 6)
        try:
            raw = encode(record)
        except EncodingError:
            try:
                result.to_record()  # names the field that cannot be stored
                raise
            except EncodingError as e:
                raise EncodingError(f"{prepared.node_id}: the result cannot be stored: {e}") from None
        item_id = item_digest(encode(item), self._occurrences.get(key, 0))
        scores: dict[str, Any] = {}
        metrics: dict[str, list[str]] = {}
        if result.ok:
            for s in result.scores:
                scores[s.name] = s.value
                if s.metrics:
                    metrics[s.name] = s.metric_names
        self.recorder.record_result(index, key, result.ok, raw, item_id, (scores, metrics))
        outcome.evaluated += 1
        if not result.ok:
            outcome.errors += 1
        self.listener.sample_done(prepared.node_id, result.ok)

    def _call(self, prepared: PreparedEvaluation, fixtures: dict[str, Any], item: tuple[Any, ...]) -> Result:
        kwargs = dict(fixtures)
        kwargs.update(zip(prepared.spec.columns, item))
        try:
            value = call_with_retries(
                lambda: prepared.spec.func(**kwargs),
                self.options.retry,
                on_retry=lambda attempt, exc, delay: self.listener.retrying(
                    prepared.node_id, attempt, exc, delay
                ),
            )
            return to_result(value)
        except (KeyboardInterrupt, SystemExit, DotevalError):
            raise
        except Exception as exc:  # one sample's error never ends the run
            return Result.from_exception(exc)

    def _run_sync(
        self,
        index: int,
        prepared: PreparedEvaluation,
        fixtures: dict[str, Any],
        pending: list[tuple[bytes, tuple[Any, ...]]],
        outcome: EvaluationOutcome,
    ) -> None:
        with self._interrupt_guard(lambda: 1):
            for key, item in pending:
                if self.interrupted:
                    break
                started = time.time()
                result = self._call(prepared, fixtures, item)
                self._record(index, prepared, key, item, result, started, outcome)

    def _run_threads(
        self,
        index: int,
        prepared: PreparedEvaluation,
        fixtures: dict[str, Any],
        pending: list[tuple[bytes, tuple[Any, ...]]],
        outcome: EvaluationOutcome,
    ) -> None:
        limit = self._concurrency(prepared.spec)
        work: Iterator[tuple[bytes, tuple[Any, ...]]] = iter(pending)
        in_flight: dict[Future[Result], tuple[bytes, tuple[Any, ...], float]] = {}
        executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="doteval")
        try:
            with self._interrupt_guard(lambda: len(in_flight)):
                while True:
                    while not self.interrupted and len(in_flight) < limit:
                        nxt = next(work, None)
                        if nxt is None:
                            break
                        fut = executor.submit(self._call, prepared, fixtures, nxt[1])
                        in_flight[fut] = (nxt[0], nxt[1], time.time())
                    if not in_flight:
                        break
                    finished, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        key, item, started = in_flight.pop(fut)
                        self._record(index, prepared, key, item, fut.result(), started, outcome)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def _run_async(
        self,
        index: int,
        prepared: PreparedEvaluation,
        fixtures: dict[str, Any],
        pending: list[tuple[bytes, tuple[Any, ...]]],
        outcome: EvaluationOutcome,
    ) -> None:
        limit = self._concurrency(prepared.spec)
        work = iter(pending)
        in_flight = [0]

        async def call(item: tuple[Any, ...]) -> Result:
            kwargs = dict(fixtures)
            kwargs.update(zip(prepared.spec.columns, item))
            try:
                value = await acall_with_retries(
                    lambda: prepared.spec.func(**kwargs),
                    self.options.retry,
                    on_retry=lambda attempt, exc, delay: self.listener.retrying(
                        prepared.node_id, attempt, exc, delay
                    ),
                )
                return to_result(value)
            except (KeyboardInterrupt, SystemExit, DotevalError, asyncio.CancelledError):
                raise
            except Exception as exc:
                return Result.from_exception(exc)

        async def worker() -> None:
            while not self.interrupted:
                nxt = next(work, None)
                if nxt is None:
                    return
                key, item = nxt
                started = time.time()
                in_flight[0] += 1
                try:
                    result = await call(item)
                finally:
                    in_flight[0] -= 1
                self._record(index, prepared, key, item, result, started, outcome)

        async def main() -> None:
            await asyncio.gather(*(worker() for _ in range(min(limit, max(len(pending), 1)))))

        with self._interrupt_guard(lambda: in_flight[0]):
            asyncio.run(main())

    @contextlib.contextmanager
    def _interrupt_guard(self, in_flight: Callable[[], int]) -> Iterator[None]:
        """First Ctrl+C: finish the samples in flight, start no new one. Second: stop now."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.stop_requested.is_set():
                raise KeyboardInterrupt
            self.stop_requested.set()
            self.listener.interrupted(in_flight())

        previous_int = signal.signal(signal.SIGINT, handler)
        previous_term = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)


_END = object()


def evaluate_in_memory(spec: EvaluationSpec, fixtures: dict[str, Any]) -> list[Result]:
    """Evaluate every item without a store (a direct call of an evaluation)."""
    results = []
    for position, raw in enumerate(spec.dataset):
        item = normalize_item(raw, spec.columns, position)
        kwargs = dict(fixtures)
        kwargs.update(zip(spec.columns, item))
        try:
            value = spec.func(**kwargs)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            results.append(to_result(value))
        except Exception as exc:
            results.append(Result.from_exception(exc))
    return results


async def _await(awaitable: Any) -> Any:
    return await awaitable
