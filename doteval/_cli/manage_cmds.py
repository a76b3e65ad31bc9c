"""Commands that change experiments as a whole: delete, undelete, rename, keep."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from doteval._cli.common import StoreOption, app, console, open_store
from doteval._repository.experiments import (
    delete_experiment,
    keep_line,
    rename_experiment,
    undelete_experiment,
)


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    store: StoreOption = None,
) -> None:
    """Delete an experiment; `doteval undelete` brings it back until gc (see list --deleted)."""
    delete_experiment(open_store(store), name)
    console().print(
        f"Deleted experiment {escape(name)}. `doteval undelete {escape(name)}` brings it back until gc."
    )


@app.command()
def undelete(
    name: Annotated[str, typer.Argument(help="Name of the deleted experiment.")],
    store: StoreOption = None,
) -> None:
    """Bring back a deleted experiment with its history (until gc); refuses a name that is taken."""
    manifest = undelete_experiment(open_store(store), name)
    console().print(
        f"Brought back experiment {escape(name)} ({manifest.done}/{manifest.total} samples).", soft_wrap=True
    )


@app.command()
def rename(
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name (must not exist).")],
    store: StoreOption = None,
) -> None:
    """Rename an experiment, keeping its history; refuses a NEW that exists."""
    rename_experiment(open_store(store), old, new)
    console().print(f"Renamed {escape(old)} to {escape(new)}.")


@app.command()
def keep(
    revision: Annotated[str, typer.Argument(help="NAME@REV: the newest revision of the line to keep.")],
    store: StoreOption = None,
) -> None:
    """Choose one line of an experiment that moved in two stores with different code or params.

    The next run continues the kept line; the other line stays in the history
    (`doteval log NAME`, `doteval show NAME@REV`).
    """
    name, manifest, others = keep_line(open_store(store), revision)
    left = ", ".join(f"{name}@{m[:10]}" for m in others)
    console().print(
        f"Kept the line of {escape(name)} ending at {manifest.done}/{manifest.total} samples "
        f"({escape(revision)}); the other line ({escape(left)}) stays in `doteval log {escape(name)}`."
    )
