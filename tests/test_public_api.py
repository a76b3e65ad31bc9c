"""The public API is a surface: docs/reference/python-api.md lists exactly the public names.

The page's "Public names" table (``| `module` | `name`, `name` |``) and each public
module's ``__all__`` hold the same names, both ways; every name imports; a public
module defines no unlisted public name (helpers are underscored); every other module is
underscored; and no public page (docs, README, examples) imports an internal module.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import doteval

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "python-api.md"
HEADING = "## Public names"


def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


def _table_section(text: str) -> str:
    start = text.index(HEADING + "\n")
    end = text.find("\n## ", start + len(HEADING))
    return text[start : end if end != -1 else len(text)]


def documented() -> dict[str, list[str]]:
    """module -> names, from the rows of the page's "Public names" table."""
    table: dict[str, list[str]] = {}
    for line in _table_section(_page()).splitlines():
        row = re.fullmatch(r"\|\s*`(doteval[\w.]*)`\s*\|(.*)\|\s*", line)
        if row:
            assert row[1] not in table, f"{row[1]} has two rows"
            table[row[1]] = re.findall(r"`(\w+)`", row[2])
    return table


MODULES = sorted(documented())


def test_the_table_is_read() -> None:
    assert "doteval" in MODULES and "doteval.storage" in MODULES
    assert "foreach" in documented()["doteval"]


def test_every_module_not_underscored_is_documented() -> None:
    public = {"doteval"} | {
        f"doteval.{m.name}" for m in pkgutil.iter_modules(doteval.__path__) if not m.name.startswith("_")
    }
    assert public == set(MODULES), (
        "a module without a leading underscore is public: document it, or rename it"
    )


@pytest.mark.parametrize("name", MODULES)
def test_the_table_lists_exactly_the_module_all(name: str) -> None:
    module = importlib.import_module(name)
    listed = documented()[name]
    exported = list(getattr(module, "__all__", ()))
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert len(set(listed)) == len(listed), f"the {name} row repeats a name"
    assert sorted(set(exported) - set(listed)) == [], f"in {name}.__all__ but not in {PAGE.name}"
    assert sorted(set(listed) - set(exported)) == [], f"in {PAGE.name} but not in {name}.__all__"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_imports_and_star_gives_exactly_them(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which does not import"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(module.__all__)


def _defined_names(module: ModuleType) -> set[str]:
    """Names a module's own top-level code defines (not the ones it imports)."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("name", MODULES)
def test_no_helper_leaks_from_a_public_module(name: str) -> None:
    module = importlib.import_module(name)
    leaking = _defined_names(module) - set(module.__all__)
    assert sorted(leaking) == [], f"{name} defines public names outside __all__: underscore them"


def test_every_public_name_is_described_on_the_page() -> None:
    text = _page()
    section = _table_section(text)
    rest = text.replace(section, "")
    for module, names in documented().items():
        for n in names:
            assert re.search(rf"`@?(?:[\w.]+\.)?{n}\b", rest), f"{module}.{n} is listed but not described"


# -- public pages import no internal module ------------------------------------------

INTERNAL = re.compile(r"\bdoteval\._[a-z]")


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^ *```[^\n]*\n(.*?)^ *```", text, flags=re.M | re.S)


def _public_pages() -> list[Path]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return pages + sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in {".py", ".md"})


def test_the_scan_sees_code_blocks() -> None:
    blocks = _code_blocks("text\n```python\nfrom doteval._objects import Store\n```\n")
    assert blocks and INTERNAL.search(blocks[0])
    assert any("from doteval" in b for p in _public_pages() for b in _code_blocks(p.read_text("utf-8")))


@pytest.mark.parametrize("path", _public_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_public_page_uses_an_internal_module(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    code = "\n".join(_code_blocks(text)) if path.suffix == ".md" else text
    found = sorted({line.strip() for line in code.splitlines() if INTERNAL.search(line)})
    assert found == [], f"{path.name} shows internal modules to users"
