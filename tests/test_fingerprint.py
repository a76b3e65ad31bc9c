"""Tests for doteval._running.fingerprint: what moves a code or params fingerprint, and what must not.

Every test writes a throwaway project into ``tmp_path`` and imports it for real:
one directory per variant, the evaluation module under a fresh name each time
(so the digest is also checked not to depend on the module name), helper
modules under their real names (``import helpers`` must stay the same text).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import itertools
import json
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from doteval._running.fingerprint import (
    MAX_HELPERS,
    CodeFingerprint,
    ParamsFingerprint,
    code_fingerprint,
    find_project_root,
    fingerprintable,
    params_fingerprint,
)

EVAL = '''
import json
import re

import helpers
from helpers import normalize

THRESHOLD = 0.5
PREFIX = "Answer: "


def foreach(columns, data):
    return lambda f: f


dataset = [("1+1", "2"), ("2+2", "4")]


def clean(text):
    return text.strip()


@foreach("prompt,expected", dataset)
def eval_math(prompt, expected):
    """Score one arithmetic sample."""
    answer = clean(PREFIX + prompt)
    payload = json.dumps({"answer": answer})
    matched = re.match(r"[0-9]+", expected) is not None
    return normalize(answer) == expected and helpers.score(answer) > THRESHOLD and matched, payload
'''

HELPERS = '''
"""Helpers of the throwaway project."""

WEIGHT = 2
UNUSED = 1


def normalize(text):
    return text.lower()


def score(text):
    return weigh(len(text))


def weigh(n):
    return n * WEIGHT
'''

COLUMNS = ("prompt", "expected")


def edit(text: str, old: str, new: str) -> str:
    assert old in text, f"test bug: {old!r} is not in the file"
    return text.replace(old, new)


def _purge(base: Path) -> None:
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and Path(file).is_relative_to(base):
            del sys.modules[name]


class Project:
    """Writes variants of a throwaway project and imports them."""

    def __init__(self, tmp_path: Path) -> None:
        self.base = tmp_path
        self.count = itertools.count()

    def load(
        self, files: dict[str, str], *, marker: str | None = "pyproject.toml", main: str = "eval"
    ) -> ModuleType:
        directory = self.base / f"v{next(self.count)}"
        directory.mkdir()
        if marker:
            (directory / marker).write_text("")
        for name, text in files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        # The previous variant's `helpers` must not answer this one's import.
        _purge(self.base)
        importlib.invalidate_caches()
        module_name = f"fp_eval_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(module_name, directory / f"{main}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        sys.path.insert(0, str(directory))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(directory))
        return module

    def fingerprint(
        self,
        eval_text: str = EVAL,
        helpers_text: str = HELPERS,
        *,
        func: str = "eval_math",
        columns: tuple[str, ...] = COLUMNS,
        options: dict[str, Any] | None = None,
        extra: dict[str, str] | None = None,
    ) -> CodeFingerprint:
        module = self.load({"eval.py": eval_text, "helpers.py": helpers_text, **(extra or {})})
        return code_fingerprint(getattr(module, func), columns=columns, options=options or {})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield Project(tmp_path)
    _purge(tmp_path)


# -- what must not move the code digest ------------------------------------------


def test_same_code_gives_the_same_digest_under_any_module_name(project: Project) -> None:
    first = project.fingerprint()
    second = project.fingerprint()
    assert first.digest == second.digest
    assert len(first.digest) == 64 and all(c in "0123456789abcdef" for c in first.digest)


COSMETIC = {
    "comments": (
        "eval.py",
        "    answer = clean(PREFIX + prompt)\n",
        "    # strip the prompt first\n    answer = clean(PREFIX + prompt)  # sure\n",
    ),
    "blank lines": ("eval.py", "    payload = json.dumps", "\n\n    payload = json.dumps"),
    "reformatting": (
        "eval.py",
        'payload = json.dumps({"answer": answer})',
        'payload = json.dumps(\n        {\n            "answer": answer,\n        }\n    )',
    ),
    "docstring changed": (
        "eval.py",
        '"""Score one arithmetic sample."""',
        '"""Score one sample.\n\n    With a longer explanation.\n    """',
    ),
    "docstring removed": ("eval.py", '    """Score one arithmetic sample."""\n', ""),
    "dataset expression in the decorator": (
        "eval.py",
        '@foreach("prompt,expected", dataset)',
        '@foreach("prompt,expected", [("3+3", "6")] + dataset[:1])',
    ),
    "dataset value": ("eval.py", '("2+2", "4")', '("2+2", "5")'),
    "another decorator": (
        "eval.py",
        '@foreach("prompt,expected", dataset)',
        '@foreach("prompt,expected", dataset)\n@(lambda f: f)',
    ),
    "an unrelated function": (
        "eval.py",
        "def clean(",
        "def unused():\n    return 1\n\n\ndef clean(",
    ),
    "helper docstring and comments": (
        "helpers.py",
        "def weigh(n):\n",
        'def weigh(n):\n    """How heavy."""\n    # linear for now\n',
    ),
    "helper module docstring": ("helpers.py", '"""Helpers of', '"""Utilities of'),
    "a constant nobody reads": ("helpers.py", "UNUSED = 1", "UNUSED = 2"),
}


@pytest.mark.parametrize(("file", "old", "new"), COSMETIC.values(), ids=COSMETIC.keys())
def test_edits_that_do_not_change_behaviour_keep_the_digest(
    project: Project, file: str, old: str, new: str
) -> None:
    before = project.fingerprint()
    texts = {"eval.py": EVAL, "helpers.py": HELPERS}
    texts[file] = edit(texts[file], old, new)
    after = project.fingerprint(texts["eval.py"], texts["helpers.py"])
    assert after.digest == before.digest


def test_a_parameter_named_like_a_module_level_dataset_does_not_pull_it_in(
    project: Project,
) -> None:
    text = EVAL + "\n\nexpected = [1, 2, 3]\n"
    before = project.fingerprint(text)
    after = project.fingerprint(edit(text, "expected = [1, 2, 3]", "expected = [4]"))
    assert after.digest == before.digest


def test_a_wrapping_decorator_is_seen_through(project: Project) -> None:
    wrapped = edit(
        EVAL,
        '@foreach("prompt,expected", dataset)',
        "import functools\n\n\ndef wrap(f):\n"
        "    @functools.wraps(f)\n    def inner(*a, **k):\n        return f(*a, **k)\n"
        '    return inner\n\n\n@foreach("prompt,expected", dataset)\n@wrap',
    )
    assert project.fingerprint(wrapped).digest == project.fingerprint().digest


def test_the_checkout_directory_does_not_matter_even_through_dunders(project: Project) -> None:
    text = edit(EVAL, "    answer = clean(", "    here = __file__ and __name__\n    answer = clean(")
    # Every variant lives in its own directory under its own module name.
    assert project.fingerprint(text).digest == project.fingerprint(text).digest


# -- what must move it ---------------------------------------------------------------


LOGIC = {
    "evaluation logic": ("eval.py", "> THRESHOLD", ">= THRESHOLD"),
    "helper in the same file": ("eval.py", "return text.strip()", 'return text.strip(" ")'),
    "helper from `from helpers import f`": (
        "helpers.py",
        "return text.lower()",
        "return text.casefold()",
    ),
    "helper reached as `helpers.score`": (
        "helpers.py",
        "return weigh(len(text))",
        "return weigh(len(text) + 1)",
    ),
    "helper of a helper": ("helpers.py", "return n * WEIGHT", "return n * WEIGHT + 1"),
    "number constant": ("eval.py", "THRESHOLD = 0.5", "THRESHOLD = 0.25"),
    "string constant": ("eval.py", 'PREFIX = "Answer: "', 'PREFIX = "A: "'),
    "constant read by a helper of a helper": ("helpers.py", "WEIGHT = 2", "WEIGHT = 3"),
    "a string literal": ("eval.py", 'r"[0-9]+"', 'r"[0-9]*"'),
}


@pytest.mark.parametrize(("file", "old", "new"), LOGIC.values(), ids=LOGIC.keys())
def test_edits_that_change_behaviour_change_the_digest(
    project: Project, file: str, old: str, new: str
) -> None:
    before = project.fingerprint()
    texts = {"eval.py": EVAL, "helpers.py": HELPERS}
    texts[file] = edit(texts[file], old, new)
    after = project.fingerprint(texts["eval.py"], texts["helpers.py"])
    assert after.digest != before.digest


def test_columns_and_options_are_part_of_the_digest(project: Project) -> None:
    module = project.load({"eval.py": EVAL, "helpers.py": HELPERS})
    func = module.eval_math

    def digest(columns: Any, options: dict[str, Any]) -> str:
        return code_fingerprint(func, columns=columns, options=options).digest

    base = digest(COLUMNS, {})
    assert digest(COLUMNS, {}) == base
    assert digest(("expected", "prompt"), {}) != base
    assert digest(("prompt",), {}) != base
    assert digest("prompt, expected", {}) == base  # the decorator's own spelling
    with_option = digest(COLUMNS, {"max_concurrency": 4, "tags": ["a"]})
    assert with_option != base
    assert digest(COLUMNS, {"tags": ["a"], "max_concurrency": 4}) == with_option
    assert digest(COLUMNS, {"max_concurrency": 8, "tags": ["a"]}) != with_option
    # An option holding an object fingerprints, without raising.
    assert digest(COLUMNS, {"client": threading.Lock()}) != base


# -- what is followed, what is not --------------------------------------------------


def test_sources_name_the_evaluation_and_its_project_helpers_only(project: Project) -> None:
    text = edit(EVAL, "def clean(text):\n", "def clean(text):  # keep me\n")
    module = project.load({"eval.py": text, "helpers.py": HELPERS})
    fp = code_fingerprint(module.eval_math, columns=COLUMNS, options={})
    name = module.__name__
    assert set(fp.sources) == {
        f"{name}.eval_math",
        f"{name}.clean",
        "helpers.normalize",
        "helpers.score",
        "helpers.weigh",
    }
    # Raw text, decorator and comments included, for showing diffs.
    assert fp.sources[f"{name}.eval_math"].startswith('@foreach("prompt,expected", dataset)\n')
    assert "# keep me" in fp.sources[f"{name}.clean"]
    assert fp.sources["helpers.weigh"] == "def weigh(n):\n    return n * WEIGHT\n"


def test_library_and_doteval_calls_are_not_followed(project: Project) -> None:
    text = """
    import json
    import re
    import threading
    from collections import OrderedDict
    from pathlib import Path

    import numpy as np
    import pytest

    from doteval._objects.hashing import hash_bytes

    LOCK = threading.Lock()
    LIMIT = np.int64(3)


    def eval_lib(prompt):
        with LOCK:
            data = OrderedDict(a=json.dumps(prompt))
        mean = np.mean(np.array([1.0, 2.0])) + LIMIT
        found = re.match("a", prompt), hash_bytes(prompt.encode())
        return found, pytest.approx(mean), Path(prompt).name, data
    """
    module = project.load({"eval.py": text})
    fp = code_fingerprint(module.eval_lib, columns=("prompt",), options={})
    assert list(fp.sources) == [f"{module.__name__}.eval_lib"]
    changed = project.load({"eval.py": edit(text, "LIMIT = np.int64(3)", "LIMIT = np.int64(4)")})
    assert code_fingerprint(changed.eval_lib, columns=("prompt",), options={}).digest != fp.digest


def test_recursion_between_helpers_terminates(project: Project) -> None:
    helpers = """
    def is_even(n):
        return True if n == 0 else is_odd(n - 1)


    def is_odd(n):
        return False if n == 0 else is_even(n - 1)


    def walk(n):
        return n if n < 1 else walk(n - 1)
    """
    text = """
    from helpers import is_even, walk


    def eval_parity(prompt):
        return is_even(len(prompt)) and walk(3) and eval_parity
    """
    before = project.fingerprint(text, helpers, func="eval_parity")
    assert {"helpers.is_even", "helpers.is_odd", "helpers.walk"} <= set(before.sources)
    after = project.fingerprint(text, edit(helpers, "return False if", "return None if"), func="eval_parity")
    assert after.digest != before.digest


def test_a_dotted_chain_through_a_project_package(project: Project) -> None:
    text = """
    import pkg.sub


    def eval_chain(prompt):
        return pkg.sub.shout(prompt) + pkg.sub.SUFFIX
    """
    sub = "SUFFIX = '!'\n\n\ndef shout(text):\n    return text.upper()\n"

    def digest(sub_text: str) -> str:
        extra = {"pkg/__init__.py": "", "pkg/sub.py": sub_text}
        return project.fingerprint(text, "", func="eval_chain", extra=extra).digest

    base = digest(sub)
    assert digest(sub) == base
    assert digest(edit(sub, "upper", "lower")) != base
    assert digest(edit(sub, "'!'", "'?'")) != base


def test_classes_closures_lambdas_and_cached_helpers(project: Project) -> None:
    text = '''
    import functools


    class Judge:
        """Grades answers."""

        def grade(self, answer):
            return len(answer) > 2


    JUDGE = Judge()
    shorten = lambda text: text[:10]


    @functools.lru_cache(maxsize=None)
    def cached(text):
        return text.title()


    def make(limit):
        def eval_made(prompt):
            return JUDGE.grade(shorten(cached(prompt))) and len(prompt) < limit
        return eval_made


    eval_made = make(100)
    '''

    def fingerprint(source: str) -> CodeFingerprint:
        return project.fingerprint(source, "", func="eval_made")

    base = fingerprint(text)
    assert fingerprint(edit(text, "Grades answers.", "Grades.")).digest == base.digest
    changes = [
        ("len(answer) > 2", "len(answer) > 3"),  # a method of the class of a global instance
        ("text[:10]", "text[:11]"),  # a lambda
        ("text.title()", "text.upper()"),  # behind lru_cache
        ("make(100)", "make(101)"),  # a closure variable
    ]
    for old, new in changes:
        assert fingerprint(edit(text, old, new)).digest != base.digest, old
    name = next(k for k in base.sources if k.endswith(".Judge"))
    assert "Grades answers." in base.sources[name]


def test_code_without_source_is_fingerprinted_by_its_bytecode(project: Project) -> None:
    text = """
    _GENERATED = "def generated(x):\\n    return x + 1\\n"
    exec(compile(_GENERATED, "<generated>", "exec"), globals())


    def eval_gen(prompt):
        return generated(prompt)
    """
    base = project.fingerprint(text, "", func="eval_gen")
    assert project.fingerprint(text, "", func="eval_gen").digest == base.digest
    changed = project.fingerprint(edit(text, "x + 1", "x + 2"), "", func="eval_gen")
    assert changed.digest != base.digest
    name = next(k for k in base.sources if k.endswith(".generated"))
    assert "not available" in base.sources[name]


def test_code_outside_the_root_is_not_followed(project: Project) -> None:
    # The helpers sit next to app/, on sys.path, but outside the given root.
    text = "from helpers import score\n\n\ndef eval_out(prompt):\n    return score(prompt)\n"

    def fingerprint(helpers_text: str) -> CodeFingerprint:
        module = project.load({"app/eval.py": text, "helpers.py": helpers_text}, main="app/eval")
        root = Path(module.__file__).parent
        return code_fingerprint(module.eval_out, columns=("prompt",), options={}, root=root)

    base = fingerprint(HELPERS)
    assert not any(k.startswith("helpers.") for k in base.sources)
    assert fingerprint(edit(HELPERS, "len(text)", "len(text) + 1")).digest == base.digest


def test_helpers_are_bounded(project: Project) -> None:
    count = MAX_HELPERS + 50
    chain = "".join(f"def h{i}(x):\n    return h{i + 1}(x)\n\n\n" for i in range(count))
    text = chain + f"def h{count}(x):\n    return x\n\n\ndef eval_many(p):\n    return h0(p)\n"
    fp = project.fingerprint(text, "", func="eval_many")
    assert MAX_HELPERS <= len(fp.sources) <= MAX_HELPERS + 2


def test_find_project_root(tmp_path: Path) -> None:
    deep = tmp_path / "repo" / "evals" / "math"
    deep.mkdir(parents=True)
    (deep / "eval_x.py").write_text("")
    (tmp_path / "repo" / "evals" / "conftest.py").write_text("")
    (tmp_path / "repo" / "conftest.py").write_text("")
    # No marker at all: the top-most conftest.py.
    if find_project_root(tmp_path) == tmp_path:  # no marker above tmp_path on this machine
        assert find_project_root(deep / "eval_x.py") == tmp_path / "repo"
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    assert find_project_root(deep / "eval_x.py") == tmp_path / "repo"
    (tmp_path / "repo" / "evals" / ".git").mkdir()
    assert find_project_root(deep) == tmp_path / "repo" / "evals"  # the nearest marker


# -- params ------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    model: str
    temperature: float


class Described:
    def __init__(self, model: str) -> None:
        self.model = model
        self._client = threading.Lock()

    def __doteval_params__(self) -> dict[str, Any]:
        return {"model": self.model}


class Client:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def complete(self, prompt: str) -> str:
        return prompt


def test_plain_params_are_their_own_form_and_order_does_not_matter() -> None:
    first = params_fingerprint({"model": "gpt", "k": 3, "stop": ["\n"], "seed": None})
    second = params_fingerprint({"seed": None, "stop": ["\n"], "k": 3, "model": "gpt"})
    assert isinstance(first, ParamsFingerprint)
    assert first.values == {"k": 3, "model": "gpt", "seed": None, "stop": ["\n"]}
    assert first.unfingerprintable == ()
    assert first.digest == second.digest == params_fingerprint(dict(first.values)).digest
    assert params_fingerprint({"model": "gpt", "k": 4, "stop": ["\n"], "seed": None}).digest != (first.digest)
    assert params_fingerprint({}).digest != params_fingerprint({"k": None}).digest


def test_dataclasses_pydantic_numpy_and_doteval_params() -> None:
    pydantic = pytest.importorskip("pydantic")
    np = pytest.importorskip("numpy")

    class Config(pydantic.BaseModel):
        top_p: float

    params = {
        "settings": Settings("gpt", 0.0),
        "described": Described("claude"),
        "config": Config(top_p=0.9),
        "weights": np.array([1.0, 2.0]),
    }
    fp = params_fingerprint(params)
    assert set(fp.values) == set(params) and fp.unfingerprintable == ()
    assert params_fingerprint(params).digest == fp.digest
    for name, other in [
        ("settings", Settings("gpt", 0.5)),
        ("described", Described("gpt")),
        ("config", Config(top_p=1.0)),
        ("weights", np.array([1.0, 3.0])),
    ]:
        assert params_fingerprint({**params, name: other}).digest != fp.digest, name


def test_unfingerprintable_values_are_named_and_left_out() -> None:
    client = Client()
    fp = params_fingerprint({"client": client, "model": "gpt", "call": client.complete})
    assert fp.unfingerprintable == ("call", "client")
    assert fp.values == {"model": "gpt"}
    assert fp.digest == params_fingerprint({"model": "gpt"}).digest
    assert fingerprintable(client) == (False, None)
    assert fingerprintable({"nested": [client]}) == (False, None)


def test_functions_as_params(project: Project) -> None:
    ok, form = fingerprintable(json.dumps)
    assert ok and form == {"__doteval_callable__": "json.dumps"}
    ok, form = fingerprintable([len, functools.partial(json.dumps, indent=2)])
    assert ok and json.dumps(form)  # plain data all the way down

    def scorer_digest(body: str) -> Any:
        text = f"THRESHOLD = 1\n\n\ndef scorer(answer):\n    return {body}\n"
        module = project.load({"scorers.py": text}, main="scorers")
        ok, form = fingerprintable(module.scorer)
        assert ok and form["__doteval_code__"] == "scorer"
        return params_fingerprint({"scorer": module.scorer, "names": [module.scorer]}).digest

    base = scorer_digest("len(answer) > THRESHOLD")
    assert scorer_digest("len(answer)  >  THRESHOLD  # same") == base
    assert scorer_digest("len(answer) >= THRESHOLD") != base


def test_fingerprintable_never_raises() -> None:
    class Broken:
        def __doteval_params__(self) -> dict[str, Any]:
            raise RuntimeError("boom")

    assert fingerprintable(Broken()) == (False, None)
    assert fingerprintable({object(): 1}) == (False, None)
    assert fingerprintable(threading) == (True, {"__doteval_module__": "threading"})
    nested: list[Any] = []
    nested.append(nested)
    assert fingerprintable(nested) == (False, None)
