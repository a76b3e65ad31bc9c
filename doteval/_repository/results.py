"""The values an evaluation returns: ``Score`` and ``Result``, and their stored form.

An evaluation function returns a ``Result`` (or something ``to_result`` turns
into one: a ``Score``, a bool, a number, a dict of scores). The store keeps each
sample's result as the plain data of ``Result.to_record()``, which must pass the
canonical encoding; ``Result.from_record()`` reads it back in any later process.

Record format (every value is plain, encodable data)::

    {
        "scores": [{"name": str, "value": Any, "metrics": [str, ...]}, ...],
        "prompt": Any,
        "response": Any,
        "error": None | {"type": str, "message": str, "traceback": str},
        "metadata": {str: Any, ...},
    }

The store adds ``duration`` (seconds) and ``attempts`` (calls the sample took,
from 1, retries of transient errors included; absent from records written
before doteval counted them: unknown).

``error.type`` is the exception's qualified class name (``"ValueError"``,
``"openai.RateLimitError"``) or ``""`` when the error was given as a message
(``Result(error="...")``): such an error has no type, and displays name it by
its source, ``MESSAGE_ERROR`` (see ``error_kind``, ``error_line``).
Metric names that are not registered when a record is read become placeholder
``Metric`` objects that keep the name (see ``doteval.metrics.Metric``), so the
record round-trips and the metric resolves once its module is imported.
"""

from __future__ import annotations

import traceback as _traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from doteval._objects.encoding import encode
from doteval.errors import CorruptStoreError, EncodingError, UsageError
from doteval.metrics import Metric, _metric_ref, accuracy, get_metric, mean

# A metric, a metric name, or several of them (None: no metrics).
MetricsLike: TypeAlias = "Metric | str | Iterable[Metric | str] | None"


def _as_metric(m: Any) -> Metric:
    if isinstance(m, Metric):
        return m
    if isinstance(m, str):
        return get_metric(m)
    raise UsageError(f"a metric must be a Metric or a metric name, not {type(m).__qualname__}")


def normalize_metrics(metrics: MetricsLike) -> tuple[Metric, ...]:
    """Turn a metric, a metric name, or a list of them into a tuple of ``Metric``."""
    if type(metrics) is tuple and all(type(m) is Metric for m in metrics):
        return metrics  # already normal: the common case, once per sample
    if metrics is None:
        return ()
    if isinstance(metrics, (Metric, str)):
        return (_as_metric(metrics),)
    try:
        items = list(metrics)
    except TypeError:
        raise UsageError(
            f"metrics must be a Metric or a list of them, not {type(metrics).__qualname__}"
        ) from None
    return tuple(_as_metric(m) for m in items)


@dataclass(frozen=True, init=False)
class Score:
    """One named value of a sample's result and the metrics that summarise it.

    ``metrics`` may be given as a single ``Metric``, a metric name, or a list;
    it is always stored as a tuple of ``Metric``.
    """

    name: str
    value: Any
    metrics: tuple[Metric, ...]
    # What the evaluator looked at (the built-ins: ``result``, ``expected``,
    # ``schema``), as in the original doteval. Kept on the object for the
    # evaluation's own code; not stored, and not part of equality.
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __init__(
        self, name: str, value: Any, metrics: MetricsLike = (), metadata: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise UsageError(f"a score name must be a non-empty string, not {name!r}")
        # frozen: the dataclass's own __init__ would use object.__setattr__ too
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "metrics", normalize_metrics(metrics))
        object.__setattr__(self, "metadata", dict(metadata or {}))

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]


@dataclass(frozen=True)
class ErrorInfo:
    """What went wrong in a sample: exception class name, message and traceback text."""

    type: str
    message: str
    traceback: str = ""

    def to_record(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}


# How an error with no exception type (``Result(error="...")``, type ``""`` in the
# record) is named where errors are listed by type: its source, not a made-up class.
MESSAGE_ERROR = "Result(error=...)"


def error_kind(error: Mapping[str, Any]) -> str:
    """The name an error record is listed under: its type, or ``MESSAGE_ERROR``."""
    return str(error.get("type") or MESSAGE_ERROR)


