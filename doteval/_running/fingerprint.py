"""Fingerprints of an evaluation's code and of its parameters.

The runner stores both fingerprints with an experiment and refuses to resume a
run whose fingerprints moved, so that one store never silently mixes samples
computed by two versions of an evaluation. A fingerprint must therefore move
with everything that decides results -- the evaluation's logic, the project
helpers it calls (transitively), the module-level constants they read, the
columns and ``@foreach`` options, the fixture values -- and stay put for
everything that does not: comments, blank lines, formatting, docstrings, the
dataset expression in the decorator (the dataset has its own identity), the
module name the file was imported under, the directory of the checkout.

What counts as project code: a function or class whose file is under the
project root (see ``find_project_root``), or which lives in the same module as
the evaluation, and which is not in the standard library, in site-packages /
dist-packages, or in doteval itself.

This module must never import or call user code (it only reads attributes of
objects already imported; ``encode`` may call ``__doteval_params__`` /
``model_dump``), never follow code into libraries, and never raise because an
object is odd: what it cannot read is fingerprinted by its bytecode or name, or
skipped.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import pprint
import symtable
import sys
import sysconfig
import textwrap
import types
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doteval._objects.encoding import decode, encode
from doteval._objects.hashing import hash_bytes
from doteval._text import format_param
from doteval.errors import EncodingError

CODE_FINGERPRINT_VERSION = 1
PARAMS_FINGERPRINT_VERSION = 1

#: Files that mark a project root (see ``find_project_root``).
PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git", "pytest.ini", "tox.ini")

#: Helpers followed from one evaluation at most, so that a huge project does
#: not make every fingerprint walk all of it.
MAX_HELPERS = 500

#: A constant whose encoding is larger than this is recorded by size and
#: digest, not as text (a dataset loaded at module level is not a template).
MAX_CONSTANT_TEXT = 32 * 1024

# Depth bound when turning nested params (lists of functions...) into forms.
_MAX_PARAM_DEPTH = 32

_DOTEVAL_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # the doteval package

_MISSING: Any = object()


@dataclass(frozen=True)
class CodeFingerprint:
    """The identity of an evaluation's code.

    ``sources`` maps ``"module.qualname"`` to the source text of the evaluation
    and of every helper included; ``constants`` maps ``"module.NAME"`` to a
    readable text of every constant the digest covers (and ``@foreach columns``
    / ``@foreach options``), so that a changed prompt template can be shown.
    Neither is part of the digest: they are for showing the user what changed.
    """

    digest: str
    sources: dict[str, str]
    constants: dict[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The ``code`` object stored with an evaluation (store-format.md)."""
        return {"type": "code", "v": 1, "sources": self.sources, "constants": self.constants}


@dataclass(frozen=True)
class ParamsFingerprint:
    """The identity of the fixture values an evaluation receives."""

    values: dict[str, Any]
    unfingerprintable: tuple[str, ...]
    digest: str


# -- project root -------------------------------------------------------------


def find_project_root(start: Path) -> Path:
    """Return the project root for a file or directory ``start``.

    The nearest directory at or above ``start`` holding one of
    ``PROJECT_MARKERS``; failing that, the top-most directory above it holding a
    ``conftest.py`` (pytest's own notion of where a test tree starts); failing
    that, ``start``'s directory. Nearest, not top-most, so that a stray ``.git``
    in a home directory does not make the whole home the project.
    """
    start = Path(os.path.realpath(start))
    if not start.is_dir():
        start = start.parent
    candidates = (start, *start.parents)
    for directory in candidates:
        if any((directory / marker).exists() for marker in PROJECT_MARKERS):
            return directory
    top = start
    for directory in candidates:
        if (directory / "conftest.py").is_file():
            top = directory
    return top


