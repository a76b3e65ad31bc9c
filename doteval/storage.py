"""A dict-shaped view of experiments for scripts: load a session, save a changed one, report.

``load_session(name)`` returns the experiment as plain data, every result
included. ``save_session(name, data)`` records ``data`` as a new run of the
experiment (a new manifest; the old one stays in its history): results left out
of ``data["results"]`` are no longer part of the experiment, so the next run
evaluates them again. That is how an experiment is reset to a checkpoint.
``write_report(name)`` / ``report_html(name)`` give the HTML page of
``doteval report`` (an experiment, or with ``vs=`` a comparison of two).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from doteval._objects import Store, check_name
from doteval._operations.output_files import output_problem, replace_file
from doteval._repository.experiments import iter_samples, open_experiment
from doteval._repository.manifest import save_manifest
from doteval._repository.repository import Repository
from doteval._repository.results import result_fields
from doteval._repository.run_journal import STATUS_COMPLETED, STATUS_FAILED, STATUS_INTERRUPTED
from doteval._repository.sample_tables import load_view, open_view, save_view
from doteval.errors import ExperimentNotFoundError, UsageError

_STATUSES = {STATUS_COMPLETED, STATUS_FAILED, STATUS_INTERRUPTED}


# The fields of each result in ``load_session``: the stored item as it was given (a tuple).
_SESSION_FIELDS = ("item", "prompt", "response", "scores", "error", "metadata")


def _result_dict(evaluation: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"evaluation": evaluation, "sample_key": key, **result_fields(record, fields=_SESSION_FIELDS)}


class StorageBackend:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _reader(self) -> Store:
        """The store opened for one read, which never writes it (a dead run is sealed in memory)."""
        return Store(self.store.root, reading=True)

    def list_sessions(self) -> list[str]:
        from doteval._repository.experiments import list_experiments

        return [i.name for i in list_experiments(self._reader())]

    def load_session(self, name: str) -> dict[str, Any] | None:
        store = self._reader()
        try:
            info = open_experiment(store, name)
        except ExperimentNotFoundError:
            return None
        results = []
        if info.manifest is not None:
            for ev in info.manifest.evaluations:
                for s in iter_samples(store, ev):
                    results.append(_result_dict(ev.node_id, s.key, s.record))
        done = info.done
        return {
            "name": name,
            "status": info.status,
            "total_count": info.total,
            "completed_count": done,
            "error_count": info.errors,
            "success_rate": done / (done + info.errors) if done + info.errors else 0.0,
            "last_updated": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.last_updated)),
            "results": results,
        }

    def save_session(self, name: str, data: dict[str, Any]) -> None:
        check_name(name)
        status = str(data.get("status", STATUS_INTERRUPTED)).lower()
        if status not in _STATUSES:
            raise UsageError(f"status must be one of {', '.join(sorted(_STATUSES))}, not {status!r}")
        keep: dict[str, set[bytes]] = {}
        for r in data.get("results") or []:
            try:
                keep.setdefault(str(r["evaluation"]), set()).add(bytes.fromhex(r["sample_key"]))
            except (KeyError, TypeError, ValueError):
                raise UsageError(
                    "each result needs the 'evaluation' and 'sample_key' it was loaded with"
                ) from None
        with Repository(self.store).transaction(name, purpose="save") as tx:
            head = tx.head
            if head.manifest is None or head.state is None or head.state.head.deleted:
                raise ExperimentNotFoundError(name)
            manifest = head.manifest
            for ev in manifest.evaluations:
                view = load_view(self.store, ev)
                wanted = keep.get(ev.node_id, set())
                parts = view.select(i for i, key in enumerate(view.keys) if key in wanted)
                known = {p.table_id: t for p, t in zip(view.parts, view.tables)}
                kept = open_view(self.store, parts, view.prefix, known)
                ev.entries = save_view(self.store, parts)
                named = {p.table_id for p in parts if p.rows}
                ev.origins = {t: o for t, o in ev.origins.items() if t in named}
                ev.done, ev.errors, ev.metrics = kept.done, kept.errors, kept.summary()
                ev.run = {}
            manifest.parent = head.manifest_id
            manifest.status = status
            manifest.started = manifest.finished = time.time()
            manifest.note = "saved by save_session"
            manifest_id = save_manifest(self.store, manifest)
            tx.commit(manifest_id, op="save")

    def report_html(self, name: str, vs: str | None = None, *, seed: int = 0) -> str:
        """The self-contained HTML page of ``doteval report``: experiment ``name`` (``NAME``,
        ``NAME@REV`` or ``NAME~N``), or with ``vs`` its comparison with that experiment
        (the paired bootstrap seeded by ``seed``). Reads the store, never writes it."""
        # Imported here: jinja2 and the templates cost a script that never reports.
        from doteval._operations.report import diff_report, experiment_report, render_html

        store = self._reader()
        return render_html(
            diff_report(store, name, vs, seed=seed) if vs is not None else experiment_report(store, name)
        )

    def write_report(
        self, name: str, path: str | Path | None = None, *, vs: str | None = None, seed: int = 0
    ) -> Path:
        """Write ``report_html(name, vs, seed=seed)`` to ``path``, replacing it whole or not
        at all, and return the path. The default path is the one ``doteval report`` picks
        in the current folder: ``doteval-report-NAME.html``, ``doteval-diff-A-vs-B.html``."""
        from doteval._operations.report import default_filename

        out = Path(path) if path is not None else Path(default_filename(name, vs))
        problem = output_problem(out)  # before the work, as the CLI does
        if problem:
            raise UsageError(f"cannot write {out}: {problem}")
        html = self.report_html(name, vs, seed=seed)
        with replace_file(out) as f:
            f.write(html)
        return out


def get_storage_backend(path: str | Path | None = None) -> StorageBackend:
    """The store at ``path`` (default: ``$DOTEVAL_STORE`` or ``./.doteval``)."""
    return StorageBackend(Store(path))


__all__ = ["StorageBackend", "get_storage_backend"]
