"""Small charts as shape lists, drawn as inline SVG by the page template.

Each function returns ``{"w", "h", "label", "shapes"}``: a view box, a text
alternative, and shapes (``line``, ``rect``, ``polyline``, ``circle``,
``text``) in view-box units with a CSS class (``c``) and, for marks, a tooltip
(``tip``). No markup is built here: the template writes the elements with
autoescaping, so labels taken from the store are escaped like any other value.
"""

from __future__ import annotations

import math
from typing import Any

Chart = dict[str, Any]


def fmt(value: Any) -> str:
    """A number as the CLI prints it: 4 significant digits; ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4g}"


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    steps = [m * mag for m in (0.5, 1, 2, 2.5, 5, 10)]
    step = min(steps, key=lambda st: (abs((hi - lo) / st - count), -st))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _range(values: list[float], *, unit: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        pad = abs(lo) * 0.1 or (0.1 if unit else 1.0)
        lo, hi = lo - pad, hi + pad
    else:
        pad = (hi - lo) * 0.15
        lo, hi = lo - pad, hi + pad
    if unit:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    ticks = nice_ticks(lo, hi)
    return min(lo, ticks[0]), max(hi, ticks[-1])


def line_chart(
    values: list[float | None], tips: list[str], x_labels: tuple[str, str], *, label: str, unit: bool
) -> Chart:
    """A metric across runs, oldest first: one point per run, gaps where it had no value."""
    w, h = 360, 170
    left, right, top, bottom = 46, 14, 12, 30
    pw, ph = w - left - right, h - top - bottom
    shapes: list[dict[str, Any]] = []
    known = [v for v in values if v is not None]
    if not known:
        shapes.append({"t": "text", "x": w / 2, "y": h / 2, "text": "no value in any run", "c": "muted mid"})
        return {"w": w, "h": h, "label": label, "shapes": shapes}
    lo, hi = _range(known, unit=unit)
    n = len(values)

    def x(i: int) -> float:
        return left + (pw / 2 if n == 1 else pw * i / (n - 1))

    def y(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    for t in nice_ticks(lo, hi):
        shapes.append({"t": "line", "x1": left, "y1": y(t), "x2": left + pw, "y2": y(t), "c": "grid"})
        shapes.append({"t": "text", "x": left - 6, "y": y(t) + 4, "text": fmt(t), "c": "tick end"})
    shapes.append({"t": "line", "x1": left, "y1": top + ph, "x2": left + pw, "y2": top + ph, "c": "axis"})
    segment: list[str] = []
    segments = []
    for i, v in enumerate(values):
        if v is None:
            if segment:
                segments.append(segment)
            segment = []
        else:
            segment.append(f"{x(i):.1f},{y(v):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) > 1:
            shapes.append({"t": "polyline", "points": " ".join(seg), "c": "series"})
    for i, v in enumerate(values):
        if v is not None:
            last = i == n - 1
            shapes.append(
                {
                    "t": "circle",
                    "cx": x(i),
                    "cy": y(v),
                    "r": 4.5 if last else 3,
                    "c": "point last" if last else "point",
                    "tip": tips[i],
                }
            )
    shapes.append(
        {"t": "text", "x": x(0), "y": h - 8, "text": x_labels[0], "c": "tick start" if n > 1 else "tick mid"}
    )
    if n > 1:
        shapes.append({"t": "text", "x": x(n - 1), "y": h - 8, "text": x_labels[1], "c": "tick end"})
    return {"w": w, "h": h, "label": label, "shapes": shapes}


def histogram_chart(hist: dict[str, Any], *, label: str) -> Chart:
    """Bars of a score's distribution (see ``data.histogram``)."""
    w, h = 360, 170
    left, right, top, bottom = 46, 14, 12, 30
    pw, ph = w - left - right, h - top - bottom
    bins = hist["bins"]
    counts = [b[-1] for b in bins]
    top_count = max(max(counts), 1)
    ticks = [t for t in nice_ticks(0, top_count, 3) if t == int(t)]
    hi = max(top_count, ticks[-1]) if ticks else top_count
    shapes: list[dict[str, Any]] = []

    def y(c: float) -> float:
        return top + ph - c / hi * ph

    for t in ticks:
        shapes.append({"t": "line", "x1": left, "y1": y(t), "x2": left + pw, "y2": y(t), "c": "grid"})
        shapes.append({"t": "text", "x": left - 6, "y": y(t) + 4, "text": fmt(int(t)), "c": "tick end"})
    k = len(bins)
    slot = pw / k
    gap = min(slot * 0.15, 6) if k > 1 else slot * 0.3
    kind = hist["kind"]
    for i, b in enumerate(bins):
        count = b[-1]
        if kind == "bool":
            what = b[0]
        elif hist.get("unit"):
            what = fmt(b[0])
        else:
            what = f"{fmt(b[0])} to {fmt(b[1])}"
        share = f"{100 * count / hist['n']:.1f}%" if hist["n"] else "0%"
        x0 = left + i * slot + gap / 2
        shapes.append(
            {
                "t": "rect",
                "x": x0,
                "y": y(count),
                "w": max(slot - gap, 1),
                "h": max(top + ph - y(count), 0),
                "c": f"bar {b[0]}" if kind == "bool" else "bar",
                "tip": f"{what}: {count} ({share})",
            }
        )
        if kind == "bool" or (hist.get("unit") and k <= 12):
            shapes.append(
                {"t": "text", "x": x0 + (slot - gap) / 2, "y": h - 10, "text": what, "c": "tick mid"}
            )
    shapes.append({"t": "line", "x1": left, "y1": top + ph, "x2": left + pw, "y2": top + ph, "c": "axis"})
    if kind != "bool" and not (hist.get("unit") and k <= 12):
        shapes.append({"t": "text", "x": left, "y": h - 10, "text": fmt(hist["min"]), "c": "tick start"})
        shapes.append({"t": "text", "x": left + pw, "y": h - 10, "text": fmt(hist["max"]), "c": "tick end"})
    return {"w": w, "h": h, "label": label, "shapes": shapes}