@functools.lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {_DOTEVAL_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.add(os.path.realpath(paths[key]))
    return tuple(sorted(dirs))


def _is_within(path: str, parent: str) -> bool:
    try:
        return os.path.commonpath([path, parent]) == parent
    except ValueError:  # different drives, or relative against absolute
        return False


def _real_file(filename: Any) -> str | None:
    # "<stdin>", "<string>", "<ipython-input-...>": no file to locate.
    if not isinstance(filename, str) or not filename or filename.startswith("<"):
        return None
    return os.path.realpath(filename)


def _is_library_file(path: str) -> bool:
    parts = Path(path).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return any(_is_within(path, d) for d in _library_dirs())


# -- reading objects ----------------------------------------------------------


def _unwrap(obj: Any) -> Any:
    try:
        return inspect.unwrap(obj)
    except Exception:
        return obj


def _code_object_of(value: Any) -> Any:
    """The function, class or builtin ``value`` stands for, or None for data."""
    if isinstance(value, (staticmethod, classmethod, types.MethodType)):
        value = value.__func__
    if callable(value) and not isinstance(value, type):
        value = _unwrap(value)  # lru_cache and functools.wraps wrappers
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        return value
    return None


def _source_file(obj: Any) -> str | None:
    if isinstance(obj, types.FunctionType):
        return obj.__code__.co_filename
    try:
        return inspect.getfile(obj)
    except Exception:
        return None


def _qualname(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return name if isinstance(name, str) else type(obj).__qualname__


def _display_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    name = _qualname(obj)
    return f"{module}.{name}" if isinstance(module, str) else name


def _closure(func: types.FunctionType) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # a cell not yet assigned
            pass
    return out


def _namespace(obj: Any) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """The globals and closure variables names in ``obj``'s code resolve in."""
    if isinstance(obj, types.FunctionType):
        return obj.__globals__, _closure(obj)
    if isinstance(obj, type):
        module = sys.modules.get(obj.__module__)
        closure: dict[str, Any] = {}
        for member in list(vars(obj).values()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            elif isinstance(member, property):
                member = member.fget
            if isinstance(member, types.FunctionType):
                closure.update(_closure(member))
        return (vars(module) if module is not None else {}), closure
    return {}, {}


# -- normalizing source -------------------------------------------------------


@dataclass
class _Unit:
    dump: str  # normalized form of the code
    source: str | None  # text shown to users
    refs: list[tuple[str, ...]]  # names and attribute chains that may leave the code


def _analyse(obj: Any, *, strip_decorators: bool) -> _Unit:
    try:
        raw = inspect.getsource(obj)
    except Exception:
        return _bytecode_unit(obj, None)
    try:
        node = _find_node(raw, obj)
        if node is None:
            return _bytecode_unit(obj, textwrap.dedent(raw))
        if strip_decorators and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.decorator_list = []
        refs = _references(node, _global_names(node))
        _strip_docstrings(node)
        return _Unit(_dump(node), textwrap.dedent(raw), refs)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # A partial statement (a lambda inside a call) or a pathologically deep one.
        return _bytecode_unit(obj, textwrap.dedent(raw))


def _parse_body(raw: str) -> list[ast.stmt]:
    # Methods and nested defs come indented; wrapping them in a block keeps
    # the text of multi-line strings exact, which dedenting would not.
    if raw[:1] in (" ", "\t"):
        block = ast.parse("if 1:\n" + raw).body[0]
        return block.body if isinstance(block, ast.If) else []
    return ast.parse(raw).body


def _find_node(raw: str, obj: Any) -> ast.AST | None:
    body = _parse_body(raw)
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType) and code.co_name == "<lambda>":
        # getsource gives the whole statement; only an unambiguous lambda will do.
        lambdas = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Lambda)]
        return lambdas[0] if len(lambdas) == 1 else None
    first = body[0] if body else None
    if isinstance(obj, type):
        return first if isinstance(first, ast.ClassDef) and first.name == obj.__name__ else None
    if isinstance(code, types.CodeType) and isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return first if first.name == code.co_name else None
    return None


