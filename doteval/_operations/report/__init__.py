"""Reports: one experiment, or a comparison of two, as one self-contained HTML file.

    from doteval._objects import Store
    from doteval._operations.report import experiment_report, diff_report, render_html

    html = render_html(experiment_report(Store(), "math_v1"))
    html = render_html(diff_report(Store(), "math_v1", "math_v2"))

``experiment_report`` / ``diff_report`` read the store and return a
``Report`` (plain data); ``render_html`` turns it into the page. The page opens
offline: no fonts, scripts or styles from anywhere else.

An operation, not an adapter: it reads the store and renders with jinja2 alone
(no typer, no rich), so ``doteval report`` and the public
``StorageBackend.write_report`` / ``report_html`` of ``doteval.storage`` share it.
Users reach it through ``doteval.storage``; this package is internal.
"""

from __future__ import annotations

import re

from doteval._operations.report.data import Report, diff_report, experiment_report
from doteval._operations.report.render import decode_rows, render_html

__all__ = ["Report", "decode_rows", "default_filename", "diff_report", "experiment_report", "render_html"]


def _safe(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=,@~-]", "_", spec) or "report"


def default_filename(name: str, vs: str | None = None) -> str:
    """``doteval-report-NAME.html``, or ``doteval-diff-A-vs-B.html`` for a comparison."""
    if vs is None:
        return f"doteval-report-{_safe(name)}.html"
    return f"doteval-diff-{_safe(name)}-vs-{_safe(vs)}.html"
