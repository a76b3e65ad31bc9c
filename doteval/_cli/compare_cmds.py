"""Commands that compare or export experiments: diff, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from doteval._cli.common import JsonOption, StoreOption, app, console, open_store, print_json
from doteval._cli.console.tables import fitted, short_node_id
from doteval._operations.diff import DiffReport, changed_samples, diff_experiments
from doteval._operations.export import FORMATS, export
from doteval._operations.output_files import output_problem, replace_file
from doteval._repository.history import resolve
from doteval._repository.results import error_line
from doteval._text import clip_text, format_value


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.4g}"


def _value(x: float | None) -> str:
    return "-" if x is None else format_value(x)


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="First experiment: NAME, NAME@REV or NAME~N.")],
    b: Annotated[str, typer.Argument(help="Second experiment: NAME, NAME@REV or NAME~N.")],
    samples: Annotated[
        bool, typer.Option("--samples", help="List the changed samples with both responses.")
    ] = False,
    regressions: Annotated[
        bool, typer.Option("--regressions", help="List only the samples that got worse.")
    ] = False,
    fail_on_regression: Annotated[
        bool,
        typer.Option("--fail-on-regression", help="Exit 1 when a metric regressed significantly (for CI)."),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the paired bootstrap.")] = 0,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Compare two experiments sample by sample: deltas, confidence intervals, McNemar tests."""
    st = open_store(store, reading=True)
    report = diff_experiments(st, a, b, seed=seed)
    listed = (
        list(changed_samples(st, report, regressions_only=regressions)) if samples or regressions else None
    )
    if as_json:
        doc = report.to_json()
        if listed is not None:
            doc["samples"] = listed
        print_json(doc)
    else:
        _print_report(report)
        if listed is not None:
            _print_samples(listed, regressions)
    if fail_on_regression and report.regressions:
        raise typer.Exit(1)


def _print_report(report: DiffReport) -> None:
    out = console()
    out.print(f"A: {escape(report.a.label)} ({report.a.manifest_id[:10]})")
    out.print(f"B: {escape(report.b.label)} ({report.b.manifest_id[:10]})")
    if report.nothing_in_common:
        out.print()
        out.print("A and B have no samples in common: no dataset item was evaluated in both.")
    for d in report.evaluations:
        out.print()
        out.print(
            f"[bold]{escape(short_node_id(d.name))}[/]: {len(d.pairs)} paired samples"
            f", {d.only_a} only in A, {d.only_b} only in B"
        )
        if d.metrics:
            out.print(_metrics_view(d.metrics, out.width))
        elif d.pairs:
            out.print("  no score that both sides summarise with a mean (accuracy or mean)")
        if d.code:
            out.print("  code differs:")
            for line in d.code:
                style = (
                    "bold"
                    if line.startswith(("--- ", "+++ "))
                    else "red"
                    if line.startswith("-")
                    else "green"
                    if line.startswith("+")
                    else "cyan"
                    if line.startswith("@@")
                    else None
                )
                out.print(
                    f"    [{style}]{escape(line)}[/]" if style else f"    {escape(line)}", soft_wrap=True
                )
        elif d.code_changed:
            out.print("  code differs (no source recorded)")
        if d.params:
            out.print("  params differ:")
            for line in d.params:
                out.print(f"    {escape(line)}")
    for node in report.only_in_a:
        out.print(f"only in A: {escape(node)}")
    for node in report.only_in_b:
        out.print(f"only in B: {escape(node)}")
    out.print()
    if report.regressions:
        names = ", ".join(f"{short_node_id(e.name)} {m.score}.{m.metric}" for e, m in report.regressions)
        out.print(f"[red]Significant regression: {escape(names)}[/]")
    elif not report.nothing_in_common:
        out.print("No significant regression (alpha 0.05).")


def _metrics_view(metrics: list[Any], width: int) -> RenderableType:
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False, collapse_padding=True
    )
    for col, justify in [
        ("Metric", "left"),
        ("A", "right"),
        ("B", "right"),
        ("Delta", "right"),
        ("95% CI", "right"),
        ("Better", "right"),
        ("Worse", "right"),
        ("Same", "right"),
        ("p", "right"),
    ]:
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    cells = [_metric_cells(m) for m in metrics]
    for m, row in zip(metrics, cells):
        c = m.comparison
        style = "red" if m.regressed else "green" if m.significant and c.delta > 0 else None
        table.add_row(*(Text(cell) for cell in row), style=style)

    def stacked() -> list[str]:
        lines = []
        for label, a, b, delta, ci, better, worse, same, p in cells:
            lines.append(f"{label}: A {a}, B {b}, delta {delta}")
            lines.append(f"  95% CI {ci}; better {better}, worse {worse}, same {same}; p {p}")
        return lines

    return fitted(table, stacked, width)


def _metric_cells(m: Any) -> list[str]:
    c = m.comparison
    j = m.to_json()
    return [
        f"{m.score}.{m.metric}",
        _value(j["a"]),
        _value(j["b"]),
        _signed(j["delta"]),
        f"[{_signed(j['ci'][0])}, {_signed(j['ci'][1])}]",
        str(c.improved),
        str(c.regressed),
        str(c.unchanged),
        "-" if c.p_value is None else f"{c.p_value:.3g}",
    ]


def _print_samples(listed: list[dict[str, Any]], regressions: bool) -> None:
    out = console()
    out.print()
    if not listed:
        out.print("No sample got worse." if regressions else "No sample changed.")
        return
    table = Table(show_lines=True, header_style="bold")
    table.add_column("Item", overflow="fold")
    table.add_column("A response", overflow="fold")
    table.add_column("B response", overflow="fold")
    table.add_column("A scores", overflow="fold")
    table.add_column("B scores", overflow="fold")
    for s in listed:
        style = "red" if s["direction"] == "regressed" else "green" if s["direction"] == "improved" else None
        table.add_row(
            escape(clip_text(", ".join(f"{k}={v}" for k, v in s["item"].items()))),
            escape(clip_text(_side(s["a"]))),
            escape(clip_text(_side(s["b"]))),
            escape(clip_text(_scores(s["a"]))),
            escape(clip_text(_scores(s["b"]))),
            style=style,
        )
    out.print(table)


def _side(side: dict[str, Any]) -> str:
    if side["error"]:
        return error_line(side["error"])
    r = side["response"]
    return "" if r is None else str(r)


def _scores(side: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in side["scores"].items())


@app.command("export")
def export_(
    name: Annotated[str, typer.Argument(help="Experiment: NAME, NAME@REV or NAME~N.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)}.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    raw_csv: Annotated[
        bool,
        typer.Option(
            "--raw-csv", help="Write CSV cells exactly, even those a spreadsheet would run as formulas."
        ),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Export every sample (item, scores, response, error, key) as JSON lines, CSV or JSON."""
    problem = output_problem(output) if output is not None else None
    if problem:
        raise typer.BadParameter(problem, param_hint="--output")
    st = open_store(store, reading=True)
    revision = resolve(st, name)
    if fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if raw_csv and fmt != "csv":
        raise typer.BadParameter(
            "goes with --format csv (JSON always holds the exact text)", param_hint="--raw-csv"
        )
    if output is None:
        export(st, revision, fmt, sys.stdout, raw_csv=raw_csv)
        return
    with replace_file(output, newline="" if fmt == "csv" else None) as f:
        count = export(st, revision, fmt, f, raw_csv=raw_csv)
    console().print(f"Wrote {count} samples to {escape(str(output))}.", highlight=False)