def _global_names(node: ast.AST) -> set[str] | None:
    """Names the code looks up outside itself, or None if that is unknown.

    A parameter or local named like a module-level dataset must not drag the
    dataset into the fingerprint, hence the symbol table and not every Name.
    """
    try:
        top = symtable.symtable(ast.unparse(node), "<doteval-fingerprint>", "exec")
    except (SyntaxError, ValueError, RecursionError):
        # e.g. `nonlocal` naming a variable of a function outside the snippet.
        return None
    names: set[str] = set()
    stack = [(top, True)]
    while stack:
        table, is_top = stack.pop()
        for sym in table.get_symbols():
            # Top level: defaults, annotations, decorators, bases.
            if sym.is_referenced() and (is_top or sym.is_global()):
                names.add(sym.get_name())
        stack.extend((child, False) for child in table.get_children())
    return names


def _attribute_chain(node: ast.Attribute) -> tuple[str, ...] | None:
    parts: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    parts.append(current.id)
    return tuple(reversed(parts))


def _references(node: ast.AST, names: set[str] | None) -> list[tuple[str, ...]]:
    chains: set[tuple[str, ...]] = set()
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Attribute):
            chain = _attribute_chain(current)
            if chain is not None:
                chains.add(chain)
                continue
        elif isinstance(current, ast.Name):
            chains.add((current.id,))
            continue
        stack.extend(ast.iter_child_nodes(current))
    return sorted(c for c in chains if names is None or c[0] in names)


_DOC_OWNERS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)


def _strip_docstrings(node: ast.AST) -> None:
    for owner in [n for n in ast.walk(node) if isinstance(n, _DOC_OWNERS)]:
        first = owner.body[0] if owner.body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            # A body that was only a docstring behaves like `pass`.
            owner.body = owner.body[1:] or [ast.Pass()]


def _dump(node: Any) -> str:
    """Like ``ast.dump(node, include_attributes=False)`` minus empty fields.

    Leaving out None and [] (as Python 3.13's ``show_empty=False`` does) keeps
    the text stable when a Python release adds a field that is empty in
    existing code, such as ``type_params`` in 3.12.
    """
    if isinstance(node, ast.AST):
        fields = []
        for name in node._fields:
            value = getattr(node, name, None)
            if value is None or (isinstance(value, list) and not value):
                continue
            fields.append(f"{name}={_dump(value)}")
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return "[" + ", ".join(_dump(x) for x in node) + "]"
    return repr(node)


def _bytecode_unit(obj: Any, source: str | None) -> _Unit:
    """Fallback for code without usable source: its bytecode, or its name."""
    code = getattr(obj, "__code__", None)
    refs: list[tuple[str, ...]] = []
    if isinstance(code, types.CodeType):
        names: set[str] = set(code.co_freevars)
        form: Any = ("code", _qualname(obj), _code_form(code, names))
        ordered = sorted(names)
        refs = [(n,) for n in ordered]
        # co_names mixes globals and attribute names; pairing them lets
        # `helpers.score` be found through a project module.
        if len(ordered) <= 64:
            refs += [(a, b) for a in ordered for b in ordered if a != b]
    else:
        form = ("opaque", _display_name(obj))
    try:
        dump = "bytecode:" + hash_bytes(encode(form))
    except EncodingError:
        dump = "opaque:" + _display_name(obj)
    return _Unit(dump, source, refs)


# Not co_firstlineno nor the line table: moving code around changes nothing.
_CODE_FIELDS: tuple[str, ...] = ("co_name", "co_argcount", "co_posonlyargcount")
_CODE_FIELDS += ("co_kwonlyargcount", "co_flags", "co_code", "co_names", "co_varnames")
_CODE_FIELDS += ("co_freevars", "co_cellvars")


