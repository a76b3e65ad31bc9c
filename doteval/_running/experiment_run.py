"""Running evaluations of an experiment: resume, change detection, evaluation.

``ExperimentRun`` is one run of one experiment, from taking its lock to sealing
its journal. For each evaluation it computes the code fingerprint and params,
refuses to mix results of changed code or params with old ones, computes every
item's canonical encoding, skips the items (with their occurrence among equal
items: the input of the sample key) the experiment already holds with a
non-error result, and evaluates the rest (sync, threads or async with a bound), retrying
transient errors. Every result is journaled as soon as it exists.

Progress goes to a ``RunListener``; this module never prints.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Sized
from dataclasses import dataclass, field, replace
from typing import Any

from doteval._objects import Store
from doteval._objects.encoding import MAX_INT_DIGITS, encode
from doteval._repository.changes import explain_code_change, params_diff
from doteval._repository.experiments import unused_name
from doteval._repository.manifest import EvaluationRecord, Manifest
from doteval._repository.repository import Repository, Transaction
from doteval._repository.results import Result
from doteval._repository.reuse import Earlier, find_earlier, history
from doteval._repository.run_journal import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    Head,
    RunRecorder,
)
from doteval._repository.sample_tables import (
    FLAG_ERROR,
    FLAG_OK,
    KEY_VERSION,
    SampleTable,
    View,
    key_prefix,
    load_view,
    sample_key,
    token,
)
from doteval._running import settings
from doteval._running.call_cache import RunCalls
from doteval._running.execution import Execution, execute
from doteval._running.fingerprint import CodeFingerprint, ParamsFingerprint, code_fingerprint
from doteval._running.retries import RetryPolicy
from doteval._running.spec import EvaluationSpec, normalize_item
from doteval.errors import ChangedEvaluationError, DotevalError, DotevalWarning, EncodingError, UsageError

__all__ = ["KEY_VERSION", "ExperimentRun", "Retrying", "RunOptions", "key_prefix", "sample_key"]


class RunListener:
    """Callbacks a run reports progress through; every method may be left as is."""

    def evaluation_started(self, name: str, total: int | None, reused: int, pending: int) -> None:
        """``total`` is None when the dataset's size is unknown (a generator cut by --samples)."""

    def sample_done(self, name: str, ok: bool) -> None: ...

    def evaluation_finished(self, name: str, outcome: EvaluationOutcome) -> None: ...

    def retrying(self, name: str, retry: Retrying) -> None: ...

    def interrupted(self, in_flight: int) -> None: ...

    def window_changed(self, name: str, window: int, ceiling: int) -> None:
        """The samples calling at once may now be ``window`` (rate limits shrink it, successes
        grow it back to ``ceiling``, the concurrency)."""


@dataclass(frozen=True)
class Retrying:
    """A sample's attempt failed with a transient error; the next one starts in ``delay`` s."""

    sample: str  # its key prefix (what `doteval show --sample` takes) and item
    attempt: int  # the attempt that failed, counted from 1
    attempts: int  # at most this many
    error: BaseException
    delay: float


@dataclass
class EvaluationOutcome:
    node_id: str
    total: int = 0
    reused: int = 0  # results the head's view held already (resume)
    evaluated: int = 0
    errors: int = 0
    interrupted: bool = False
    earlier: int = 0  # results reused from earlier lines of the experiment
    imported: int = 0  # results reused from another experiment (--reuse-from)
    reuse_from: str | None = None  # that experiment


