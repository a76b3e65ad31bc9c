"""The report command: one experiment, or A against B, as a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from doteval._cli.common import StoreOption, app, console, open_store
from doteval._operations.output_files import output_problem, replace_file


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="Experiment: NAME, NAME@REV or NAME~N (A, with --vs).")],
    vs: Annotated[
        str | None,
        typer.Option("--vs", metavar="B", help="Compare with this experiment (NAME, NAME@REV or NAME~N)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="HTML file to write (default: doteval-report-NAME.html or doteval-diff-A-vs-B.html).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the paired bootstrap (with --vs).")] = 0,
    store: StoreOption = None,
) -> None:
    """Write an experiment (or a comparison with --vs) as one HTML file that opens offline."""
    from doteval._operations.report import default_filename, diff_report, experiment_report, render_html

    path = output if output is not None else Path(default_filename(name, vs))
    problem = output_problem(path)
    if problem:
        raise typer.BadParameter(problem, param_hint="--output")
    st = open_store(store, reading=True)
    data = diff_report(st, name, vs, seed=seed) if vs is not None else experiment_report(st, name)
    html = render_html(data)
    with replace_file(path) as f:
        f.write(html)
    what = "changed samples" if vs is not None else "samples"
    size = path.stat().st_size
    console().print(
        f"Wrote {data.row_count:,} {what} ({size / 1024:,.0f} KiB) to {escape(str(path))}", soft_wrap=True
    )
