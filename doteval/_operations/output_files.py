"""Writing the files a user asks for (``export -o``, ``report -o``): whole or not at all.

The text goes to a temporary file beside the destination, opened with
``O_EXCL|O_NOFOLLOW`` (never through a link, never over someone's file), and
is renamed into place only when complete; on any failure the temporary file
is removed, so nothing is left behind. A path that cannot be written is one
``UsageError`` line, never a traceback.

Text is UTF-8. A lone surrogate (``"\\ud800"``, which a model or an exception
message can produce and the store keeps as it is) has no UTF-8 form: it is
written as its ``\\udXXXX`` escape, Python's ``backslashreplace`` convention,
which inside JSON is the standard escape of that code point (``json.loads``
gives the original string back).

This module must never write inside a store.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from doteval._objects.files import open_new
from doteval.errors import DotevalError, UsageError

TEXT_ERRORS = "backslashreplace"


@contextlib.contextmanager
def replace_file(path: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """A text stream whose content replaces ``path`` when the block ends without error."""
    path = Path(path)
    problem = output_problem(path)
    if problem:
        raise UsageError(f"cannot write {path}: {problem}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        fd = open_new(tmp)
    except OSError as e:
        raise output_error(path, e) from None
    try:
        with open(fd, "w", encoding="utf-8", errors=TEXT_ERRORS, newline=newline) as f:
            yield f
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, DotevalError):
            raise output_error(path, e) from None
        raise


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an output file (checked before any work), or None."""
    if path.is_dir():
        return f"{path} is a folder: give a file name"
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    return None


def output_error(path: Path, error: OSError) -> UsageError:
    """One line for an output file that cannot be written."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return UsageError(f"no space left on device writing {path}", hint="free some space and try again")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UsageError(f"cannot write {path}: {error.strerror}", hint="choose another --output path")
    return UsageError(f"cannot write {path}: {error.strerror or error}")
