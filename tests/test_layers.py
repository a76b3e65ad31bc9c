"""The layers of docs/explanation/architecture.md, held by import-linter.

The contracts are in pyproject.toml (``[tool.importlinter]``): the layers, typer and
rich only in the adapters and their console, no import cycle at any depth (a lazy import
counts), compression and the pack format only in the object store.
``lint-imports`` is the console script of the environment running these tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, *config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *map(str, config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


# (module of the copy, the line added to it, the contract it breaks, what the report names)
BREAKS = [
    pytest.param(
        "_objects/hashing.py",
        "import rich",
        "typer and rich only in the adapters (the CLI and the pytest plugin)",
        "doteval._objects.hashing -> rich",
        id="rich-in-the-objects",
    ),
    pytest.param(
        "_objects/store.py",
        "from doteval._repository import manifest",
        "Layers: adapters over the public API over the run path and operations over the repository "
        "over the objects",
        "doteval._objects.store -> doteval._repository.manifest",
        id="objects-import-the-repository",
    ),
    pytest.param(
        "_operations/gc.py",
        "import zstandard",
        "Compression and the pack format only in the object store (gc decides what is kept, the store "
        "repacks)",
        "doteval._operations.gc -> zstandard",
        id="compression-in-gc",
    ),
    pytest.param(
        "_running/spec.py",
        "def _hidden():\n    from doteval._running import foreach",  # lazy: still a cycle
        "No import cycles, at any depth",
        ".spec -> .foreach",
        id="a-cycle-behind-a-lazy-import",
    ),
]


@pytest.mark.parametrize(("module", "line", "contract", "named"), BREAKS)
def test_the_contracts_catch_a_forbidden_import(
    tmp_path: Path, module: str, line: str, contract: str, named: str
) -> None:
    """A copy of the package with one forbidden import added breaks the contract that forbids it."""
    shutil.copytree(ROOT / "doteval", tmp_path / "doteval", ignore=shutil.ignore_patterns("__pycache__"))
    config = shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "doteval" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n\n{line}\n", encoding="utf-8")

    done = lint_imports(tmp_path, Path(config))
    report = " ".join((done.stdout + done.stderr).split())  # the report wraps long names
    assert done.returncode != 0, report
    assert f"{contract} BROKEN" in report, report
    assert named in report, report
