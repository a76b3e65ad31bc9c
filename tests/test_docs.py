"""The documentation matches the code.

- docs/reference/cli.md documents every command, option and help text that the
  typer app and the pytest plugin really register;
- the ``doteval --help`` it shows is the real one;
- every relative link in README.md and docs/ points at a file that exists;
- ``import doteval`` stays free of the CLI's dependencies (typer, rich).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from doteval._cli.app import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_REFERENCE = DOCS / "reference" / "cli.md"


def _cli_reference() -> str:
    return CLI_REFERENCE.read_text(encoding="utf-8")


def _root_command() -> Any:
    return typer.main.get_command(app)


def _commands() -> dict[str, Any]:
    return dict(_root_command().commands)


def _long_options(command: Any) -> list[str]:
    """The long ``--name`` of every visible option of a click command."""
    names: list[str] = []
    for param in command.params:
        if getattr(param, "param_type_name", None) != "option" or getattr(param, "hidden", False):
            continue
        names += [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
    return names


def _documented(text: str, option: str) -> bool:
    """``option`` appears in backticks (alone or with its value: `--store PATH`)."""
    return re.search("`" + re.escape(option) + r"(?![\w-])", text) is not None


# -- CLI reference --------------------------------------------------------------


def test_the_app_has_commands() -> None:
    assert {"run", "list", "show", "delete"} <= set(_commands())


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_a_heading(name: str) -> None:
    headings = re.findall(r"^## (.+?)\s*$", _cli_reference(), flags=re.MULTILINE)
    assert f"doteval {name}" in headings, f"docs/reference/cli.md needs a '## doteval {name}' heading"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_option_is_documented(name: str) -> None:
    text = _cli_reference()
    options = _long_options(_commands()[name])
    missing = [o for o in options if not _documented(text, o)]
    assert not missing, f"options of `doteval {name}` missing from docs/reference/cli.md: {missing}"


def test_the_help_listing_is_the_real_one() -> None:
    """The ``doteval --help`` that cli.md shows is what ``doteval --help`` prints."""
    shown = _cli_reference().split("$ doteval --help\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run(
        [sys.executable, "-m", "doteval", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr
    assert shown == proc.stdout


def test_root_options_are_documented() -> None:
    text = _cli_reference()
    missing = [o for o in _long_options(_root_command()) if not _documented(text, o)]
    assert not missing, f"options of `doteval` missing from docs/reference/cli.md: {missing}"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_help_text_is_quoted(name: str) -> None:
    help_text = (_commands()[name].help or "").strip()
    assert help_text, f"`doteval {name}` has no help text"
    first_line = help_text.splitlines()[0].strip()
    assert first_line in _cli_reference(), f"docs/reference/cli.md should quote: {first_line!r}"


def _pytest_group_options(pytester: pytest.Pytester) -> list[str]:
    """The long options listed under the doteval group of ``pytest --help``."""
    result = pytester.runpytest("--help")
    lines = result.outlines
    starts = [i for i, line in enumerate(lines) if line.startswith("doteval")]
    assert starts, "pytest --help shows no doteval option group:\n" + "\n".join(lines)
    options: list[str] = []
    for line in lines[starts[0] + 1 :]:
        if not line.strip():
            break
        match = re.match(r"  (--[\w-]+)", line)  # option lines; help continues further right
        if match:
            options.append(match.group(1))
    return options


def test_every_pytest_option_is_documented(pytester: pytest.Pytester) -> None:
    options = _pytest_group_options(pytester)
    assert "--experiment" in options and "--store" in options, options
    text = _cli_reference()
    missing = [o for o in options if not _documented(text, o)]
    assert not missing, f"pytest options missing from docs/reference/cli.md: {missing}"


FLAKY_EVAL = """
from doteval import Result, foreach


@foreach("q", [f"q{i}" for i in range(10)])
def eval_flaky(q):
    if q in ("q3", "q7"):
        raise ValueError("cannot score " + q)
    return Result(True)
