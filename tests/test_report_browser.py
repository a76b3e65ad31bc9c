"""Report pages in a real browser: headless Chromium driven by Playwright.

Each page is opened from a ``file://`` URL, used as a person would (search,
filters, sorting, opening a sample) and checked for what it shows, for console
errors, for requests (only the file itself, ``data:`` and ``blob:`` may be
asked for) and for a ``<script>`` in a response, which must stay text.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the Python
package ``playwright`` (``pip install playwright``; its own browser download,
``playwright install``, is not used). Without them these tests are skipped.
Screenshots are kept under each test's ``tmp_path``; the one in
docs/how-to/img/report.png is written when it is missing (or when
``DOTEVAL_UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need Playwright for Python: pip install playwright"
)

from test_report import INJECTED, INJECTED_ITEM, islands, record  # noqa: E402

from doteval._objects import Store  # noqa: E402
from doteval._operations.report import diff_report, experiment_report, render_html  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "img" / "report.png"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="the browser tests need Debian's chromium at /usr/bin/chromium"
    ),
    # one browser for the module: all of its tests run in one xdist worker
    pytest.mark.xdist_group("report_browser"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A browser tab that records console errors, page errors and every request."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1366, "height": 768}, device_scale_factor=1)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = ""

    def open(self, path: Path) -> Any:
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready]")
        assert self.page.evaluate("document.body.dataset.ready") == "1", self.page.inner_text("#table")
        return self.page

    def search(self, text: str) -> None:
        self.page.fill("#q", text)
        self.page.press("#q", "Enter")

    def count(self) -> str:
        return self.page.inner_text("#row-count")

    def expect_count(self, text: str, timeout: float = 5_000) -> None:
        """The row count reads ``text`` (waited for: the search box waits for typing to pause)."""
        playwright_api.expect(self.page.locator("#row-count")).to_have_text(text, timeout=timeout)

    def rows(self) -> list[str]:
        return self.page.locator(".vt-row").all_inner_texts()

    def check_clean(self) -> None:
        """No console error, no request beyond the file itself, no injected script ran."""
        assert self.errors == []
        others = [u for u in self.requests if u != self.url and not u.startswith(("data:", "blob:"))]
        assert others == [], others
        assert self.requests[0] == self.url
        ran = self.page.evaluate(
            "[typeof window.__pwned, typeof window.__pwned_img, typeof window.__pwned_param]"
        )
        assert ran == ["undefined", "undefined", "undefined"]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Page]:
    page = Page(browser)
    yield page
    page.close()


@pytest.fixture
def store(store_path: Path) -> Store:
    st = Store(store_path)
    record(st, "base", 40, 1)
    record(st, "base", 60, 1)
    record(st, "cand", 60, 2)
    return st


def screenshot(page: Any, path: Path, *, full_page: bool = True) -> None:
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000


def test_experiment_page(tab: Page, store: Store, tmp_path: Path) -> None:
    report = experiment_report(store, "base")
    path = tmp_path / "doteval-report-base.html"
    path.write_text(render_html(report), encoding="utf-8")
    summary, rows = islands(path.read_text(encoding="utf-8"))
    h = summary["header"]
    page = tab.open(path)

    # The header and the metrics, as shown.
    assert page.inner_text("#report-name") == "base"
    assert page.inner_text("#fact-samples").startswith(f"{h['done']} / {h['total']}")
    assert page.inner_text("#fact-errors") == str(h["errors"])
    metrics = page.inner_text("#metrics-table")
    for m in summary["evaluations"][0]["metrics"]:
        assert f"{m['score']}.{m['metric']}" in metrics
        assert f"{m['value']:.4g}" in metrics
    assert page.locator("#history svg.chart").count() == 2  # correct.accuracy and length.mean
    assert page.locator("#history svg circle").count() == 4  # two runs each
    assert page.locator("#distribution svg rect.bar").count() >= 3
    assert "ValueError" in page.inner_text("#errors-table")
    tab.expect_count("60 rows")
    screenshot(page, tmp_path / "experiment.png")

    # Search: the rows that remain are the ones that match.
    tab.search("refused")
    tab.expect_count("3 of 60 rows")
    remaining = tab.rows()
    assert len(remaining) == 3 and all("ValueError: the model refused item" in r for r in remaining)

    # Filters: errors only, failed only, both.
    tab.search("")
    page.check("#f-errors")
    tab.expect_count(f"{h['errors']} of 60 rows")
    assert all("\nerror\n" in f"\n{r}\n" for r in tab.rows())
    page.uncheck("#f-errors")
    page.check("#f-failed")
    failed = rows["status"].count(1)
    tab.expect_count(f"{failed} of 60 rows")
    assert all("false" in r for r in tab.rows())
    page.check("#f-errors")
    tab.expect_count(f"{failed + h['errors']} of 60 rows")
    page.uncheck("#f-errors")
    page.uncheck("#f-failed")

    # The error table's link shows that type's samples.
    page.click("button[data-error-type=KeyError]")
    tab.expect_count("2 of 60 rows")
    page.uncheck("#f-errors")

    # Sorting: by length, then the other way.
    tab.search("")
    header = page.locator(".vt-head button", has_text="length")
    header.click()
    k = rows["score_names"].index("length")
    lengths = [v for v in rows["scores"][k] if v is not None]
    assert tab.rows()[0].split("\n")[0] == next(
        rows["key"][i][:10] for i in range(60) if rows["scores"][k][i] is None
    )  # no value sorts first
    header.click()
    assert tab.rows()[0].strip().endswith(str(max(lengths)))
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    assert header.get_attribute("aria-sort") is None

    # One sample in full: the response with a <script> in it is shown as text.
    tab.search("__pwned")
    tab.expect_count("1 of 60 rows")
    page.locator(".vt-row").first.click()
    detail = page.locator("#detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    assert INJECTED in text
    i = next(i for i, r in enumerate(rows["response"]) if r and INJECTED in r)
    assert rows["item"][i][0] == f"What is {INJECTED_ITEM} + {INJECTED_ITEM}?"
    assert rows["item"][i][0] in text and f"doteval show base --sample {rows['key'][i]}" in text
    assert detail.locator("script, img").count() == 0
    screenshot(page, tmp_path / "experiment-sample.png", full_page=False)
    page.keyboard.press("Escape")
    detail.wait_for(state="hidden")

    # An errored sample shows its error and traceback.
    tab.search("refused item 5")
    page.locator(".vt-row").first.click()
    text = page.inner_text("#detail")
    assert "ValueError: the model refused item 5" in text and "Traceback (most recent call last)" in text
    page.keyboard.press("Escape")

    # The keyboard: arrows move in the table, Enter opens, j goes to the next row, Esc closes.
    tab.search("")
    page.focus(".vt-body")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    detail.wait_for(state="visible")
    second, third = tab.rows()[1].split("\n")[0], tab.rows()[2].split("\n")[0]
    assert second in page.inner_text("#detail-title")
    page.keyboard.press("j")
    assert third in page.inner_text("#detail-title")
    page.keyboard.press("Escape")
    detail.wait_for(state="hidden")

    tab.check_clean()
    if os.environ.get("DOTEVAL_UPDATE_SCREENSHOTS") == "1" or not DOCS_SCREENSHOT.exists():
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        tab.search("")
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, DOCS_SCREENSHOT)


def test_diff_page(tab: Page, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "doteval-diff-base-vs-cand.html"
    path.write_text(render_html(diff_report(store, "base", "cand")), encoding="utf-8")
    summary, rows = islands(path.read_text(encoding="utf-8"))
    page = tab.open(path)

    table = page.inner_text("table.metrics-diff")
    for m in summary["diff"]["evaluations"][0]["metrics"]:
        line = next(x for x in table.split("\n") if x.startswith(f"{m['score']}.{m['metric']}"))
        assert f"{m['delta']:+.4g}" in line and str(m["improved"]) in line and str(m["regressed"]) in line
    assert page.locator("#metrics svg.chart").count() == 2  # the deltas and the counts
    assert "No significant regression" in page.inner_text("#verdict")
    n = rows["n"]
    tab.expect_count(f"{n} rows")
    screenshot(page, tmp_path / "diff.png")

    # Regressions only.
    page.check("#f-regressed")
    regressed = rows["direction"].count(-1)
    tab.expect_count(f"{regressed} of {n} rows")
    shown = tab.rows()
    assert len(shown) == regressed and all(r.startswith("regressed") for r in shown)

    # Search within the regressions: the injected item, whose B answer is wrong.
    tab.search("pwned")
    tab.expect_count(f"1 of {n} rows")
    page.locator(".vt-row").first.click()
    detail = page.locator("#detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    assert text.count(INJECTED) == 2  # A's and B's responses, side by side
    assert detail.locator(".pair > div").count() == 2
    assert detail.locator("script, img").count() == 0
    # The differing words are marked, and only those.
    assert detail.locator(".d-del").count() >= 1 and detail.locator(".d-ins").count() >= 1
    marked = " ".join(detail.locator(".d-ins").all_inner_texts())
    assert "0" in marked and "pwned" not in marked
    screenshot(page, tmp_path / "diff-sample.png", full_page=False)
    page.keyboard.press("Escape")

    page.uncheck("#f-regressed")
    tab.expect_count(f"1 of {n} rows")  # the search still applies
    tab.search("")
    tab.expect_count(f"{n} rows")
    tab.check_clean()


def test_a_hundred_thousand_sample_diff(tab: Page, store_path: Path, tmp_path: Path) -> None:
    big = Store(tmp_path / "big-store")
    record(big, "big_a", 100_000, 1)
    record(big, "big_b", 100_000, 2)
    path = tmp_path / "big.html"
    path.write_text(render_html(diff_report(big, "big_a", "big_b")), encoding="utf-8")
    _, rows = islands(path.read_text(encoding="utf-8"))
    n = rows["n"]
    assert n > 40_000
    page = tab.open(path)
    tab.expect_count(f"{n:,} rows")
    assert page.locator(".vt-row").count() < 100  # only the rows in view are drawn

    # Type into the search box as a person would; the filtered count appears. (A "." is
    # in no sample key, so the rows found are those whose text holds the term.)
    term = "99."
    page.click("#q")
    page.keyboard.type(term, delay=30)
    expected = sum(1 for i in range(n) if term in _haystack(rows, i))
    assert 0 < expected < n
    tab.expect_count(f"{expected:,} of {n:,} rows", timeout=30_000)
    drawn = tab.rows()
    assert 0 < len(drawn) <= expected and all(term in r for r in drawn)
    page.check("#f-regressed")
    both = sum(1 for i in range(n) if rows["direction"][i] == -1 and term in _haystack(rows, i))
    assert 0 < both < expected
    tab.expect_count(f"{both:,} of {n:,} rows")
    assert all(r.startswith("regressed") and term in r for r in tab.rows())

    # Scrolling far down draws the rows there.
    page.uncheck("#f-regressed")
    tab.search("")
    page.locator(".vt-body").evaluate(
        "b => { b.scrollTop = b.scrollHeight; b.dispatchEvent(new Event('scroll')); }"
    )
    page.wait_for_timeout(100)
    last = tab.rows()[-1]
    assert re.search(r"What is \d+ \+ \d\? · \d+", last)
    tab.check_clean()
    screenshot(page, tmp_path / "big.png", full_page=False)


def _haystack(rows: dict[str, Any], i: int) -> str:
    """What the page's search looks through for changed sample i (its text, lowercased)."""

    def text(side: str) -> str:
        err = rows[f"{side}_error"][i]
        return f"Error: {err}" if err else (rows[f"{side}_response"][i] or "")

    item = " · ".join(str(v) for v in rows["item"][i])
    return "\n".join([rows["a_key"][i], rows["b_key"][i], item, text("a"), text("b")]).lower()
