"""``@cached``: a model call answered from the store when the same call was made before.

The key of a call is a blake3 of the decorated function's code fingerprint (its normalized
code, the project helpers it calls and the constants they read: ``fingerprint.code_fingerprint``,
as for an evaluation), the params of the object it is bound to (``params_fingerprint``, as for
fixtures), its arguments in the canonical encoding, and its occurrence: the n-th identical call
within one sample has its own entry. What cannot be fingerprinted is named in a warning, once,
and left out of the key.

The sample being evaluated is known through a context variable that ``execution`` sets
around each attempt of a sample (``sample_scope``); outside a run (a notebook) ``@cached``
calls through. The store side (entries, the ``calls`` object) is
``doteval._repository.call_entries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import threading
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from doteval._objects import Store
from doteval._objects.encoding import decode, encode
from doteval._objects.hashing import hash_bytes
from doteval._repository.call_entries import entry_value, load_entry, stored_calls
from doteval._repository.run_journal import RunRecorder
from doteval._running.fingerprint import code_fingerprint, fingerprintable, params_fingerprint
from doteval.errors import CacheMissError, DotevalWarning, EncodingError

__all__ = ["CallStats", "RunCalls", "cached", "sample_scope"]

CALL_KEY_VERSION = 1
USE, REFRESH, REPLAY = "use", "refresh", "replay"  # default, --no-cache, --cache-only
_USAGE_NAMES = ("prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens")


@dataclasses.dataclass
class CallStats:
    made: int = 0
    cached: int = 0
    tokens_spent: int = 0
    tokens_saved: int = 0

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class RunCalls:
    """The call cache of one run: the index of stored answers, the calls in flight, counts."""

    def __init__(self, store: Store, recorder: RunRecorder, mode: str = USE) -> None:
        self.store, self.recorder, self.mode = store, recorder, mode
        self.stats = CallStats()
        self._index: dict[str, str] | None = None  # the store's, built at the first lookup
        self._fresh: dict[str, str] = {}  # the answers this run stored
        self._entries: dict[str, dict[str, Any]] = {}  # entries read or written (immutable)
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._in_flight: dict[str, asyncio.Event] = {}
        self._warned: set[tuple[str, str]] = set()

    def lookup(self, key: str) -> str | None:
        if self.mode == REFRESH:
            return None
        if self._index is None:
            with self._lock:
                if self._index is None:  # built at the first lookup of the run
                    self._index = stored_calls(self.store)
        return self._fresh.get(key) or self._index.get(key)

    def key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def answer(self, fn: CachedFunction, key: str, entry_id: str) -> Any:
        """A stored answer, rebuilt as the function's declared return type."""
        data = self._entries.get(entry_id)
        if data is None:
            data = self._entries[entry_id] = load_entry(self.store, entry_id)
        value = rebuild(data["value"], fn.return_type())
        tokens = usage_tokens(data.get("usage"))
        self.recorder.record_call(key, entry_id, False, tokens)
        with self._lock:
            self.stats.cached += 1
            self.stats.tokens_saved += tokens
        return value

    def keep(self, fn: CachedFunction, key: str, value: Any) -> None:
        """Store a fresh answer (when it can be replayed as it is) and journal the call."""
        usage = usage_of(value)
        tokens = usage_tokens(usage)
        entry_id = None
        try:
            data = encode(value)
            again = rebuild(decode(data), fn.return_type())
            if type(again) is not type(value) or again != value:
                self.warn(
                    fn,
                    "type",
                    f"a {type(value).__qualname__} read back is not the same value; "
                    "declare the function's return type (-> YourClass) so it can be rebuilt",
                )
            else:
                entry_id = self.store.objects.put(entry_value(fn.name, value, usage))
                self._entries[entry_id] = entry_value(fn.name, decode(data), usage)  # as read back
        except EncodingError as e:
            self.warn(
                fn, "type", f"a value of type {e.type_name or type(value).__qualname__!r} cannot be stored"
            )
        if entry_id is not None:
            self._fresh[key] = entry_id
            self.recorder.record_call(key, entry_id, True, tokens)
        with self._lock:
            self.stats.made += 1
            self.stats.tokens_spent += tokens

    def warn(self, fn: CachedFunction, what: str, reason: str) -> None:
        with self._lock:
            if (fn.name, what) in self._warned:
                return
            self._warned.add((fn.name, what))
        if what == "type":
            text = f"doteval cannot cache the answers of {fn.name}: {reason}; its calls are not cached"
        else:
            text = (
                f"doteval cannot fingerprint {what} of {fn.name} ({reason}): a change to it will not "
                "be detected by the call cache; give its class a __doteval_params__ method returning "
                "the settings that decide results"
            )
        warnings.warn(DotevalWarning(text), stacklevel=4)

    def miss(self, fn: CachedFunction, occurrence: int) -> CacheMissError:
        nth = f" (identical call {occurrence + 1} in this sample)" if occurrence else ""
        return CacheMissError(
            f"--cache-only: the store holds no answer for a call of {fn.name}{nth}",
            hint="run without --cache-only to make the call, or pull the store that made it",
        )