@dataclass
class RunOptions:
    experiment: str
    samples: int | None = None
    concurrency: int | None = None
    rerun_changed: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_retries: int | None = None  # given on the command line: wins over @foreach(max_retries=)
    command: list[str] = field(default_factory=list)
    dry_run: bool = False
    shard: tuple[int, int] | None = None  # (I, N): evaluate only the keys in shard I of N
    timeout: float | None = None  # seconds one sample may take; @foreach(timeout=) wins
    cache: str = "use"  # the call cache: "use", "refresh" (--no-cache), "replay" (--cache-only)
    reuse_from: str | None = None  # another experiment whose results are reused by exact key

    def __post_init__(self) -> None:
        self.experiment = settings.experiment_name(self.experiment)
        if self.reuse_from is not None:
            self.reuse_from = settings.reuse_from(self.reuse_from)
        if self.samples is not None:
            self.samples = settings.sample_limit(self.samples)
        if self.concurrency is not None:
            self.concurrency = settings.concurrency(self.concurrency)
        if self.max_retries is not None:
            self.max_retries = settings.retry_count(self.max_retries)
        if self.timeout is not None:
            self.timeout = settings.timeout_seconds(self.timeout)


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
    earlier: int = 0  # of ``reuse``: results found in history (earlier lines, --reuse-from)

    @property
    def evaluate(self) -> int:
        return self.new + self.retry

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluation": self.node_id,
            "total": self.total,
            "reuse": self.reuse,
            "reuse_earlier": self.earlier,
            "evaluate": self.evaluate,
            "new": self.new,
            "retry": self.retry,
            "dropped": self.dropped,
            "changed": self.changed,
            "blocked": self.blocked,
        }


def in_shard(key: bytes, shard: tuple[int, int]) -> bool:
    """Shard I of N (1-based) holds the keys whose first 8 bytes are I-1 modulo N."""
    return int.from_bytes(key[:8], "big") % shard[1] == shard[0] - 1


def encode_item(item: tuple[Any, ...], columns: tuple[str, ...], position: int) -> bytes:
    try:
        return encode(item)
    except EncodingError as e:
        column = ""
        if e.path.startswith("["):
            index = int(e.path[1 : e.path.index("]")])
            column = f", column {columns[index]!r}" if index < len(columns) else ""
        reason = (
            f"an int of more than {MAX_INT_DIGITS} digits cannot be encoded; store it as a str"
            if e.type_name == "int"
            else f"cannot encode a value of type {e.type_name!r}"
        )
        raise EncodingError(
            f"dataset item {position}{column}: {reason}; "
            "dataset items must be plain data (str, numbers, lists, dicts, dataclasses)",
            type_name=e.type_name,
            path=e.path,
        ) from None


def sample_label(prepared: PreparedEvaluation, params_digest: str, sample: tuple[Any, ...]) -> str:
    """A sample as a retry line names it: its key prefix (what ``show --sample`` takes) and item."""
    _slot, item_bytes, occurrence, item = sample
    key = sample_key(prepared.code.digest, params_digest, item_bytes, occurrence).hex()[:12]
    shown = ", ".join(f"{c}={v!r}" for c, v in zip(prepared.spec.columns, item))
    return f"{key} ({shown[:57] + '...' if len(shown) > 60 else shown})"


def generated_name() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S")


@dataclass
class Dataset:
    """An evaluation's dataset as read for one run (``--samples`` and ``--shard`` applied)."""

    items: list[tuple[Any, ...]] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # canonical encoding of each item
    occurrences: list[int] = field(default_factory=list)  # among equal items before it
    complete: bool = True  # False when --samples or --shard left items out
    total: int | None = 0  # items in the whole dataset; None: unknown (a generator cut by --samples)


@dataclass
class Match:
    """A dataset against the view the experiment holds (see ``ExperimentRun._match``)."""

    total: int
    base: str | None = None  # the view matched against
    kept: bytes | None = None  # bitmap of its positions still in the dataset; None: all
    pending: list[tuple[int, bytes, int, tuple[Any, ...]]] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    unchanged: bool = False
    # results found in history for pending samples: (slot it replaces, experiment, result)
    earlier: list[tuple[int, str, Earlier]] = field(default_factory=list)

    def reused_from(self, experiment: str | None) -> int:
        """How many results came from ``experiment``'s history."""
        return sum(1 for _slot, source, _e in self.earlier if source == experiment)


