"""A report as one self-contained HTML file.

The page is a Jinja2 template (autoescaping on) with its stylesheet and script
inlined; it loads nothing from anywhere (a Content-Security-Policy says so to
the browser too). The header, tables and charts are written into the page; the
sample table is drawn by the script from two JSON data islands
(``<script type="application/json">``): ``report-data`` (the summary) and
``report-rows`` (the rows, gzip-compressed and base64-encoded when large, read
back with the browser's ``DecompressionStream``). In the islands every ``<``,
``>`` and ``&`` is a JSON ``\\u`` escape, so no value from the store can end
the element (``</script>``) or open a comment; the script puts every value on
the page with ``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from doteval._operations.output_files import TEXT_ERRORS
from doteval._operations.report import charts
from doteval._operations.report.charts import fmt, signed
from doteval._operations.report.data import Report, short_node_id
from doteval._repository.scores import coverage
from doteval._text import format_duration, format_param
from doteval._version import __version__

COMPRESS_ABOVE = 64 * 1024  # rows JSON larger than this is gzipped (bytes)
_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")


def island_json(value: Any) -> str:
    """JSON text safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _UNSAFE_RE.sub(lambda m: _UNSAFE[m.group(0)], text)


def encode_rows(rows: dict[str, Any], *, compress: bool | None = None) -> dict[str, Any]:
    """The rows island's document: the rows as JSON, or gzip+base64 of that JSON."""
    text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if compress is None:
        compress = len(text) > COMPRESS_ABOVE
    if not compress:
        return {"encoding": "json", "data": rows}
    # a lone surrogate becomes its JSON escape (\ud800), as in the uncompressed island
    packed = gzip.compress(text.encode("utf-8", TEXT_ERRORS), compresslevel=9, mtime=0)
    return {"encoding": "gzip+base64", "data": base64.b64encode(packed).decode("ascii")}


