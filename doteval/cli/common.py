"""Pieces every command shares: the typer app, the store option, output helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from doteval.cli.render import PIPED_WIDTH
from doteval.export import jsonable
from doteval.objects import Store

app = typer.Typer(
    name="doteval",
    help="Run LLM evaluations and keep every sample in a resumable, content-addressed store.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Results store (default: $DOTEVAL_STORE or ./.doteval).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")
]


def console() -> Console:
    # Piped into a file or a CI log, rich would lay tables out for 80 columns.
    wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH
    return Console(highlight=False, no_color="NO_COLOR" in os.environ or None, width=wide)


def open_store(path: Path | None) -> Store:
    return Store(path)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(document), indent=2, ensure_ascii=False) + "\n")
