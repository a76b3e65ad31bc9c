"""The ``doteval`` command line: parse, make one library call, render.

Errors: a ``DotevalError`` becomes one red line on stderr (and a hint when
there is one) with exit code 1; usage errors exit 2 (typer's own). Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

from doteval.errors import DotevalError


def main(argv: list[str] | None = None) -> None:
    from doteval.cli.app import app

    try:
        code = app(args=argv, prog_name="doteval", standalone_mode=False)
    except DotevalError as e:
        _print_error(e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        import click

        if isinstance(e, click.exceptions.Abort):
            sys.stderr.write("Aborted.\n")
            sys.exit(1)
        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _print_error(error: DotevalError) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, no_color="NO_COLOR" in os.environ)
    console.print(f"[bold red]Error:[/] {escape(str(error))}", soft_wrap=True)
    if error.hint:
        console.print(f"[dim]hint: {escape(error.hint)}[/]", soft_wrap=True)