class SampleCalls:
    """The calls of one attempt of one sample: how many times each call was made."""

    def __init__(self, run: RunCalls) -> None:
        self.run = run
        self.seen: dict[str, int] = {}

    def occurrence(self, base: str) -> int:
        n = self.seen.get(base, 0)
        self.seen[base] = n + 1
        return n


_SAMPLE: ContextVar[SampleCalls | None] = ContextVar("doteval_sample_calls", default=None)


@contextlib.contextmanager
def sample_scope(run: RunCalls | None) -> Iterator[None]:
    """Around one attempt of a sample (``execution``): ``@cached`` calls count within it."""
    if run is None:
        yield
        return
    token = _SAMPLE.set(SampleCalls(run))
    try:
        yield
    finally:
        _SAMPLE.reset(token)


class CachedFunction:
    """What ``@cached`` knows of the function it decorates."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
        self.signature = inspect.signature(func)
        first = next(iter(self.signature.parameters), None)
        self.bound_name = first if first in ("self", "cls") else None
        self._digest: str | None = None
        self._return: Any = dataclasses.MISSING

    def digest(self) -> str:
        if self._digest is None:  # once per process: the code does not change while it runs
            self._digest = code_fingerprint(self.func, columns=(), options={}).digest
        return self._digest

    def return_type(self) -> Any:
        if self._return is dataclasses.MISSING:
            try:
                self._return = typing.get_type_hints(self.func).get("return")
            except Exception:  # a forward reference that does not resolve: plain data back
                self._return = None
        return self._return

    def key(
        self, run: RunCalls, sample: SampleCalls, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, int]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        params = ""
        if self.bound_name is not None and self.bound_name in arguments:
            owner = arguments.pop(self.bound_name)
            fingerprint = params_fingerprint({"self": owner})
            if fingerprint.unfingerprintable:
                run.warn(self, "the object it is bound to", type(owner).__qualname__)
            params = fingerprint.digest
        try:
            encoded = encode(arguments)
        except EncodingError:
            forms = {}
            for name, value in arguments.items():
                ok, form = fingerprintable(value)
                if ok:
                    forms[name] = form
                else:
                    run.warn(self, f"argument {name!r}", type(value).__qualname__)
            encoded = encode(forms)
        base = hash_bytes(encode(("doteval-call", CALL_KEY_VERSION, self.digest(), params)) + encoded)
        occurrence = sample.occurrence(base)
        return hash_bytes(encode((base, occurrence))), occurrence

    def call(self, sample: SampleCalls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = sample.run
        key, occurrence = self.key(run, sample, args, kwargs)
        if run.mode == REFRESH:
            value = self.func(*args, **kwargs)
            run.keep(self, key, value)
            return value
        with run.key_lock(key):  # two threads making the same call: one makes it
            entry = run.lookup(key)
            if entry is not None:
                return run.answer(self, key, entry)
            if run.mode == REPLAY:
                raise run.miss(self, occurrence)
            value = self.func(*args, **kwargs)
            run.keep(self, key, value)
            return value

    async def acall(self, sample: SampleCalls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = sample.run
        key, occurrence = self.key(run, sample, args, kwargs)
        if run.mode != REFRESH:
            while True:
                entry = run.lookup(key)
                if entry is not None:
                    return run.answer(self, key, entry)
                waiting = run._in_flight.get(key)
                if waiting is None:
                    break
                await waiting.wait()  # another sample makes this very call: its answer is ours
            if run.mode == REPLAY:
                raise run.miss(self, occurrence)
        done = run._in_flight[key] = asyncio.Event()
        try:
            value = await self.func(*args, **kwargs)
            run.keep(self, key, value)
        finally:
            del run._in_flight[key]
            done.set()
        return value


def cached(func: Callable[..., Any]) -> Callable[..., Any]:
    """Answer a model call from the store when the same call was made before.

    Decorates a function or a method, sync or async. Under a run (pytest or ``doteval run``),
    a call whose key the store holds is answered from it (``--no-cache``: always call,
    ``--cache-only``: never); outside a run it calls through.
    """
    fn = CachedFunction(func)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def acached(*args: Any, **kwargs: Any) -> Any:
            sample = _SAMPLE.get()
            if sample is None:
                return await func(*args, **kwargs)
            return await fn.acall(sample, args, kwargs)

        acached.__doteval_cached__ = fn  # type: ignore[attr-defined]
        return acached

    @functools.wraps(func)
    def sync_cached(*args: Any, **kwargs: Any) -> Any:
        sample = _SAMPLE.get()
        if sample is None:
            return func(*args, **kwargs)
        return fn.call(sample, args, kwargs)

    sync_cached.__doteval_cached__ = fn  # type: ignore[attr-defined]
    return sync_cached


# -- values ---------------------------------------------------------------------------


def rebuild(value: Any, hint: Any) -> Any:
    """A decoded value as the type ``hint`` declares: dataclasses and pydantic models are built
    from their fields (never from a name read from the store), containers item by item."""
    if hint is None or hint is Any or value is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        for arm in args:
            if arm is type(None):
                continue
            if _fits(value, arm):
                return rebuild(value, arm)
        return value
    if origin is list and type(value) is list:
        return [rebuild(v, args[0] if args else None) for v in value]
    if origin is tuple and type(value) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(rebuild(v, args[0]) for v in value)
        return tuple(rebuild(v, a) for v, a in zip(value, args)) if len(args) == len(value) else value
    if origin is dict and type(value) is dict:
        return {k: rebuild(v, args[1] if len(args) == 2 else None) for k, v in value.items()}
    if isinstance(hint, type) and type(value) is dict:
        if dataclasses.is_dataclass(hint):
            hints = typing.get_type_hints(hint)
            fields = {
                f.name: rebuild(value[f.name], hints.get(f.name))
                for f in dataclasses.fields(hint)
                if f.init and f.name in value
            }
            return hint(**fields)
        validate = getattr(hint, "model_validate", None)
        if validate is not None:
            return validate({k: v for k, v in value.items() if k != "__type__"})
    return value


def _fits(value: Any, arm: Any) -> bool:
    target = typing.get_origin(arm) or arm
    if not isinstance(target, type):
        return True
    if type(value) is dict and (dataclasses.is_dataclass(target) or hasattr(target, "model_validate")):
        name = value.get("__type__")
        return name is None or str(name).endswith(target.__qualname__)
    return isinstance(value, target)


def usage_of(value: Any) -> dict[str, int] | None:
    """The token counts of an OpenAI-style or Anthropic-style ``usage`` on a returned value."""
    try:
        usage = value.get("usage") if isinstance(value, dict) else getattr(value, "usage", None)
        if usage is None:
            return None
        out = {}
        for name in _USAGE_NAMES:
            count = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
            if type(count) is int and count >= 0:
                out[name] = count
        return out or None
    except Exception:  # a value whose attributes raise: no usage
        return None


def usage_tokens(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    if "total_tokens" in usage:
        return int(usage["total_tokens"])
    return sum(
        int(usage.get(n, 0)) for n in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
    )