class ExperimentRun:
    """One run of an experiment. Use ``open()``, then evaluations, then ``close()``."""

    def __init__(self, store: Store, options: RunOptions, listener: RunListener | None = None) -> None:
        self.store = store
        self.options = options
        self.listener = listener or RunListener()
        self.name = options.experiment  # checked by RunOptions
        self.head = Head(None, None, None)
        self.recorder: RunRecorder | None = None
        self.calls: RunCalls | None = None  # the call cache, from start() on
        self.outcomes: list[EvaluationOutcome] = []
        self.stop_requested = threading.Event()
        self.failed = False
        self.manifest: Manifest | None = None
        self._transaction: Transaction | None = None  # held from open() to close(): the lock
        self._index = itertools.count()
        self._held: Any = None  # the SIGINT handler to restore after _hold_interrupts
        self._dataset_total: int | None = 0  # items in the dataset last read (None: unknown)
        self._histories: dict[str, list[tuple[str, Manifest]]] = {}  # read once per run

    # -- lifecycle ----------------------------------------------------------

    def open(self) -> None:
        if self.options.dry_run and not self.store.exists:
            return  # nothing recorded yet, and a dry run creates no store
        self.store.check_writable()  # a read-only store: refused before anything is evaluated
        self.store.create()
        # The lock, dead runs recovered, the head; held until close() seals this run.
        self._transaction = Repository(self.store).begin(self.name, purpose="run")
        self.head = self._transaction.head
        source = self.options.reuse_from
        if source is not None and source != self.name and self.store.refs.read(source) is None:
            raise UsageError(
                f"--reuse-from {source}: no experiment {source!r} in this store",
                hint="`doteval list` names the experiments",
            )

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
            self.calls = RunCalls(self.store, self.recorder, self.options.cache)

    def _hold_interrupts(self) -> None:
        """After a first Ctrl+C, a second one ends the process at once, losing nothing.

        Every finished sample is in the journal already: sync it and exit; the
        next command that touches the experiment seals it.
        """
        if self._held is not None or threading.current_thread() is not threading.main_thread():
            return

        def stop_now(signum: int, frame: Any) -> None:
            if self.recorder is not None and self.recorder.journal is not None:
                self.recorder.journal.sync()
            os.write(2, b"\ndoteval: stopped; every finished sample is kept (the next command seals them)\n")
            os._exit(2)  # what pytest returns for an interrupted session

        self._held = signal.signal(signal.SIGINT, stop_now)

    def close(self) -> Manifest | None:
        try:
            if self.recorder is not None:
                status = STATUS_COMPLETED
                if self.stop_requested.is_set():
                    status = STATUS_INTERRUPTED
                elif self.failed:
                    status = STATUS_FAILED
                recorder, self.recorder = self.recorder, None  # finished once, even if the seal fails
                assert self._transaction is not None
                self.manifest = self._transaction.seal_run(recorder, status)
            elif self.outcomes:
                self.manifest = self.head.manifest  # nothing changed: the experiment as it was
        finally:
            if self._transaction is not None:
                self._transaction.close()
            if self._held is not None:
                signal.signal(signal.SIGINT, self._held)
                self._held = None
        return self.manifest

    @property
    def interrupted(self) -> bool:
        return self.stop_requested.is_set()

    # -- checks ---------------------------------------------------------------

    def prepare(self, node_id: str, spec: EvaluationSpec) -> PreparedEvaluation:
        """Fingerprint the code and refuse a change unless --rerun-changed."""
        code = code_fingerprint(spec.func, columns=spec.columns, options=spec.fingerprinted_options())
        prepared = PreparedEvaluation(node_id, spec, code)
        old = self._previous(node_id)
        if old is not None:
            prepared.line = old.line
            if old.fingerprint != code.digest:
                if self.options.dry_run:
                    prepared.changed = [
                        "code changed:",
                        *explain_code_change(self._old_code(old), code.document()),
                    ]
                elif not self.options.rerun_changed:
                    raise self._changed(
                        node_id, "code", explain_code_change(self._old_code(old), code.document())
                    )
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
        data = self._read_dataset(prepared.spec, prepared.code.digest, params.digest)
        match = self._match(prepared, data, params.digest)
        total = len(data.items)
        reuse = total - len(match.pending)
        retry = sum(1 for slot, *_ in match.pending if slot >= 0)
        return Plan(
            node_id=prepared.node_id,
            total=total,
            reuse=reuse,
            new=total - reuse - retry,
            retry=retry,
            dropped=match.removed,
            changed=list(prepared.changed),
            blocked=bool(prepared.changed) and not self.options.rerun_changed,
            earlier=len(match.earlier),
        )

    def _previous(self, node_id: str) -> EvaluationRecord | None:
        return self.head.manifest.evaluation(node_id) if self.head.manifest else None

    def _old_code(self, old: EvaluationRecord) -> dict[str, Any]:
        if old.code is None:
            return {}
        try:
            return dict(self.store.objects.get(old.code))
        except DotevalError:
            return {}

    def _changed(self, node_id: str, what: str, details: list[str]) -> ChangedEvaluationError:
        command = " ".join(self.options.command) or "pytest ..."
        new_name = unused_name(self.store, self.name)
        replaced = command.replace(f"--experiment {self.name}", f"--experiment {new_name}")
        if replaced == command:
            replaced = f"{command} --experiment {new_name}"
        body = "\n".join("    " + line for line in details) or "    (no readable diff)"
        ran = [o.node_id for o in self.outcomes]
        done = (
            f"it was not run (the {len(ran)} evaluation(s) before it in this session were recorded)"
            if ran
            else "nothing was evaluated"
        )
        return ChangedEvaluationError(
            f"{node_id}: the {what} changed since experiment {self.name!r} last ran; "
            f"{done}.\n{body}\n"
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
        spec = prepared.spec
        outcome = EvaluationOutcome(prepared.node_id)
        self.outcomes.append(outcome)
        data = self._read_dataset(spec, prepared.code.digest, params.digest)
        match = self._match(prepared, data, params.digest)
        pending = match.pending
        outcome.total = len(data.items)
        outcome.earlier = match.reused_from(self.name)
        outcome.imported = len(match.earlier) - outcome.earlier
        outcome.reuse_from = self.options.reuse_from
        outcome.reused = outcome.total - len(pending) - len(match.earlier)
        settled = self.head.manifest is not None and self.head.manifest.status != STATUS_INTERRUPTED
        if not pending and match.unchanged and settled:
            # Nothing to evaluate and nothing to change: no journal, no new manifest.
            self.listener.evaluation_started(prepared.node_id, outcome.total, outcome.total, 0)
            self.listener.evaluation_finished(prepared.node_id, outcome)
            return outcome
        self.start()
        assert self.recorder is not None
        index = next(self._index)
        code_id = self.store.objects.put(prepared.code.document())
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
        self.recorder.record_view(
            index,
            {
                "base": match.base,
                "kept": match.kept,
                "total": match.total,
                "reused": outcome.reused,
                "added": match.added,
                "removed": match.removed,
            },
        )
        for reuse in _reuse_records(match.earlier):
            self.recorder.record_reuse(index, reuse)
        shown_total = outcome.total if data.total is not None else None
        ready = outcome.total - len(pending)
        self.listener.evaluation_started(prepared.node_id, shown_total, ready, len(pending))
        status = STATUS_COMPLETED
        retry = self._retry(spec)
        execution = Execution(
            spec=spec,
            fixtures=fixtures,
            retry=retry,
            concurrency=self._concurrency(spec),
            stop=self.stop_requested,
            record=lambda sample, item, result, started, attempts: self._record(
                index, prepared, sample, result, started, outcome, attempts
            ),
            on_retry=lambda sample, attempt, exc, delay: self.listener.retrying(
                prepared.node_id,
                Retrying(
                    sample_label(prepared, params.digest, sample),
                    attempt,
                    retry.max_retries + 1,
                    exc,
                    delay,
                ),
            ),
            on_interrupt=self.listener.interrupted,
            timeout=self._timeout(spec),
            calls=self.calls,
            on_window=lambda window, ceiling: self.listener.window_changed(prepared.node_id, window, ceiling),
        )
        try:
            execute(execution, [(sample, sample[3]) for sample in pending])
            if self.interrupted:
                self._hold_interrupts()
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
        """``--concurrency``, else ``@foreach(concurrency=)``, else 16 for async, 1 for def."""
        if self.options.concurrency:
            return max(1, self.options.concurrency)
        own = spec.options.get("concurrency")
        if own is not None:
            return settings.concurrency(own, "@foreach(concurrency=...)")
        return 16 if spec.is_async else 1

    def _retry(self, spec: EvaluationSpec) -> RetryPolicy:
        """``--max-retries``, else ``@foreach(max_retries=)``, else the policy's (3)."""
        count = self.options.max_retries
        if count is None and spec.options.get("max_retries") is not None:
            count = settings.retry_count(spec.options["max_retries"], "@foreach(max_retries=...)")
        return self.options.retry if count is None else replace(self.options.retry, max_retries=count)

    def _timeout(self, spec: EvaluationSpec) -> float | None:
        own = spec.options.get("timeout")
        return (
            settings.timeout_seconds(own, "@foreach(timeout=...)")
            if own is not None
            else self.options.timeout
        )

    def _read_dataset(self, spec: EvaluationSpec, fingerprint: str, params_digest: str) -> Dataset:
        limit = self.options.samples
        iterator = iter(spec.dataset)
        source = itertools.islice(iterator, limit) if limit is not None else iterator
        data = Dataset()
        items, encoded, occurrences = data.items, data.encoded, data.occurrences
        seen: dict[bytes, int] = {}
        for position, raw in enumerate(source):
            item = normalize_item(raw, spec.columns, position)
            item_bytes = encode_item(item, spec.columns, position)
            occurrence = seen.get(item_bytes, 0)
            seen[item_bytes] = occurrence + 1
            items.append(item)
            encoded.append(item_bytes)
            occurrences.append(occurrence)
        data.total = len(items)
        if limit is not None and len(items) == limit:
            data.total = _size_beyond_limit(spec.dataset, iterator, limit)
            data.complete = data.total == limit
        self._dataset_total = data.total
        if self.options.shard is not None:
            prefix = key_prefix(fingerprint, params_digest)
            picked = []
            for n, (item_bytes, occurrence) in enumerate(zip(encoded, occurrences)):
                h = prefix.copy()
                h.update(item_bytes)
                h.update(b"i%d;" % occurrence)
                if in_shard(h.digest(), self.options.shard):
                    picked.append(n)
            data.items = [items[n] for n in picked]
            data.encoded = [encoded[n] for n in picked]
            data.occurrences = [occurrences[n] for n in picked]
            data.complete = False
        return data

    def _match(self, prepared: PreparedEvaluation, data: Dataset, params_digest: str) -> Match:
        """What the experiment holds of ``data``: by item and occurrence, no key hashed; then,
        for what is still pending, finished results of the same key in history (``_reuse``)."""
        match, view = self._match_head(prepared, data)
        if match.pending:
            self._reuse(match, (prepared.code.digest, params_digest), view)
        return match

    def _reuse(self, match: Match, key: tuple[str, str], view: View | None) -> None:
        """Take pending samples' results from the experiment's history, then from --reuse-from's."""
        have: dict[str, set[int]] = {}
        known: dict[str, SampleTable] = {}
        if view is not None:
            for part, table in zip(view.parts, view.tables):
                have.setdefault(part.table_id, set()).update(part.rows)
                known[part.table_id] = table
        if not self.store.exists:
            return  # a dry run before the first run: no history
        sources = [self.name]
        if self.options.reuse_from is not None and self.options.reuse_from != self.name:
            sources.append(self.options.reuse_from)
        for source in sources:
            if source not in self._histories:
                self._histories[source] = history(self.store, source)
            if not self._histories[source] or not match.pending:
                continue  # a first run: nothing to look up
            wanted = {token(b, o) for _slot, b, o, _item in match.pending}
            found = find_earlier(self.store, self._histories[source], key, wanted, have, known)
            if not found:
                continue
            still = []
            for sample in match.pending:
                earlier = found.get(token(sample[1], sample[2]))
                if earlier is None:
                    still.append(sample)
                else:
                    match.earlier.append((sample[0], source, earlier))
            match.pending = still
        if match.earlier:
            match.unchanged = False

    def _match_head(self, prepared: PreparedEvaluation, data: Dataset) -> tuple[Match, View | None]:
        old = self._previous(prepared.node_id)
        # An unknown total is at least one more than was read: the experiment is not complete.
        total = data.total if data.total is not None else len(data.items) + 1
        match = Match(total=total if not data.complete else len(data.items))
        continuing = old is not None and old.fingerprint == prepared.code.digest and old.line == prepared.line
        if old is None or not continuing or old.entries is None:
            match.pending = [
                (-1, b, o, item) for b, o, item in zip(data.encoded, data.occurrences, data.items)
            ]
            match.added = len(data.items)
            match.unchanged = old is not None and continuing and not data.items
            return match, None
        view = load_view(self.store, old)
        match.base = old.entries
        position = {t: n for n, t in enumerate(view.tokens())}
        flags = view.flags
        damaged = view.damaged_positions()
        if damaged:
            flags = bytes(FLAG_ERROR if n in damaged else f for n, f in enumerate(flags))
            warnings.warn(
                DotevalWarning(
                    f"{prepared.node_id}: the stored results of {len(damaged)} sample(s) are damaged "
                    "or missing; they are evaluated again (`doteval fsck` names the files)"
                ),
                stacklevel=2,
            )
        matched = bytearray((len(view) + 7) // 8)
        pending = match.pending
        new = 0
        for item_bytes, occurrence, item in zip(data.encoded, data.occurrences, data.items):
            n = position.get(item_bytes + b"i%d;" % occurrence if occurrence else item_bytes, -1)
            if n < 0:
                new += 1
                pending.append((-1, item_bytes, occurrence, item))
                continue
            matched[n >> 3] |= 1 << (n & 7)
            if flags[n] != FLAG_OK:
                pending.append((n, item_bytes, occurrence, item))
        kept = sum(bin(b).count("1") for b in matched)
        if data.complete:
            match.kept = bytes(matched)
            match.removed = len(view) - kept
        else:  # --samples or --shard cut the dataset: keep what lies beyond
            match.total = max(match.total, len(view) + new)
        # items new to the dataset; a view that only grew into what --samples left out is no change
        match.added = max(0, new - max(0, old.total - len(view)))
        match.unchanged = kept == len(view) == len(data.items) and old.total == match.total and not new
        return match, view

    def _record(
        self,
        index: int,
        prepared: PreparedEvaluation,
        sample: tuple[int, bytes, int, tuple[Any, ...]],
        result: Result,
        started: float,
        outcome: EvaluationOutcome,
        attempts: int = 1,
    ) -> None:
        assert self.recorder is not None
        slot, item_bytes, occurrence, _item = sample
        try:
            details = result.record_bytes(round(time.time() - started, 6), attempts)
        except EncodingError:
            try:
                result.to_record()  # names the field that cannot be stored
                raise
            except EncodingError as e:
                raise EncodingError(f"{prepared.node_id}: the result cannot be stored: {e}") from None
        scores: dict[str, Any] = {}
        metrics: dict[str, list[str]] = {}
        if result.ok:
            for s in result.scores:
                scores[s.name] = s.value
                if s.metrics:
                    metrics[s.name] = s.metric_names
        self.recorder.record_result(
            index, result.ok, item_bytes, occurrence, details, slot=slot, scores=(scores, metrics)
        )
        outcome.evaluated += 1
        if not result.ok:
            outcome.errors += 1
        self.listener.sample_done(prepared.node_id, result.ok)


def _reuse_records(earlier: list[tuple[int, str, Earlier]]) -> list[dict[str, Any]]:
    """Reused results as journal records: one per table they are rows of."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for slot, source, e in earlier:
        group = groups.setdefault(
            (source, e.part.table_id),
            {
                "table": e.part.table_id,
                "details": e.part.details_id,
                "length": e.part.length,
                "rows": [],
                "slots": [],
                "from": source,
                "origin": e.origin,
            },
        )
        group["rows"].append(e.row)
        group["slots"].append(slot)
    return list(groups.values())


_END = object()


def _size_beyond_limit(dataset: Any, iterator: Any, limit: int) -> int | None:
    """The size of a dataset of which ``limit`` items were read (``--samples``), without reading
    the rest: a collection's ``len``; for a generator, one look past the limit tells whether it
    ends there, else its size is unknown (None). An endless generator is never drained."""
    if isinstance(dataset, Sized) and not isinstance(dataset, Iterator):
        try:
            return max(len(dataset), limit)
        except Exception:  # a __len__ that does not work: read one item to see
            pass
    return limit if next(iterator, _END) is _END else None