def error_line(error: Mapping[str, Any]) -> str:
    """An error record as one line: ``Type: message``, or the message alone when the
    error was given as a message (it has no type)."""
    kind, message = str(error.get("type") or ""), str(error.get("message") or "")
    return f"{kind}: {message}" if kind else message


def _encoded(value: Any) -> bytes:
    if type(value) is str:
        data = value.encode("utf-8", "surrogatepass")
        return b"s%d:%s" % (len(data), data)
    if value is None:
        return b"N"
    if value is True:
        return b"T"
    if value is False:
        return b"F"
    return encode(value)


def _plain_scalar(value: Any) -> Any:
    # numpy scalars (np.bool_, np.float64) would otherwise be neither bool nor
    # number here; recognised without importing numpy.
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _score_from_value(name: str, value: Any) -> Score:
    """The Score for a bare value: bool -> accuracy, number -> mean, else no metric."""
    value = _plain_scalar(value)
    if isinstance(value, Score):
        return Score(name, value.value, value.metrics, value.metadata)
    if isinstance(value, bool):
        return Score(name, value, (accuracy,))
    if _is_number(value):
        return Score(name, value, (mean,))
    return Score(name, value, ())


def _qualified_name(cls: type) -> str:
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class Result:
    """The outcome of one sample: scores, the prompt and response, an error, metadata.

    ``Result(*values, prompt=, response=, scores=, error=, metadata=)``:

    - each positional value is a ``Score``, a bool (-> ``Score("score", v,
      accuracy)``) or a number (-> ``Score("score", v, mean)``);
    - ``scores`` maps names to values: a bool gets ``accuracy``, a number
      ``mean``, a ``Score`` is renamed to the key, anything else (str, None,
      lists...) is kept as a value without metrics;
    - ``error`` is a message (or an ``ErrorInfo``, see ``from_exception``).

    Score names are unique: a repeated name gets a suffix (``score``,
    ``score_2``, ``score_3``...), positional scores being named first.
    """

    __slots__ = ("error_info", "metadata", "prompt", "response", "scores")

    scores: tuple[Score, ...]
    prompt: Any
    response: Any
    error_info: ErrorInfo | None
    metadata: dict[str, Any]

    def __init__(
        self,
        *values: Score | bool | float,
        prompt: Any = None,
        response: Any = None,
        scores: Mapping[str, Any] | None = None,
        error: str | ErrorInfo | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        built: list[Score] = []
        for v in values:
            v = _plain_scalar(v)
            if isinstance(v, Score):
                built.append(v)
            elif isinstance(v, bool) or _is_number(v):
                built.append(_score_from_value("score", v))
            else:
                raise UsageError(
                    f"Result() takes Score objects, bools or numbers as positional "
                    f"arguments, not {type(v).__qualname__}",
                    hint="pass other values by name: Result(scores={'name': value})",
                )
        if scores is not None:
            if not isinstance(scores, Mapping):
                raise UsageError(
                    f"Result(scores=...) must be a dict of name -> value, not {type(scores).__qualname__}"
                )
            for name, v in scores.items():
                if not isinstance(name, str):
                    raise UsageError(f"score names must be strings, not {name!r}")
                built.append(_score_from_value(name, v))
        self.scores = _unique_names(built)

        self.prompt = prompt
        self.response = response

        if error is None or isinstance(error, ErrorInfo):
            self.error_info = error
        elif isinstance(error, str):
            self.error_info = ErrorInfo("", error)
        else:
            raise UsageError(
                f"Result(error=...) must be a message string, not {type(error).__qualname__}",
                hint="for an exception use Result.from_exception(exc)",
            )

        if metadata is None:
            self.metadata = {}
        elif isinstance(metadata, Mapping):
            self.metadata = dict(metadata)
        else:
            raise UsageError(f"Result(metadata=...) must be a dict, not {type(metadata).__qualname__}")

    # -- views ------------------------------------------------------------

    @property
    def error(self) -> str | None:
        """The error message, or None when the sample ran without error."""
        return None if self.error_info is None else self.error_info.message

    @property
    def ok(self) -> bool:
        """True when the sample ran without error."""
        return self.error_info is None

    @property
    def score_values(self) -> dict[str, Any]:
        """Score name -> value."""
        return {s.name: s.value for s in self.scores}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable metadata: not hashable

    def __repr__(self) -> str:
        parts = [f"{s.name}={s.value!r}" for s in self.scores]
        if self.error_info is not None:
            parts.append(f"error={self.error_info.message!r}")
        return f"Result({', '.join(parts)})"

    # -- construction from an exception -------------------------------------

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        prompt: Any = None,
        response: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Result:
        """An error result for ``exc``: qualified class name, message, traceback text."""
        type_name = _qualified_name(type(exc))
        try:
            message = str(exc)
        except Exception:
            message = f"<unprintable {type_name}>"
        try:
            tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
        except Exception:  # pragma: no cover - same, deeper in the chain
            tb = ""
        return cls(
            prompt=prompt,
            response=response,
            error=ErrorInfo(type_name, message, tb),
            metadata=metadata,
        )

    # -- stored form ------------------------------------------------------

    def to_record(self, *, check: bool = True) -> dict[str, Any]:
        """The plain data stored for this result (format in the module docstring).

        Raises ``EncodingError`` naming the field when a value has no canonical
        encoding; ``check=False`` leaves that to the caller's own encoding (the
        runner encodes the record anyway, and checks only when that fails).
        """
        record: dict[str, Any] = {
            "scores": [{"name": s.name, "value": s.value, "metrics": s.metric_names} for s in self.scores],
            "prompt": self.prompt,
            "response": self.response,
            "error": None if self.error_info is None else self.error_info.to_record(),
            "metadata": dict(self.metadata),
        }
        if not check:
            return record
        _check_encodable("result field 'prompt'", self.prompt)
        _check_encodable("result field 'response'", self.response)
        for s in self.scores:
            _check_encodable(f"result field 'scores' (score {s.name!r})", s.value)
        _check_encodable("result field 'metadata'", self.metadata)
        return record

    def record_bytes(self, duration: float, attempts: int = 1) -> bytes:
        """The canonical encoding of the stored record: ``to_record(check=False)`` with
        ``type``, ``v``, ``duration`` and ``attempts`` (how many times the sample was
        called, retries of transient errors included), built straight from the fields (the
        run's hot path; a property test holds it to ``encode`` byte for byte). Raises
        ``EncodingError`` when a value cannot be encoded."""
        error = self.error_info
        parts = [
            b"d9:s1:vi1;s4:types6:results5:error",
            b"N" if error is None else encode(error.to_record()),
            b"s6:prompt",
            _encoded(self.prompt),
            b"s6:scoresl%d:" % len(self.scores),
        ]
        for score in self.scores:
            name = score.name.encode("utf-8", "surrogatepass")
            parts.append(b"d3:s4:names%d:%ss5:value" % (len(name), name))
            parts.append(_encoded(score.value))
            parts.append(b"s7:metricsl%d:" % len(score.metrics))
            for metric in score.metrics:
                m = metric.name.encode("utf-8", "surrogatepass")
                parts.append(b"s%d:%s" % (len(m), m))
        parts.append(b"s8:attemptsi%d;s8:duration" % attempts + encode(float(duration)))
        parts.append(b"s8:metadata" + (encode(dict(self.metadata)) if self.metadata else b"d0:"))
        parts.append(b"s8:response")
        parts.append(_encoded(self.response))
        return b"".join(parts)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Result:
        """Rebuild a result from ``to_record()`` data (possibly decoded from the store).

        Unknown keys are ignored so that newer records stay readable. A record
        of the wrong shape raises ``CorruptStoreError``.
        """
        if not isinstance(record, Mapping):
            raise CorruptStoreError(f"result record is a {type(record).__qualname__}, not a dict")
        raw_scores = record.get("scores") or []
        if not isinstance(raw_scores, (list, tuple)):
            raise CorruptStoreError("result record: 'scores' is not a list")
        scores: list[Score] = []
        for item in raw_scores:
            if (
                not isinstance(item, Mapping)
                or not isinstance(item.get("name"), str)
                or not item["name"]
                or not isinstance(item.get("metrics", []), (list, tuple))
                or not all(isinstance(n, str) for n in item.get("metrics", []))
            ):
                raise CorruptStoreError(f"result record: malformed score entry {item!r:.200}")
            metrics = tuple(_metric_ref(n) for n in item.get("metrics", []))
            scores.append(Score(item["name"], item.get("value"), metrics))

        raw_error = record.get("error")
        error: ErrorInfo | None
        if raw_error is None:
            error = None
        elif isinstance(raw_error, Mapping) and isinstance(raw_error.get("message"), str):
            error = ErrorInfo(
                str(raw_error.get("type") or ""),
                raw_error["message"],
                str(raw_error.get("traceback") or ""),
            )
        else:
            raise CorruptStoreError(f"result record: malformed error {raw_error!r:.200}")

        metadata = record.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise CorruptStoreError("result record: 'metadata' is not a dict")

        result = cls(
            prompt=record.get("prompt"),
            response=record.get("response"),
            error=error,
            metadata=metadata,
        )
        # Stored names are already unique; setting them directly keeps them
        # exactly as written (no re-suffixing, no re-deriving of metrics).
        result.scores = tuple(scores)
        return result


# The user-facing fields of a stored record, in the order every view shows them.
RESULT_FIELDS = ("item", "prompt", "response", "scores", "error", "metadata", "duration", "attempts")


def result_fields(
    record: Mapping[str, Any], columns: Sequence[str] | None = None, fields: Sequence[str] = RESULT_FIELDS
) -> dict[str, Any]:
    """A stored result record (``to_record()`` plus ``item``, ``duration``, ``attempts``) as
    the fields a user sees, restricted to ``fields`` and in that order.

    ``scores`` becomes a dict of name -> value; ``item`` a dict of column -> value when the
    evaluation's ``columns`` are given (else the stored tuple); a missing ``metadata`` is
    ``{}``; ``attempts`` is ``None`` for records written before doteval counted them.
    Every view of a sample (show, export, diff, the report, ``doteval.storage``) reads
    records through this one function."""
    item = record.get("item")
    every = {
        "item": item if columns is None else dict(zip(columns, item or ())),
        "prompt": record.get("prompt"),
        "response": record.get("response"),
        "scores": {s["name"]: s["value"] for s in record.get("scores") or []},
        "error": record.get("error") or None,
        "metadata": record.get("metadata") or {},
        "duration": record.get("duration"),
        "attempts": record.get("attempts"),
    }
    return every if fields is RESULT_FIELDS else {f: every[f] for f in fields}


def _unique_names(scores: list[Score]) -> tuple[Score, ...]:
    taken = {s.name for s in scores}
    seen: set[str] = set()
    out: list[Score] = []
    for s in scores:
        if s.name in seen:
            n = 2
            while f"{s.name}_{n}" in taken:
                n += 1
            new_name = f"{s.name}_{n}"
            taken.add(new_name)
            s = Score(new_name, s.value, s.metrics, s.metadata)
        seen.add(s.name)
        out.append(s)
    return tuple(out)


def _check_encodable(field_name: str, value: Any) -> None:
    try:
        encode(value)
    except EncodingError as e:
        raise EncodingError(
            f"cannot store {field_name}: {e.message}", type_name=e.type_name, path=e.path
        ) from e


def to_result(value: Any) -> Result:
    """Turn what an evaluation returned into a ``Result``.

    ``Result`` -> itself; ``Score``, bool or number -> ``Result(value)``;
    dict -> ``Result(scores=value)``; a list or tuple of ``Score`` ->
    ``Result(*value)``. Anything else raises ``UsageError`` naming its type.
    """
    value = _plain_scalar(value)
    if isinstance(value, Result):
        return value
    if isinstance(value, (Score, bool)) or _is_number(value):
        return Result(value)
    if isinstance(value, Mapping):
        return Result(scores=value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Score) for v in value):
        return Result(*value)
    if value is None:
        raise UsageError(
            "the evaluation returned None",
            hint="return a Result, a Score, a bool, a number or a dict of scores",
        )
    raise UsageError(
        f"the evaluation returned a {type(value).__qualname__}, which is not a result",
        hint="return a Result, a Score, a bool, a number or a dict of scores",
    )


__all__ = [
    "MESSAGE_ERROR",
    "RESULT_FIELDS",
    "ErrorInfo",
    "MetricsLike",
    "Result",
    "Score",
    "normalize_metrics",
    "result_fields",
    "to_result",
]
