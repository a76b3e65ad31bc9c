"""The ``doteval`` command line: parse, make one library call, render.

Errors: a ``DotevalError`` becomes one red line on stderr (and a hint when
there is one, see ``doteval._cli.console.errors``) with exit code 1; usage errors exit 2
(typer's own). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from doteval.errors import DotevalError


def main(argv: list[str] | None = None) -> None:
    from doteval._cli.app import app

    try:
        code = app(args=argv, prog_name="doteval", standalone_mode=False)
    except DotevalError as e:
        _print_error(e)
        sys.exit(1)
    except PermissionError as e:
        from doteval._objects.files import permission_error

        _print_error(permission_error(e))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        usage_errors, aborts = _click_exceptions()
        if isinstance(e, aborts):
            sys.stderr.write("Aborted.\n")
            sys.exit(1)
        if isinstance(e, usage_errors):
            e.show()  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(ClickException, Abort) classes of the click that typer raises.

    typer up to 0.2x raises click's own; later versions raise those of the copy
    of click they ship (``typer._click``), which click's classes do not match.
    """
    import importlib

    import typer

    usage_errors: list[type[BaseException]] = []
    aborts: list[type[BaseException]] = [typer.Abort]
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            exceptions = importlib.import_module(module)
        except ImportError:
            continue
        usage_errors.append(exceptions.ClickException)
        if hasattr(exceptions, "Abort"):  # typer's own copy has none: it raises typer.Abort
            aborts.append(exceptions.Abort)
    return tuple(usage_errors), tuple(aborts)


def _print_error(error: DotevalError) -> None:
    from doteval._cli.common import GlobalOptions
    from doteval._cli.console.errors import print_error

    print_error(error, store=GlobalOptions.opened)