def _code_form(code: types.CodeType, names: set[str]) -> tuple[Any, ...]:
    """Bytecode and constants of ``code`` and nested code; collects ``co_names``."""
    names.update(code.co_names)
    consts = tuple(
        _code_form(c, names)
        if isinstance(c, types.CodeType)
        # Ellipsis and complex have no encoding; their repr is exact.
        else (c if _encodes(c) else ("repr", repr(c)))
        for c in code.co_consts
    )
    return (*(getattr(code, field) for field in _CODE_FIELDS), consts)


def _encodes(value: Any) -> bool:
    try:
        encode(value)
    except Exception:
        return False
    return True


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


# -- walking helpers ----------------------------------------------------------


class _Walker:
    def __init__(self, root: Path, home: Mapping[str, Any] | None) -> None:
        self.root = os.path.realpath(root)
        # The evaluation's module namespace: code sharing it is project code
        # even when it has no file (a notebook, a REPL, exec'd source).
        self.home = home
        self.seen: dict[int, Any] = {}  # id -> object, holding it so ids stay unique
        self.queue: deque[Any] = deque()
        self.helpers: set[tuple[str, str]] = set()
        self.constants: set[tuple[str, bytes]] = set()
        self.encoded: set[tuple[str, int]] = set()
        self.sources: dict[str, str] = {}
        self.constant_texts: dict[str, str] = {}

    def add_main(self, func: Any, *, strip_decorators: bool) -> str:
        self.seen[id(func)] = func
        unit = _analyse(func, strip_decorators=strip_decorators)
        self._follow(func, unit)
        return unit.dump

    def drain(self) -> None:
        while self.queue:
            obj = self.queue.popleft()
            unit = _analyse(obj, strip_decorators=False)
            # Keyed by qualname, not module: the module name depends on how
            # pytest imported the file, and moving identical code changes nothing.
            self.helpers.add((_qualname(obj), unit.dump))
            self._follow(obj, unit)

    def _follow(self, obj: Any, unit: _Unit) -> None:
        name = _display_name(obj)
        self.sources[name] = (
            unit.source if unit.source is not None else (f"# source of {name} is not available\n")
        )
        global_ns, closure = _namespace(obj)
        module = getattr(obj, "__module__", None)
        where = module if isinstance(module, str) else name
        for chain in unit.refs:
            first = chain[0]
            if first in closure:
                self._consider(closure[first], chain[1:], first, name)
            elif first in global_ns:
                self._consider(global_ns[first], chain[1:], first, where)
            # else a builtin or an unbound name: nothing of the project's.

    def _consider(self, value: Any, rest: tuple[str, ...], name: str, where: str) -> None:
        # Only project modules are looked into: a library's module
        # __getattr__ may import things, and its contents are not ours.
        while rest and isinstance(value, types.ModuleType) and self._project_module(value):
            where = value.__name__
            try:
                value = getattr(value, rest[0])
            except Exception:
                return
            name, rest = rest[0], rest[1:]
        if isinstance(value, types.ModuleType):
            return
        if isinstance(value, functools.partial):
            self._add_constant(name + "()", (value.args, value.keywords), owner=value, where=where)
            self._consider(value.func, (), name, where)
            return
        target = _code_object_of(value)
        if target is not None:
            if self._project_code(target):
                self._enqueue(target)
            return
        # __file__, __name__...: they say where the code is, not what it does.
        if not _is_dunder(name):
            self._add_constant(name, value, where=where)
        if self._project_code(type(value)):
            self._enqueue(type(value))  # an instance behaves as its class says

    def _add_constant(self, name: str, value: Any, *, where: str, owner: Any = None) -> None:
        # Memo by identity of a live object: big constants read by many helpers.
        key = (name, id(value if owner is None else owner))
        if key in self.encoded:
            return
        self.encoded.add(key)
        try:
            data = encode(value)
        except Exception:
            return
        self.constants.add((name, data))
        self.constant_texts[f"{where}.{name}"] = constant_text(name, value, data)

    def _enqueue(self, target: Any) -> None:
        if id(target) in self.seen or len(self.seen) > MAX_HELPERS:
            return
        self.seen[id(target)] = target
        self.queue.append(target)

    def _in_root(self, filename: Any) -> bool:
        path = _real_file(filename)
        return path is not None and _is_within(path, self.root) and not _is_library_file(path)

    def _is_home(self, module: Any) -> bool:
        return module is not None and self.home is not None and vars(module) is self.home

    def _project_module(self, module: types.ModuleType) -> bool:
        if self._is_home(module):
            return True
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            return self._in_root(file)
        try:  # a namespace package
            paths = list(getattr(module, "__path__", None) or ())
            return any(self._in_root(os.path.join(p, "__init__.py")) for p in paths)
        except Exception:
            return False

    def _project_code(self, target: Any) -> bool:
        if isinstance(target, types.FunctionType):
            if self.home is not None and target.__globals__ is self.home:
                return True
            return self._in_root(target.__code__.co_filename)
        module_name = getattr(target, "__module__", None)
        module = sys.modules.get(module_name) if isinstance(module_name, str) else None
        if self._is_home(module):
            return True
        if isinstance(target, type):
            return self._in_root(_source_file(target))
        # A builtin function is ours only if compiled in the project.
        return module is not None and self._project_module(module)


