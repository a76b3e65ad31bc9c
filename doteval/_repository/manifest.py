"""Manifests: the record of one run of an experiment, like a git commit.

A manifest names its parent manifest, and for each evaluation its code
fingerprint, params, counts, summary metrics and its *entries*: the view of
its samples (``doteval._repository.sample_tables``). Listing and showing experiments reads
manifests only; the sample tables are read when samples are needed (resume,
``--full``, diff), the details of results only when shown or exported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from doteval._objects import ObjectId, Store, checks
from doteval._objects.hashing import check_object_id
from doteval.errors import CorruptStoreError

MANIFEST_VERSION = 3
#: The version of a manifest that uses nothing of version 3 (model calls, origins of reused
#: results): it is written as version 2, byte for byte as before, so an older doteval reads it;
#: one that does is refused by an older doteval as "newer than this doteval", not as damaged.
PLAIN_MANIFEST_VERSION = 2
STATUSES = ("completed", "failed", "interrupted")  # of a run, and of each evaluation in it


@dataclass
class EvaluationRecord:
    node_id: str
    fingerprint: str
    params_digest: str
    params: dict[str, Any] = field(default_factory=dict)
    unfingerprintable: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    code: str | None = None  # object id of {"type": "code", "sources": {...}}
    entries: str | None = None  # object id of the view of its samples (doteval._repository.sample_tables)
    line: int = 1  # a new line of results starts with --rerun-changed
    total: int = 0
    done: int = 0
    errors: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, int] = field(default_factory=dict)  # evaluated / reused / errors in this run
    status: str = "interrupted"
    # Sample tables of the view that hold results reused from another line or experiment
    # (doteval._repository.reuse): table id -> {"experiment", "manifest", "finished"} of the run
    # that evaluated them. Written only when not empty.
    origins: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def missing(self) -> int:
        return max(self.total - self.done - self.errors, 0)

    def same_code_and_params(self, other: EvaluationRecord) -> bool:
        return self.fingerprint == other.fingerprint and self.params_digest == other.params_digest


@dataclass
class Manifest:
    experiment: str
    parent: str | None
    status: str
    started: float
    finished: float
    host: str = ""
    pid: int = 0
    git_commit: str | None = None
    command: list[str] = field(default_factory=list)
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    note: str = ""
    shard: str = ""  # "I/N" when the run evaluated one shard of the samples
    calls: str | None = None  # object id of the model calls the run used (call_entries.save_calls)
    # made / cached calls, tokens_spent / tokens_saved (doteval._repository.call_entries)
    call_counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(e.total for e in self.evaluations)

    @property
    def done(self) -> int:
        return sum(e.done for e in self.evaluations)

    @property
    def errors(self) -> int:
        return sum(e.errors for e in self.evaluations)

    def evaluation(self, node_id: str) -> EvaluationRecord | None:
        for e in self.evaluations:
            if e.node_id == node_id:
                return e
        return None

    def to_value(self) -> dict[str, Any]:
        data = asdict(self)
        for e in data["evaluations"]:
            if not e["origins"]:
                del e["origins"]  # a manifest without reuse is as it was before origins existed
        if data["calls"] is None:
            del data["calls"]  # nor one without model calls
        if not data["call_counts"]:
            del data["call_counts"]
        uses_v3 = "calls" in data or "call_counts" in data or any("origins" in e for e in data["evaluations"])
        data["type"] = "manifest"
        data["v"] = MANIFEST_VERSION if uses_v3 else PLAIN_MANIFEST_VERSION
        return data

    @classmethod
    def from_value(cls, data: Any, *, where: str = "") -> Manifest:
        """A decoded manifest, every field checked for its type and range (a manifest copied
        from another store is untrusted: a count of 10**400 must not crash its readers)."""
        try:
            if checks.mapping(data, "manifest").get("type") != "manifest":
                raise ValueError("not a manifest")
            if checks.count(data.get("v", 0), "v") > MANIFEST_VERSION:
                raise ValueError(f"manifest version {data['v']} is newer than this doteval")
            evals = [_evaluation(e, where) for e in _list(data["evaluations"], "evaluations")]
            fields = {k: v for k, v in data.items() if k not in ("type", "v", "evaluations")}
            manifest = cls(evaluations=evals, **fields)
            _check_manifest(manifest, where)
            return manifest
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise CorruptStoreError(f"malformed manifest: {e}", path=where) from None


def _list(value: Any, field: str) -> list[Any]:
    if type(value) is not list:
        raise ValueError(f"{field} is not a list")
    return value


def _check_manifest(m: Manifest, where: str) -> None:
    checks.text(m.experiment, "experiment")
    if m.parent is not None:
        check_object_id(m.parent, where=where)
    _status(m.status)
    m.started = checks.timestamp(m.started, "started")
    m.finished = checks.timestamp(m.finished, "finished")
    checks.text(m.host, "host")
    checks.count(m.pid, "pid")
    checks.optional_text(m.git_commit, "git_commit")
    checks.texts(m.command, "command")
    checks.text(m.note, "note")
    checks.text(m.shard, "shard")
    if m.calls is not None:
        check_object_id(m.calls, where=where)
    for name, value in checks.mapping(m.call_counts, "call_counts").items():
        checks.count(value, f"call_counts {checks.text(name, 'call_counts')}")


def _status(value: Any) -> None:
    if value not in STATUSES:
        raise ValueError(f"status is not one of {', '.join(STATUSES)}")


def _evaluation(data: Any, where: str) -> EvaluationRecord:
    e = EvaluationRecord(**checks.mapping(data, "evaluation"))
    for name in ("node_id", "fingerprint", "params_digest"):
        checks.text(getattr(e, name), name)
    _status(e.status)
    checks.mapping(e.params, "params")
    checks.texts(e.unfingerprintable, "unfingerprintable")
    checks.texts(e.columns, "columns")
    for oid in (e.code, e.entries):
        if oid is not None:
            check_object_id(oid, where=where)
    checks.count(e.line, "line", low=1)
    for name in ("total", "done", "errors"):
        checks.count(getattr(e, name), name)
    for metric in _list(e.metrics, "metrics"):
        checks.text(checks.mapping(metric, "metric")["score"], "metric score")
        checks.text(metric["metric"], "metric name")
        checks.number(metric.get("value"), "metric value")
    for name, value in checks.mapping(e.run, "run").items():
        checks.count(value, f"run {checks.text(name, 'run')}")
    for table_id, origin in checks.mapping(e.origins, "origins").items():
        check_object_id(table_id, where=where)
        checks.text(checks.mapping(origin, "origin")["experiment"], "origin experiment")
        check_object_id(origin["manifest"], where=where)
        origin["finished"] = checks.timestamp(origin["finished"], "origin finished")
    return e


def save_manifest(store: Store, manifest: Manifest) -> ObjectId:
    return store.objects.put(manifest.to_value())


def load_manifest(store: Store, manifest_id: str) -> Manifest:
    return Manifest.from_value(
        store.objects.get(manifest_id, loose_first=True), where=f"manifest {manifest_id[:12]}"
    )
