"""docs/explanation/architecture.md is the map of doteval's modules: it must stay true.

Every module of ``doteval/`` has one row in the page's module tables (a package's
``__init__.py`` may be named by its folder, or by the heading of its section), and every path, module, class and
function the page names in backquotes exists. A module added without its row, or
renamed without the page, fails here.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "doteval"
PAGE = ROOT / "docs" / "explanation" / "architecture.md"

CODE = re.compile(r"`([^`\n]+)`")
ROW = re.compile(r"^\| `([^`]+)` \|", re.M)  # a table row naming a module in its first column
HEADING = re.compile(r"^#+ `([^`]+)`", re.M)  # a section of one package: `### `_running/`: ...`
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
DOTTED = re.compile(r"([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\(\))?")
NOT_OURS = {"acyclic_siblings"}  # names of other projects the page gives: import-linter's


def modules() -> list[str]:
    """Every module of the package, as a path relative to ``doteval/``."""
    return sorted(
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
    )


def _names(module: str) -> set[str]:
    """The ways a page may name ``module``: its path, or its folder for a package's ``__init__.py``."""
    folder, _, file = module.rpartition("/")
    return {module, f"{folder}/"} if file == "__init__.py" and folder else {module}


def unlisted(text: str, known: list[str]) -> list[str]:
    """Modules with no row in the page's tables (a package's may be its section's heading)."""
    rows = set(ROW.findall(text)) | set(HEADING.findall(text))
    return [m for m in known if not _names(m) & rows]


def listed_twice(text: str, known: list[str]) -> list[str]:
    rows = ROW.findall(text)
    return [m for m in known if sum(rows.count(n) for n in _names(m)) > 1]


def named_paths(text: str) -> set[str]:
    """The file and folder paths the page names (no patterns like ``eval_*.py``)."""
    return {t for t in CODE.findall(text) if t.endswith((".py", "/")) and not re.search(r"[\s*<>=()]", t)}


def _exists(path: str) -> bool:
    if path.startswith(("tests/", "docs/", ".ci/")):
        return (ROOT / path).exists()
    return (PACKAGE / path.removeprefix("doteval/")).exists()


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(["doteval", *(p for p in parts if p != "__init__")])


def _all_modules() -> list[ModuleType]:
    # __main__ would run the command line: it only calls main, which _cli holds
    return [importlib.import_module(_module_name(m)) for m in modules() if m != "__main__.py"]


def _defined(loaded: list[ModuleType]) -> tuple[dict[str, object], set[str]]:
    """What a dotted name may start with (a module's stem, if no other module has it, or a
    class of doteval), and every name defined in doteval (module level and class level)."""
    stems: dict[str, list[ModuleType]] = {}
    owners: dict[str, object] = {}
    names: set[str] = set()
    for module in loaded:
        stems.setdefault(module.__name__.rpartition(".")[2], []).append(module)
        names |= set(vars(module))
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__.startswith("doteval"):
                owners.setdefault(name, value)
                names |= _attributes(value)
    owners.update({stem: found[0] for stem, found in stems.items() if len(found) == 1})
    return owners, names


def _attributes(cls: type) -> set[str]:
    """A class's attributes, with the fields and ``self.x =`` attributes of its instances."""
    found = set(dir(cls))
    for klass in cls.__mro__:
        found |= set(getattr(klass, "__annotations__", {}))
        try:
            found |= set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=", inspect.getsource(klass)))
        except (OSError, TypeError):
            pass
    return found


def unknown_names(text: str, loaded: list[ModuleType]) -> list[str]:
    """Names the page gives in backquotes that doteval does not define.

    Checked: ``Class``/``snake_name`` (a CamelCase or underscored identifier) and
    ``a.b`` where ``a`` is a doteval class or a module whose stem is unique."""
    owners, names = _defined(loaded)
    unknown = []
    for token in sorted(set(CODE.findall(text))):
        token = token.removesuffix("()")
        if token.endswith(".py"):
            continue  # a path: named_paths
        if IDENTIFIER.fullmatch(token):
            camel = token[0].isupper() and any(c.islower() for c in token)
            if (camel or "_" in token.strip("_")) and token not in names | NOT_OURS:
                unknown.append(token)
            continue
        dotted = DOTTED.fullmatch(token)
        if dotted and dotted.group(1) in owners:
            owner = owners[dotted.group(1)]
            attrs = _attributes(owner) if inspect.isclass(owner) else set(vars(owner))
            if dotted.group(2) not in attrs:
                unknown.append(token)
    return unknown


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_every_module_has_one_row(page: str) -> None:
    assert unlisted(page, modules()) == [], "give each new module a row in docs/explanation/architecture.md"
    assert listed_twice(page, modules()) == []


def test_every_path_the_page_names_exists(page: str) -> None:
    paths = named_paths(page)
    assert "_objects/store.py" in paths and "_operations/report/" in paths  # the scan sees paths
    assert sorted(p for p in paths if not _exists(p)) == []


def test_every_name_the_page_gives_is_defined(page: str) -> None:
    loaded = _all_modules()
    assert "Transaction.commit" in page  # the scan has something to check
    assert unknown_names(page, loaded) == []


def test_the_checks_catch_a_module_without_a_row_and_a_stale_name(page: str) -> None:
    known = [*modules(), "_objects/newcomer.py", "_brand_new/__init__.py"]
    assert sorted(unlisted(page, known)) == ["_brand_new/__init__.py", "_objects/newcomer.py"]
    assert unlisted(page + "\n| `_brand_new/` | a package |\n", known) == ["_objects/newcomer.py"]
    stale = "`_cli/views.py`, `_report/`, `Transaction.comit`, `recover_if_idle`, `BaseObjectStor`"
    assert sorted(named_paths(stale)) == ["_cli/views.py", "_report/"]
    assert not any(_exists(p) for p in named_paths(stale))
    assert unknown_names(stale, _all_modules()) == ["BaseObjectStor", "Transaction.comit", "recover_if_idle"]