# -- public API ---------------------------------------------------------------


def code_fingerprint(
    func: Callable[..., Any],
    *,
    columns: Sequence[str],
    options: Mapping[str, Any],
    root: Path | None = None,
) -> CodeFingerprint:
    """Fingerprint an evaluation function, its project helpers and constants.

    ``root`` bounds what counts as project code; by default it is
    ``find_project_root`` of the function's file (of the working directory
    when the function has no file).
    """
    target = _unwrap(func)
    if isinstance(target, types.MethodType):
        target = target.__func__
    if root is None:
        file = _real_file(_source_file(target))
        root = find_project_root(Path(file) if file else Path.cwd())
    global_ns, _ = _namespace(target)
    walker = _Walker(root, global_ns if global_ns else None)
    # The decorators of the evaluation hold the dataset; a helper's or a
    # class's decorators (lru_cache, dataclass) are part of their behaviour.
    main = walker.add_main(target, strip_decorators=not isinstance(target, type))
    walker.drain()
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    payload = (
        "doteval-code",
        CODE_FINGERPRINT_VERSION,
        tuple(str(c) for c in columns),
        _options_form(options),
        tuple(sorted(walker.helpers)),
        main,
        tuple(sorted(walker.constants)),
    )
    constants = dict(walker.constant_texts)
    constants["@foreach columns"] = f"columns = {tuple(str(c) for c in columns)!r}\n"
    if options:
        constants["@foreach options"] = _pretty("options", _options_form(options))
    return CodeFingerprint(
        hash_bytes(encode(payload)), dict(sorted(walker.sources.items())), dict(sorted(constants.items()))
    )


def constant_text(name: str, value: Any, data: bytes) -> str:
    """A readable text of a constant, for diffs: ``NAME = value``.

    Made from the canonical encoding read back (plain data), so no ``__repr__``
    of user code runs; a large constant is named by size and digest.
    """
    if len(data) > MAX_CONSTANT_TEXT:
        return f"{name} = <{type(value).__qualname__}, {len(data)} bytes encoded, {hash_bytes(data)[:16]}>\n"
    try:
        return _pretty(name, decode(data))
    except Exception:
        return f"{name} = <{type(value).__qualname__}, {hash_bytes(data)[:16]}>\n"


def _pretty(name: str, value: Any) -> str:
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        # A prompt template: shown as the text it is, so a diff points at the line.
        return f'{name} = """\n{value}"""\n'
    text = format_param(value)
    if len(text) > 88 and isinstance(value, (list, tuple, dict)):
        text = pprint.pformat(value, width=88, sort_dicts=False)  # one item a line
    return f"{name} = {text}\n"


