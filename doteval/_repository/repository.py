"""The repository: experiments made of one store's objects and refs, and the one way to change them.

As dulwich's ``Repo`` composes an object store and refs, a ``Repository`` composes
the ``objects`` and ``refs`` of a ``Store`` and owns an experiment's life:

- its head as every command must see it (``ref_state``, ``head``): the journals of
  dead runs sealed and the lines that can be joined joined. A store opened for
  reading (``Store(reading=True)``) is never written: that is computed in memory
  (``doteval._objects.overlay``), no lock is taken, and the next writer seals for real.
- the transaction, through which every change to an experiment is made::

      with repo.transaction(name, purpose="delete") as tx:  # lock, recover dead runs, read head
          tx.head ...
          tx.commit(manifest_id, op="delete")  # compare-and-swap append of a ref record

  A run holds its transaction for the whole run (``begin``, then ``close``); a rename
  changes two experiments (``transactions``: both locks, always in name order).
- the recovery of dead runs, one for every writer: seal their journals
  (``run_journal.seal``), then join the lines that can be joined
  (``merge.merge_manifests``).

No other module takes an experiment lock or appends a ref record
(``tests/test_repository.py`` holds this). Readers never begin a transaction.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from doteval._objects import ObjectId, RefRecord, RefState, Store
from doteval._objects.locks import Lock
from doteval._objects.walk import is_real_dir
from doteval._repository.manifest import Manifest, load_manifest, save_manifest
from doteval._repository.merge import merge_manifests, mergeable
from doteval._repository.run_journal import Head, RunRecorder, read_head, seal
from doteval.errors import DotevalError, LockedError, NoSpaceError

_HEAD: Any = object()  # ``Transaction.commit``'s default: the head the transaction read
_UNREAD: Any = object()


class Transaction:
    """One change to one experiment, made under its lock (see the module docstring).

    Begun by ``Repository.begin`` / ``transaction``: the lock is taken, dead runs are
    recovered, and ``head`` is the head after that. ``commit`` appends a ref record by
    compare-and-swap; ``head`` is read again after it.
    """

    def __init__(self, repo: Repository, name: str, lock: Lock | None) -> None:
        self.repo = repo
        self.name = name
        self._lock = lock  # None: a reading store's transaction, kept in memory
        self._state: RefState | None = _UNREAD
        self._head: Head | None = None
        self.recovered: list[Manifest] = []  # the dead runs sealed when it began

    @property
    def state(self) -> RefState | None:
        """The experiment's ref records (no manifest read)."""
        if self._state is _UNREAD:
            self._state = self.repo.refs.read(self.name)
        return self._state

    @property
    def head(self) -> Head:
        if self._head is None:
            self._head = read_head(self.repo.store, self.name, self.state)
        return self._head

    def commit(
        self,
        manifest_id: str | None,
        *,
        op: str,
        expected: ObjectId | None = _HEAD,
        note: str = "",
        merged: tuple[ObjectId, ...] = (),
        branch: bool = False,
    ) -> RefRecord:
        """Move the experiment to ``manifest_id`` (None: no manifest) with a new ref record
        after ``expected`` (default: ``head``), if that is still where it stands; a
        ``StoreError`` otherwise. ``branch``, ``merged``: see ``RefStore.append``."""
        assert self.repo.store.reading or (self._lock is not None and self._lock.held), "not begun"
        if expected is _HEAD:
            expected = self.head.record_id
        record = self.repo.refs.append(
            self.name, manifest_id, expected=expected, op=op, note=note, merged=merged, branch=branch
        )
        self._state, self._head = _UNREAD, None
        return record

    def adopt(self, records: list[RefRecord], source: str) -> None:
        """Copy ``source``'s ref records under this experiment (a rename keeps its history)."""
        self.repo.refs.adopt(self.name, records, source)

    def seal(
        self,
        path: Path,
        *,
        scores: dict[int, list[tuple[dict[str, Any], dict[str, list[str]]]]] | None = None,
        records: list[Any] | None = None,
    ) -> Manifest | None:
        """Seal one journal: its objects and manifest, then its ref record, then remove it."""
        sealed = seal(self.repo.store, self.name, path, scores=scores, records=records)
        if sealed is not None:
            self.commit(sealed.manifest_id, op="run", expected=sealed.parent, branch=sealed.branch)
        self.repo.store.sealed(path)
        return sealed.manifest if sealed is not None else None

    def seal_run(self, recorder: RunRecorder, status: str) -> Manifest | None:
        """End this transaction's run: its journal's end record, then its seal, from the
        records in memory (the same as reading the journal back)."""
        path = recorder.finish(status)
        return self.seal(path, scores=recorder.scores, records=recorder.records)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _recover(self) -> bool:
        """Seal the journals of dead runs, then join the lines that can be joined; True
        when the experiment has one head after."""
        for path in self.repo.store.journals(self.name):
            manifest = self.seal(path)
            if manifest is not None:
                self.recovered.append(manifest)
        return self._join()

    def _join(self) -> bool:
        store = self.repo.store
        state = self.state
        if state is None or not state.diverged:
            return True
        heads = [h for h in state.heads if h.manifest and not h.deleted]
        if len(heads) != len(state.heads):
            return False
        manifests = [load_manifest(store, h.manifest) for h in heads if h.manifest]
        if not mergeable(manifests):
            return False
        assert heads[0].manifest is not None
        merged = merge_manifests(store, manifests, heads[0].manifest)
        manifest_id = save_manifest(store, merged)
        self.commit(
            manifest_id,
            op="merge",
            expected=heads[0].id,
            note=merged.note,
            merged=tuple(h.id for h in heads[1:]),
        )
        return True