def forest_chart(rows: list[dict[str, Any]], *, label: str) -> Chart:
    """Delta B - A with its confidence interval, one row per compared metric.

    ``rows``: dicts with ``label``, ``delta``, ``ci`` ([low, high]), ``state``
    (``regressed``, ``improved`` or ``same``) and ``tip``.
    """
    row_h = 30
    w = 720
    left, right, top, bottom = 250, 24, 10, 30
    h = top + bottom + row_h * max(len(rows), 1)
    pw = w - left - right
    extent = 0.0
    for r in rows:
        for v in [r["delta"], *(r["ci"] or [])]:
            if v is not None and math.isfinite(v):
                extent = max(extent, abs(v))
    extent = extent * 1.15 or 0.05
    ticks = nice_ticks(-extent, extent, 4)
    extent = max(extent, abs(ticks[0]), abs(ticks[-1]))

    def x(v: float) -> float:
        return left + (v + extent) / (2 * extent) * pw

    shapes: list[dict[str, Any]] = []
    for t in ticks:
        shapes.append({"t": "line", "x1": x(t), "y1": top, "x2": x(t), "y2": h - bottom, "c": "grid"})
        shapes.append({"t": "text", "x": x(t), "y": h - 10, "text": signed(t) if t else "0", "c": "tick mid"})
    shapes.append({"t": "line", "x1": x(0), "y1": top, "x2": x(0), "y2": h - bottom, "c": "zero"})
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        shapes.append({"t": "text", "x": left - 10, "y": cy + 4, "text": r["label"], "c": "label end"})
        if r["delta"] is None:
            shapes.append(
                {"t": "text", "x": x(0) + 6, "y": cy + 4, "text": "no paired values", "c": "muted start"}
            )
            continue
        lo, hi = r["ci"] if r["ci"] and None not in r["ci"] else (r["delta"], r["delta"])
        shapes.append({"t": "line", "x1": x(lo), "y1": cy, "x2": x(hi), "y2": cy, "c": f"ci {r['state']}"})
        for end in (lo, hi):
            shapes.append(
                {"t": "line", "x1": x(end), "y1": cy - 5, "x2": x(end), "y2": cy + 5, "c": f"ci {r['state']}"}
            )
        shapes.append(
            {
                "t": "circle",
                "cx": x(r["delta"]),
                "cy": cy,
                "r": 5,
                "c": f"point {r['state']}",
                "tip": r["tip"],
            }
        )
    return {"w": w, "h": h, "label": label, "shapes": shapes}


def counts_chart(rows: list[dict[str, Any]], *, label: str) -> Chart:
    """Improved / unchanged / regressed samples as one stacked bar per metric."""
    row_h = 30
    w = 720
    left, right, top, bottom = 250, 24, 10, 10
    h = top + bottom + row_h * max(len(rows), 1)
    pw = w - left - right
    shapes: list[dict[str, Any]] = []
    for i, r in enumerate(rows):
        cy = top + row_h * i
        shapes.append(
            {"t": "text", "x": left - 10, "y": cy + row_h / 2 + 4, "text": r["label"], "c": "label end"}
        )
        total = r["improved"] + r["unchanged"] + r["regressed"]
        if not total:
            continue
        x0 = float(left)
        for part in ("improved", "unchanged", "regressed"):
            count = r[part]
            if not count:
                continue
            width = pw * count / total
            shapes.append(
                {
                    "t": "rect",
                    "x": x0,
                    "y": cy + 6,
                    "w": width,
                    "h": row_h - 12,
                    "c": f"bar {part}",
                    "tip": f"{r['label']}: {count} {part} ({100 * count / total:.1f}%)",
                }
            )
            if width > 36:
                shapes.append(
                    {
                        "t": "text",
                        "x": x0 + width / 2,
                        "y": cy + row_h / 2 + 4,
                        "text": str(count),
                        "c": f"inbar mid {part}",
                    }
                )
            x0 += width
    return {"w": w, "h": h, "label": label, "shapes": shapes}