def _options_form(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        ok, form = fingerprintable(value)
        # Still distinguishes "option absent" from "option set to an object".
        out[str(key)] = form if ok else {"__doteval_unfingerprintable__": _display_name(type(value))}
    return out


def fingerprintable(value: Any) -> tuple[bool, Any]:
    """Return ``(True, form)`` with an encodable form of ``value``, or ``(False, None)``.

    Plain data and anything ``encode`` accepts is its own form. Functions and
    classes (also inside lists, tuples and dicts, bound methods and partials)
    become ``{"__doteval_code__": qualname, "digest": ...}`` with the digest of
    their normalized code when they are project code (not in a library), and
    ``{"__doteval_callable__": "module.qualname"}`` otherwise: a library
    function is named, not read, so upgrading the library does not change it.
    Modules become ``{"__doteval_module__": name}``. Anything else, such as an
    API client, is not fingerprintable.
    """
    try:
        form = _param_form(value, 0)
    except Exception:
        form = _MISSING
    return (False, None) if form is _MISSING else (True, form)


def _param_form(value: Any, depth: int) -> Any:
    if _encodes(value):
        return value
    if depth > _MAX_PARAM_DEPTH:
        return _MISSING
    if type(value) in (list, tuple):
        items = [_param_form(x, depth + 1) for x in value]
        return _MISSING if _any_missing(items) else type(value)(items)
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            out[key] = _param_form(item, depth + 1)
            if out[key] is _MISSING:
                return _MISSING
        encode(out)  # keys that are not data raise, and make it unfingerprintable
        return out
    return _callable_form(value, depth)


def _any_missing(forms: list[Any]) -> bool:
    # `is`, not `in`: `in` calls __eq__, which numpy arrays answer with arrays.
    return any(f is _MISSING for f in forms)


def _callable_form(value: Any, depth: int) -> Any:
    if isinstance(value, types.ModuleType):
        return {"__doteval_module__": value.__name__}
    if isinstance(value, functools.partial):
        parts = [_param_form(p, depth + 1) for p in (value.func, value.args, value.keywords)]
        return _MISSING if _any_missing(parts) else {"__doteval_partial__": parts}
    bound = getattr(value, "__self__", None)
    if isinstance(value, (types.MethodType, types.BuiltinMethodType)) and not (
        bound is None or isinstance(bound, types.ModuleType)
    ):
        # The same method of two different objects is two different params.
        func = getattr(value, "__func__", None) or _qualname(value)
        parts = [_param_form(bound, depth + 1), _param_form(func, depth + 1)]
        return _MISSING if _any_missing(parts) else {"__doteval_method__": parts}
    target = _code_object_of(value)
    if target is None:
        return _MISSING
    file = _real_file(_source_file(target))
    if isinstance(target, (types.FunctionType, type)) and file and not _is_library_file(file):
        digest = code_fingerprint(target, columns=(), options={}).digest
        return {"__doteval_code__": _qualname(target), "digest": digest}
    return {"__doteval_callable__": _display_name(target)}


def params_fingerprint(params: Mapping[str, Any]) -> ParamsFingerprint:
    """Fingerprint the fixture values given to an evaluation, by name.

    Values that cannot be fingerprinted are named in ``unfingerprintable`` and
    left out of ``values`` and of the digest; this never raises for a value.
    """
    values: dict[str, Any] = {}
    unfingerprintable: list[str] = []
    for name in sorted(params, key=str):
        ok, form = fingerprintable(params[name])
        if ok:
            values[name] = form
        else:
            unfingerprintable.append(name)
    digest = hash_bytes(encode(("doteval-params", PARAMS_FINGERPRINT_VERSION, values)))
    return ParamsFingerprint(values=values, unfingerprintable=tuple(sorted(unfingerprintable)), digest=digest)