def decode_rows(document: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``encode_rows`` (what the page's script does)."""
    if document["encoding"] == "json":
        return dict(document["data"])
    if document["encoding"] == "gzip+base64":
        return dict(json.loads(gzip.decompress(base64.b64decode(document["data"])).decode("utf-8")))
    raise ValueError(f"unknown rows encoding {document['encoding']!r}")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("doteval._operations.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["signed"] = signed
    env.filters["short"] = short_node_id
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else fmt(v)
    env.filters["duration"] = lambda seconds: format_duration(seconds, tenths_below=10)
    env.filters["px"] = lambda v: f"{v:.1f}".rstrip("0").rstrip(".") if isinstance(v, float) else v
    return env


@lru_cache(maxsize=4)
def _asset(name: str) -> str:
    text = (resources.files("doteval._operations.report") / "static" / name).read_text(encoding="utf-8")
    # Inlined as it is: it must not be able to end its own element.
    if "</" in text or "<!--" in text:
        raise AssertionError(f"doteval/report/static/{name} must not contain '</' or '<!--'")
    return text


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def render_html(report: Report, *, compress: bool | None = None) -> str:
    """The report as one HTML document (a ``str``)."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src '{_sha256(js)}'",
            f"style-src '{_sha256(css)}'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    context: dict[str, Any] = {
        "kind": report.kind,
        "title": report.title,
        "s": report.summary,
        "version": __version__,
        "csp": csp,
        "css": Markup(css),
        "js": Markup(js),
        "data_island": Markup(island_json(report.summary)),
        "rows_island": Markup(island_json(encode_rows(report.rows, compress=compress))),
        "row_count": report.row_count,
    }
    if report.kind == "experiment":
        context.update(_experiment_view(report))
    else:
        context.update(_diff_view(report))
    return _environment().get_template("report.html.j2").render(**context)


# -- view models: what the template writes, already formatted -----------------


def _scored(ev: dict[str, Any]) -> list[str]:
    """Which samples each metric covers, as `doteval show` says it (errors are not scored)."""
    return [
        coverage(m.get("n"), done=ev["done"], errors=ev["errors"], total=ev["total"]) for m in ev["metrics"]
    ]


def _params_text(ev: dict[str, Any]) -> str:
    # The one readable form of params, as `doteval show` writes them.
    params = ", ".join(f"{k}={format_param(v)}" for k, v in sorted(ev["params"].items()))
    if ev["unfingerprintable"]:
        params += (", " if params else "") + "not fingerprinted: " + ", ".join(ev["unfingerprintable"])
    return params or "-"


def _experiment_view(report: Report) -> dict[str, Any]:
    s = report.summary
    evaluations = s["evaluations"]
    several = len(evaluations) > 1
    history = s["history"]
    runs = history["runs"]
    tips_prefix = [f"run {i + 1} of {len(runs)}, {r['time']} ({r['id'][:10]})" for i, r in enumerate(runs)]
    x_labels = (
        (f"run 1 · {runs[0]['time'][:10]}", f"run {len(runs)} · {runs[-1]['time'][:10]}")
        if runs
        else ("", "")
    )
    history_charts = []
    for series in history["series"]:
        name = f"{series['score']}.{series['metric']}"
        title = f"{short_node_id(series['evaluation'])} · {name}" if several else name
        values = series["values"]
        tips = [f"{title}: {fmt(v)}, {tips_prefix[i]}" for i, v in enumerate(values)]
        known = [v for v in values if v is not None]
        unit = series["metric"] == "accuracy" or all(0 <= v <= 1 for v in known)
        history_charts.append(
            {
                "title": title,
                "latest": fmt(values[-1]) if values else "-",
                "chart": charts.line_chart(values, tips, x_labels, label=f"{title} across runs", unit=unit),
            }
        )
    histogram_charts = []
    for h in s["histograms"]:
        ev_name = evaluations[h["evaluation"]]["name"]
        title = f"{ev_name} · {h['score']}" if several else h["score"]
        if h["kind"] == "bool":
            t = h["bins"][1][1]
            note = f"{t:,} true of {h['n']:,} ({100 * t / h['n']:.1f}%)" if h["n"] else ""
        else:
            note = f"{h['n']:,} values, min {fmt(h['min'])}, mean {fmt(h['mean'])}, max {fmt(h['max'])}"
        histogram_charts.append(
            {
                "title": title,
                "note": note,
                "chart": charts.histogram_chart(h, label=f"distribution of {title}"),
            }
        )
    header = s["header"]
    return {
        "h": header,
        "evaluations": [{**ev, "params_text": _params_text(ev), "scored": _scored(ev)} for ev in evaluations],
        "history_charts": history_charts,
        "run_count": len(runs),
        "histogram_charts": histogram_charts,
        "errors": s["errors"],
        "error_total": sum(e["count"] for e in s["errors"]),
        "fingerprints": sorted({ev["fingerprint"][:12] for ev in evaluations}),
    }


def _state(m: dict[str, Any]) -> str:
    if m["significant_regression"]:
        return "regressed"
    if m["significant"] and (m["delta"] or 0) > 0:
        return "improved"
    return "same"


def _diff_view(report: Report) -> dict[str, Any]:
    s = report.summary
    diff = s["diff"]
    several = len(diff["evaluations"]) > 1
    evaluations = []
    forest_rows = []
    count_rows = []
    for e in diff["evaluations"]:
        metrics = []
        for m in e["metrics"]:
            state = _state(m)
            name = f"{m['score']}.{m['metric']}"
            label = f"{short_node_id(e['evaluation'])} · {name}" if several else name
            ci = m["ci"]
            p = "-" if m["p_value"] is None else f"{m['p_value']:.3g}"
            metrics.append(
                {
                    **m,
                    "name": name,
                    "state": state,
                    "ci_text": f"[{signed(ci[0])}, {signed(ci[1])}]",
                    "p_text": p,
                }
            )
            tip = (
                f"{label}: A {fmt(m['a'])}, B {fmt(m['b'])}, delta {signed(m['delta'])}, "
                f"{round(100 * m['confidence'])}% CI [{signed(ci[0])}, {signed(ci[1])}], p {p}, n {m['n']}"
            )
            forest_rows.append({"label": label, "delta": m["delta"], "ci": ci, "state": state, "tip": tip})
            if m["binary"]:
                count_rows.append(
                    {
                        "label": label,
                        "improved": m["improved"],
                        "unchanged": m["unchanged"],
                        "regressed": m["regressed"],
                    }
                )
        evaluations.append({**e, "short": short_node_id(e["evaluation"]), "metrics_view": metrics})
    confidence = next((m["confidence"] for e in diff["evaluations"] for m in e["metrics"]), 0.95)
    return {
        "a": s["a"],
        "b": s["b"],
        "evaluations": evaluations,
        "confidence": round(100 * confidence),
        "forest": charts.forest_chart(forest_rows, label="delta B - A per metric with confidence intervals")
        if forest_rows
        else None,
        "counts": charts.counts_chart(
            count_rows, label="improved, unchanged and regressed samples per metric"
        )
        if count_rows
        else None,
        "changed": s["changed"],
    }
