"""Every page a user follows runs as written, in a fresh folder (see tests/docrun.py).

The pages: README.md's "Writing an evaluation", the tutorial, every how-to, and
the seed how-to that users arrive with (``../shared/seed/``, beside the
repository, when it is there). Every page runs in full in the
default run; a quick test of every page also checks that its files compile,
its commands name real commands and options, and its markers are well formed.

To refresh the outputs a page shows after a change of the program:
``python tests/docrun.py --update PAGE``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import docrun
import pytest

ROOT = Path(__file__).resolve().parents[1]
# shared/ sits beside the repository (CI's clone, the main checkout); a git worktree
# kept in a folder of worktrees finds it one level up
SEED = next(
    (
        p / "shared" / "seed" / "000_8a55cf5706e22f49.txt"
        for p in (ROOT.parent, ROOT.parent.parent)
        if (p / "shared" / "seed" / "000_8a55cf5706e22f49.txt").is_file()
    ),
    ROOT.parent / "shared" / "seed" / "000_8a55cf5706e22f49.txt",
)
README = ROOT / "README.md"
TUTORIAL = ROOT / "docs" / "tutorials" / "01-your-first-evaluation.md"
RESUME = ROOT / "docs" / "how-to" / "resume-failed-evaluations.md"
HOWTOS = sorted((ROOT / "docs" / "how-to").glob("*.md"))

# Pages could be kept out of the default run here (`pytest -m slow` runs them); none is:
# a page that drifts from the program is a defect a user meets, so CI runs every page
# (about five minutes, mostly toy models sleeping).
SLOW: set[str] = set()


def readme_section() -> str:
    """README.md's "Writing an evaluation": what a reader types after the quickstart."""
    text = README.read_text(encoding="utf-8")
    return text.split("## Writing an evaluation", 1)[1].split("\n## ", 1)[0]


def page_text(path: Path) -> str:
    return readme_section() if path == README else path.read_text(encoding="utf-8")


PAGES = [README, TUTORIAL, *HOWTOS]


def _id(path: Path) -> str:
    return path.name


def _marks(path: Path) -> list[Any]:
    return [pytest.mark.slow] if path.name in SLOW else []


def run_page(text: str, tmp_path: Path) -> list[docrun.Outcome]:
    outcomes = docrun.run_page(docrun.read_page(text), tmp_path, scratch=docrun.folders(text))
    bad = [o for o in outcomes if o.problem]
    assert not bad, docrun.report(bad[0])
    return outcomes


# -- full runs --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [pytest.param(p, marks=_marks(p), id=_id(p)) for p in PAGES])
def test_page_runs_as_written(path: Path, tmp_path: Path) -> None:
    outcomes = run_page(page_text(path), tmp_path)
    assert outcomes, f"{path.name} shows no command"


# -- quick checks of every page ----------------------------------------------------------


@pytest.mark.parametrize("path", PAGES, ids=_id)
def test_page_is_well_formed(path: Path) -> None:
    text = page_text(path)
    steps = docrun.read_page(text)
    assert any(isinstance(s, docrun.Command) for s in steps), f"{path.name}: no command to run"
    for step in steps:
        if isinstance(step, docrun.FileStep) and step.name.endswith(".py"):
            compile(step.content, step.name, "exec")
    # a marker the runner does not know is a typo: it would silently not run a step
    for marker in re.findall(r"<!--\s*(\w+)\s*:?.*?-->", text):
        assert marker in docrun.MARKERS, f"{path.name}: unknown marker <!-- {marker} -->"


def test_the_readme_shows_the_model_fixture_it_uses() -> None:
    files = {s.name: s.content for s in docrun.read_page(readme_section()) if isinstance(s, docrun.FileStep)}
    assert set(files) == {"conftest.py", "eval_math.py"}
    assert "def model(" in files["conftest.py"] and ", model)" in files["eval_math.py"]


def test_the_tutorial_says_once_how_its_commands_are_found() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    assert text.count("source /path/to/doteval/.venv/bin/activate") == 1
    assert ".venv/bin/pytest" not in text.replace("/path/to/doteval/.venv/bin/doteval", "")