class Repository:
    """The experiments of one store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.objects = store.objects
        self.refs = store.refs

    # -- reading --------------------------------------------------------------

    def ref_state(self, name: str) -> RefState | None:
        """The experiment's ref state with its dead runs recovered, as every command must see it.

        A store opened for reading is never written: the recovery is computed in memory,
        by the same code, unless a live run holds the experiment's lock (told without
        creating a file). Otherwise the recovery is made under the lock, and skipped while a
        live run holds it or when the disk is full: then the experiment is read as it stands.
        """
        if not self.store.journals(name):
            state = self.refs.read(name)
            if state is None or not state.diverged:
                return state
        if self.store.reading:
            if self.store.live_holder(name) is None:
                try:
                    Transaction(self, name, None)._recover()
                except FileNotFoundError:
                    pass  # a writer sealed a journal while it was read: the refs say what it sealed
        else:
            try:
                self._try_recover(name, purpose="recover")
            except NoSpaceError:
                pass  # what was sealed is published whole; the other journals stay as they are
        return self.refs.read(name)

    def head(self, name: str) -> Head:
        """The experiment's head, its dead runs recovered (``ref_state``)."""
        return read_head(self.store, name, self.ref_state(name))

    # -- changing -------------------------------------------------------------

    def begin(self, name: str, *, purpose: str) -> Transaction:
        """A transaction on ``name`` held until its ``close()`` (a run holds one for the whole
        run). ``LockedError`` names a live holder; a dead holder's lock is free."""
        (tx,) = self._begin((name,), purpose)
        return tx

    @contextmanager
    def transaction(self, name: str, *, purpose: str) -> Iterator[Transaction]:
        tx = self.begin(name, purpose=purpose)
        try:
            yield tx
        finally:
            tx.close()

    @contextmanager
    def transactions(
        self, first: str, second: str, *, purpose: str
    ) -> Iterator[tuple[Transaction, Transaction]]:
        """Transactions on two experiments (a rename): both locks are taken, in name order in
        every process so that two commands never wait for each other, before either recovers."""
        txs = self._begin((first, second), purpose)
        try:
            yield txs[0], txs[1]
        finally:
            for tx in reversed(txs):
                tx.close()

    def settle(self, name: str) -> bool:
        """Recover ``name`` and join its lines if they can be (after a pull); True when it has
        one head after. False, changing nothing, while someone holds its lock."""
        return self._try_recover(name, purpose="merge") is True

    def drop_expired(self, name: str, *, deleted_before: float) -> None:
        """Remove every record of ``name`` if it was deleted before ``deleted_before`` (gc's
        expiry); skipped while anyone holds its lock."""
        lock = self.store.lock(name)
        try:
            lock.acquire(purpose="gc")
        except DotevalError:
            return
        try:
            state = self.refs.read(name)
            folder = self.refs.dir / name
            expired = state is not None and state.head.deleted and state.head.time < deleted_before
            if expired and is_real_dir(self.refs.dir) and is_real_dir(folder):
                shutil.rmtree(folder, ignore_errors=True)  # rmtree never follows a link inside
        finally:
            lock.release()

    def _begin(self, names: tuple[str, ...], purpose: str) -> list[Transaction]:
        with ExitStack() as held:
            txs = []
            for name in sorted(names):
                lock = self.store.lock(name)
                lock.acquire(purpose=purpose)
                held.callback(lock.release)
                txs.append(Transaction(self, name, lock))
            for tx in txs:
                tx._recover()
            held.pop_all()
        return sorted(txs, key=lambda tx: names.index(tx.name))

    def _try_recover(self, name: str, *, purpose: str) -> bool | None:
        """Recover ``name`` under its lock (``Transaction._recover``); None, changing
        nothing, while a live process holds the lock."""
        lock = self.store.lock(name)
        try:
            lock.acquire(purpose=purpose)
        except LockedError:
            return None
        try:
            return Transaction(self, name, lock)._recover()
        finally:
            lock.release()
