"""Pieces every command shares: the typer app, the store option, output helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from doteval._cli.console.tables import PIPED_WIDTH
from doteval._objects import Store
from doteval._objects.store import find_store
from doteval._operations.export import jsonable
from doteval._operations.output_files import TEXT_ERRORS
from doteval.errors import StoreNotFoundError

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
        help="Results store (default: $DOTEVAL_STORE, else the nearest .doteval here or above).",
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


def escape_unencodable_output() -> None:
    """Write what stdout cannot encode as backslash escapes, as Python's stderr does.

    A lone surrogate (``"\\ud800"``) is stored as it was produced but has no UTF-8
    form: shown as ``\\ud800`` instead of ending the command with a traceback.
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors=TEXT_ERRORS)
        except (ValueError, OSError):
            pass


class GlobalOptions:
    """Options given before the command (``doteval --store PATH COMMAND``)."""

    store: Path | None = None
    opened: Store | None = None  # the store the command opened, for its error messages


def store_path(path: Path | None) -> Path | None:
    """The store a command names: its own ``--store``, else the global one (else None: discover)."""
    return path if path is not None else GlobalOptions.store


def open_store(path: Path | None, *, create: bool = False, reading: bool = False) -> Store:
    """The store of a command; without ``--store`` or ``$DOTEVAL_STORE``, the nearest ``.doteval``.

    Only a command that writes a new store (``create``) may go on when none is found:
    the others say so instead of reading an empty store that is not there. ``reading``: a
    read command, which never writes the store (see ``Store``).
    """
    path = store_path(path)
    if path is None and not os.environ.get("DOTEVAL_STORE") and find_store() is None and not create:
        raise StoreNotFoundError(str(Path.cwd()))
    GlobalOptions.opened = Store(path, reading=reading)
    return GlobalOptions.opened


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(document), indent=2, ensure_ascii=False) + "\n")