def test_the_readme_quickstart_runs(tmp_path: Path) -> None:
    """The quickstart's doteval command, and what the README says of a second run and of show.

    (Its installs are what CI does: .ci/run creates the venv and runs the README's
    test command, checked below to be the same.)
    """
    quickstart = README.read_text(encoding="utf-8").split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    first, second = [ln for ln in quickstart.splitlines() if ln.startswith("python3 -m venv .venv")]
    run = first.split(" && ")[-1]
    assert run == ".venv/bin/doteval run examples --experiment quickstart"
    assert second.split(" && ")[-1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    page = f"```bash\n{run}\n```\n```console\n$ {run} | grep 'this run'\n...evaluated 0, reused 60.\n"
    page += "$ .venv/bin/doteval show quickstart\nSession: quickstart\nStatus: Completed\n...\n```\n"
    outcomes = run_page(
        page.replace(
            "...evaluated",
            "Experiment 'quickstart': Completed, 60/60 samples (100.0%), 0 errors; this run evaluated",
        ),
        tmp_path,
    )
    assert len(outcomes) == 3


def test_the_quickstart_example_runs_with_only_doteval_installed(tmp_path: Path) -> None:
    """The quickstart's first command installs doteval alone, and `doteval run examples` reads
    the repository's pytest options (pyproject.toml's addopts): none may need a plugin of the
    test extra (``--dist`` is pytest-xdist's; the suite's command gives it)."""
    env = dict(os.environ, DOTEVAL_STORE=str(tmp_path / "store"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTEST_ADDOPTS="")
    plugins = ["-p", "doteval._pytest_plugin", "-p", "no:cacheprovider"]  # no plugin but doteval's
    proc = subprocess.run(
        [sys.executable, "-m", "doteval", "run", "examples", "--experiment", "quickstart", *plugins],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "60/60 samples" in proc.stdout, proc.stdout


# -- the runner itself --------------------------------------------------------------------

_PAGE = """
<!-- file: hello.py -->
```python
print("hello 2026-11-30 02:02:39 8ab22330d8")
```

<!-- edit: hello.py -->
```diff
-print("hello 2026-11-30 02:02:39 8ab22330d8")
+print("hello 2026-11-30 02:02:39 8ab22330d8"); print("id 8ab22330d8")
```

```console
$ python3 hello.py
hello 2026-12-04 10:00:00 0123456789
...
$ echo 0123
8ab2
```

<!-- exit: 3 -->
```bash
(exit 3)   # a comment
```
"""


def test_the_runner_checks_outputs_exit_codes_and_maps_ids(tmp_path: Path) -> None:
    outcomes = run_page(_PAGE, tmp_path / "a")
    assert [o.command.text for o in outcomes] == ["python3 hello.py", "echo 0123", "(exit 3)   # a comment"]
    wrong = _PAGE.replace("$ echo 0123\n8ab2", "$ echo 0123\n9999")
    bad = [o for o in docrun.run_page(docrun.read_page(wrong), tmp_path / "b") if o.problem]
    assert bad and "output" in (bad[0].problem or "")
    wrong = _PAGE.replace("<!-- exit: 3 -->", "")
    bad = [o for o in docrun.run_page(docrun.read_page(wrong), tmp_path / "c") if o.problem]
    assert bad and "exit code 3" in (bad[0].problem or "")


def test_the_runner_updates_a_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(_PAGE.replace("$ echo 0123\n8ab2", "$ echo 0123\nstale\n...\n"), encoding="utf-8")
    assert docrun.main(["--update", str(page)]) == 0
    assert "$ echo 0123\n8ab2\n...\n" in page.read_text(encoding="utf-8")
    assert docrun.main([str(page)]) == 0
    # an exit code that changed: the marker follows
    page.write_text(_PAGE.replace("<!-- exit: 3 -->", "<!-- exit: 1 -->"), encoding="utf-8")
    assert docrun.main(["--update", str(page)]) == 0
    assert "<!-- exit: 3 -->" in page.read_text(encoding="utf-8")


def test_normalizing_keeps_what_matters() -> None:
    assert docrun.normalize("Duration: 24s  Last updated: 2026-11-30 02:03:31") == docrun.normalize(
        "Duration: 3s Last updated: 2025-01-01 00:00:00"
    )
    assert docrun.normalize("26/60 (43.3%)") != docrun.normalize("27/60 (45.0%)")
    assert docrun.normalize("exit code: 1") != docrun.normalize("exit code: 0")


# -- the seed how-to ----------------------------------------------------------------------


def seed_commands(text: str) -> list[str]:
    """The shell commands the seed shows (its bash blocks), the ones for files it never shows left out."""
    lines = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        if lang == "bash":
            lines += [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return lines


def seed_imports(text: str) -> list[str]:
    return sorted(
        set(re.findall(r"^(?:from doteval\S* import .+|import doteval\S*)$", text, flags=re.MULTILINE))
    )


def _seed_text() -> str:
    if SEED.is_file():
        return SEED.read_text(encoding="utf-8")
    # CI runs beside a copy of shared/; elsewhere the repository's version of the
    # seed shows the same commands and imports (checked below when both are here)
    return RESUME.read_text(encoding="utf-8")


def test_the_seed_imports_work(tmp_path: Path) -> None:
    imports = seed_imports(_seed_text())
    assert "from doteval.storage import get_storage_backend" in imports
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(imports)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_the_resume_how_to_shows_every_seed_command_and_import() -> None:
    if not SEED.is_file():
        pytest.skip(f"the seed is not beside the repository ({SEED})")
    seed, ours = SEED.read_text(encoding="utf-8"), RESUME.read_text(encoding="utf-8")
    assert set(seed_imports(seed)) <= set(seed_imports(ours))
    missing = [c for c in seed_commands(seed) if c.split("  #")[0].strip() not in ours]
    assert not missing, missing


def seed_steps(text: str) -> list[docrun.Step]:
    """The seed's commands, in order, over the files of the resume how-to.

    The seed never shows its evaluation files; the repository's version of it does
    (``conftest.py``, ``eval_large.py`` and the edits to it). ``eval_script.py`` is
    the seed's name for "your evaluation file". An experiment that a command
    expects to exist (``doteval show crashed_eval`` after a crash) is made first by
    a run killed part way, as the seed's story has it.
    """
    steps: list[docrun.Step] = [
        s for s in docrun.read_page(RESUME.read_text(encoding="utf-8")) if not isinstance(s, docrun.Command)
    ]
    steps.append(docrun.Command("cp eval_large.py eval_script.py"))
    made: set[str] = set()
    for line in seed_commands(text):
        words = shlex.split(line, comments=True)
        name = words[words.index("--experiment") + 1] if "--experiment" in words else None
        if words[:1] == ["doteval"] and len(words) > 2 and words[1] in ("show", "delete"):
            name = words[2]
            if name not in made:
                crash = docrun.Command(f"pytest eval_script.py::eval_resumable --experiment {name}")
                crash.interrupt_after, crash.sig, crash.exit = 5, signal.SIGKILL, -signal.SIGKILL
                steps.append(crash)
        if name:
            made.add(name)
        steps.append(docrun.Command(line))
    # its scripts (the blocks with a __main__), over an experiment with errors to look at
    steps.append(
        docrun.Command(
            "MODEL_SERVER=flaky pytest eval_large.py::eval_resumable --experiment problematic_eval "
            "--max-retries 0 || true"
        )
    )
    for n, script in enumerate(seed_scripts(text)):
        steps += [
            docrun.FileStep(f"seed_script_{n}.py", script),
            docrun.Command(f"python3 seed_script_{n}.py"),
        ]
    return steps


def seed_scripts(text: str) -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [b for b in blocks if 'if __name__ == "__main__":' in b]


def test_the_seed_commands_run_as_written(tmp_path: Path) -> None:
    outcomes = docrun.run_page(seed_steps(_seed_text()), tmp_path)
    bad = [o for o in outcomes if o.problem]
    assert not bad, docrun.report(bad[0])
    assert len(outcomes) >= len(seed_commands(_seed_text())) + len(seed_scripts(_seed_text()))
    assert len(seed_scripts(_seed_text())) >= 2
