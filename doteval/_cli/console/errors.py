"""How a ``DotevalError`` reads, under every command: ``doteval show``, ``doteval run``, ``pytest``.

One form, on stderr::

    Error: experiment 'e1' is being run by pid 4242 on vm since 2026-12-04 14:21:29
    hint: wait for it to finish, or stop that process

A message of several lines (a changed evaluation's diff) keeps its lines; an experiment not
found gets the close names of the store it was looked up in (a typo). The adapters decide
when to print and which exit code follows; this module never exits.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape

from doteval._objects import Store
from doteval._repository.experiments import missing_experiment
from doteval.errors import DotevalError, ExperimentNotFoundError


def explained(error: DotevalError, store: Store | None) -> DotevalError:
    """An experiment not found, with the close names of ``store`` (did you mean ...)."""
    if not isinstance(error, ExperimentNotFoundError) or error.explained or store is None:
        return error
    try:
        return missing_experiment(store, error.name)
    except DotevalError:
        return error


def error_lines(error: DotevalError) -> list[str]:
    """The error as plain lines: ``Error: ...``, the message's other lines, ``hint: ...``."""
    first, *rest = str(error).splitlines() or [""]
    lines = [f"Error: {first}", *rest]
    if error.hint:
        lines.append(f"hint: {error.hint}")
    return lines


def print_error(
    error: DotevalError,
    *,
    store: Store | None = None,
    color: bool | None = None,
) -> None:
    """Print ``error`` (explained against ``store``) on stderr.

    ``color``: None colors when stderr is a terminal and ``NO_COLOR`` is unset; True or
    False as the adapter was told (pytest's ``--color``).
    """
    error = explained(error, store)
    console = Console(
        file=sys.stderr,
        highlight=False,
        force_terminal=color or None,
        no_color=None if color else "NO_COLOR" in os.environ or None,
        color_system=None if color is False else "auto",
    )
    lines = error_lines(error)
    for i, line in enumerate(lines):
        console.print(
            _styled(line, first=i == 0, hint=bool(error.hint) and i == len(lines) - 1), soft_wrap=True
        )
    console.file.flush()


def _styled(line: str, *, first: bool, hint: bool) -> str:
    if first:
        return f"[bold red]Error:[/] {escape(line[len('Error: ') :])}"
    if hint:
        return f"[dim]{escape(line)}[/]"
    if line.startswith("    -") and not line.startswith("    ---"):
        return f"[red]{escape(line)}[/]"
    if line.startswith("    +") and not line.startswith("    +++"):
        return f"[green]{escape(line)}[/]"
    return escape(line)
