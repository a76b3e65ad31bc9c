"""Commands that change experiments as a whole: delete, rename."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from doteval.cli.common import StoreOption, app, console, open_store
from doteval.experiments import delete_experiment, rename_experiment


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    store: StoreOption = None,
) -> None:
    """Delete an experiment; its history stays recoverable until gc (see list --deleted)."""
    delete_experiment(open_store(store), name)
    console().print(f"Deleted experiment {escape(name)}. `doteval list --deleted` still shows it until gc.")


@app.command()
def rename(
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name (must not exist).")],
    store: StoreOption = None,
) -> None:
    """Rename an experiment, keeping its history; refuses a NEW that exists."""
    rename_experiment(open_store(store), old, new)
    console().print(f"Renamed {escape(old)} to {escape(new)}.")