"""


def _exit_code_examples() -> list[tuple[int, str]]:
    """(code, command) for every command shown in a row of the "Exit codes" table."""
    text = _cli_reference()
    section = text[text.index("## Exit codes") :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    examples = []
    for row in re.findall(r"^\| (\d) \|(.*)$", section, flags=re.MULTILINE):
        # the examples are listed after a colon (prose names commands too: "also `doteval diff`")
        for span in re.findall(r"[:,] `([^`]+)`", row[1]):
            if span == "doteval" or span.startswith(("doteval ", "pytest ")):
                examples.append((int(row[0]), span))
    return examples


def test_the_exit_code_table_has_an_example_for_each_code() -> None:
    codes = {code for code, _ in _exit_code_examples()}
    assert codes == {0, 1, 2, 4, 5}, codes


@pytest.mark.parametrize(("code", "command"), _exit_code_examples())
def test_documented_exit_codes(code: int, command: str, tmp_path: Path) -> None:
    # Each row of docs/reference/cli.md's "Exit codes" table, run as written.
    import shlex

    project = tmp_path / "project"
    (project / "empty_folder").mkdir(parents=True)
    (project / "eval_flaky.py").write_text(FLAKY_EVAL)
    program, *args = shlex.split(command)
    if program == "pytest":
        args = ["-p", "no:cacheprovider", *args]
    proc = subprocess.run(
        [sys.executable, "-m", program, *args], capture_output=True, text=True, timeout=120, cwd=project
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert proc.returncode == code, proc.stdout + proc.stderr


PYTHON_API = DOCS / "reference" / "python-api.md"
RESUME_HOWTO = DOCS / "how-to" / "resume-failed-evaluations.md"


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end > 0 else len(text)]


def _resolve(name: str) -> type:
    import asyncio
    import builtins

    import doteval.errors

    module, _, attr = name.rpartition(".")
    where = {"": builtins, "asyncio": asyncio}.get(module, doteval.errors)
    found = getattr(where, attr, None) or getattr(doteval.errors, attr)
    assert isinstance(found, type), name
    return found


def test_the_rule_for_transient_errors_is_documented_as_the_code_has_it() -> None:
    from doteval._running import retries as retry

    rule = " ".join(_section(PYTHON_API, "## Retries of transient errors").split())
    bullets = {b.split(":", 1)[0]: b for b in rule.split(" - ")}

    def spans(prefix: str) -> list[str]:
        (bullet,) = [b for head, b in bullets.items() if head.startswith(prefix)]
        return re.findall(r"`([^`]+)`", bullet.split(":", 1)[1].split("(so ")[0])

    types = {_resolve(n) for n in spans("it is an instance of one of these classes")}
    assert types == set(retry.TRANSIENT_TYPES)
    statuses = {int(n) for n in spans("or it carries one of these HTTP statuses") if n.isdigit()}
    assert statuses == set(retry.TRANSIENT_STATUSES)
    assert tuple(spans("or the name of its class")) == retry.TRANSIENT_NAME_PARTS
    never = rule[rule.index("Never retried") :].split("`. ")[0] + "`"
    assert {_resolve(n) for n in re.findall(r"`([^`]+)`", never)} == set(retry.NEVER_RETRIED)

    # every other page that names the statuses or the names names all of them
    listed = r"(?:HTTP|status) ((?:\d{3}(?:,? and |,? or |, ))+\d{3})"
    for path in (CLI_REFERENCE, PYTHON_API, RESUME_HOWTO):
        text = " ".join(path.read_text(encoding="utf-8").split())
        found = re.findall(listed, text)
        assert found, path
        for numbers in found:
            assert {int(n) for n in re.findall(r"\d{3}", numbers)} == set(retry.TRANSIENT_STATUSES), (
                path,
                numbers,
            )
    howto = " ".join(RESUME_HOWTO.read_text(encoding="utf-8").split())
    assert all(f"`{part}`" in howto for part in retry.TRANSIENT_NAME_PARTS)

    # and its example runs as shown
    import doctest

    section = re.sub(r"```\w*", "", _section(PYTHON_API, "## Retries of transient errors"))
    test = doctest.DocTestParser().get_doctest(section, {}, "retries", str(PYTHON_API), 0)
    assert test.examples
    assert doctest.DocTestRunner().run(test).failed == 0


def test_environment_variables_are_documented() -> None:
    text = _cli_reference()
    for name in ("DOTEVAL_STORE", "DOTEVAL_PROGRESS", "DOTEVAL_PROGRESS_EVERY", "NO_COLOR"):
        assert f"`{name}" in text, name


# -- links ----------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_INLINE_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", flags=re.MULTILINE)


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def relative_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = _INLINE_CODE.sub("", _FENCE.sub("", text))
    targets = _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)
    return [t for t in targets if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|#|//", t)]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        if file_part and not (path.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"


def test_the_link_checker_sees_links() -> None:
    # Guards the regular expressions: the README links to the docs.
    assert "docs/reference/cli.md" in relative_links(ROOT / "README.md")


# -- import cost ----------------------------------------------------------------


def test_import_doteval_leaves_out_typer_and_rich(tmp_path: Path) -> None:
    code = (
        "import doteval, sys; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich')); "
        "assert not loaded, loaded"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
