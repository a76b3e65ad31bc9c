"""Run a documentation page as its reader would, in a fresh folder.

    python tests/docrun.py docs/how-to/x.md            # run it, report mismatches
    python tests/docrun.py --update docs/how-to/x.md   # ...and rewrite its shown outputs

What a page shows, and how the runner reads it (markers are HTML comments, so
they do not show in rendered markdown; put them on the line before a block):

- **files**: a fenced block after ``<!-- file: NAME -->``, or a ```python block
  whose first line is a ``# NAME.py`` comment, is written to ``NAME``.
- ``<!-- append: NAME -->``: the block is added at the end of ``NAME``.
- **edits**: a ```diff block after ``<!-- edit: NAME -->`` is applied to ``NAME``:
  its `` ``/``-`` lines are replaced by its `` ``/``+`` lines; a `` ...`` line
  separates hunks.
- **commands**: in a ```console block, each ``$ COMMAND`` line, and the lines up
  to the next ``$`` are its output; in a ```bash block, every line that is not a
  comment (its output is not checked). ``<!-- run: COMMAND -->`` is a command
  that the text asks for in words. A plain ``` block after ``<!-- output -->``
  is the output of the command run last. Commands run one by one in bash, in the
  folder the previous one left (``cd`` works), with the ``doteval``, ``pytest``
  and ``python3`` of this venv first on ``PATH`` (``.venv`` in the folder and
  ``/path/to/doteval/.venv`` are it; ``/path/to/doteval`` is this repository),
  ``DOTEVAL_STORE`` unset, no network, stdout and stderr together,
  ``COLUMNS=100``, and hypothesis' pytest plugin (of the test extra) off. The plain progress lines doteval prints when stderr is not a
  terminal are taken out: a reader at a terminal sees a progress bar instead,
  which the pages leave out.
- **exit codes**: each command must exit 0, unless its block follows
  ``<!-- exit: N -->``.
- **Ctrl+C**: ``<!-- interrupt: N -->`` sends SIGINT to the first command of the
  next block once N results are in the store's journal (the sample in flight
  still finishes); the command must then exit 2, as pytest does.
- **a crash**: ``<!-- kill: N -->`` is the same with SIGKILL, as ``kill -9``.
- **absolute paths**: ``<!-- folder: /tmp/demo -->`` (anywhere in the page) makes
  ``/tmp/demo`` stand for a fresh folder of the run, in commands and in outputs.
- **left out**: ``<!-- skip -->`` before a block: not run (another machine's
  commands); ``<!-- unchecked -->``: run, but its shown output is a
  reformatted excerpt, not compared.

``--update`` runs the page and rewrites each shown output that differs from
the real one, keeping its ``...`` cuts and the lines that are still true, and
each ``exit`` marker whose code changed; then it runs the page again to check.
Read the diff: a cut may need moving by hand when an output grew.

Comparing outputs: blank lines and runs of spaces do not count; a ``...`` line
stands for any number of lines (a trimmed output); progress bars (terminal
only) are left out. Before comparing, both sides are normalized: dates and
times, durations, rates, sizes, hex ids (8+ digits), the host name and
pytest's header lines (platform, rootdir, plugins) become placeholders, and
rules (``===``, ``───``) one character. A hex id of the page (4+ digits) is
mapped to the id the program printed at the same place, and later commands of
the page use the real one (``candidate@e4a3`` becomes the real revision).
"""

from __future__ import annotations

import argparse
import difflib
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
PROJECT_PLACEHOLDER = "/path/to/doteval"
INTERRUPTED = 2  # pytest's exit code for an interrupted session

# -- reading a page ---------------------------------------------------------------


@dataclass
class Command:
    text: str
    exit: int = 0
    interrupt_after: int | None = None
    sig: int = signal.SIGINT
    expected: list[str] | None = None  # shown output lines, None when not shown
    checked: bool = True
    span: tuple[int, int] | None = None  # where the shown output sits in the page (line range)
    fence: int | None = None  # the line of its block's opening fence (for the exit marker)


@dataclass
class FileStep:
    name: str
    content: str
    append: bool = False


@dataclass
class EditStep:
    name: str
    diff: str


Step = Command | FileStep | EditStep

_FENCE_OPEN = re.compile(r"^(?P<fence>```+|~~~+)(?P<lang>[\w+-]*)\s*$")
MARKERS = (
    "folder",
    "file",
    "append",
    "edit",
    "run",
    "output",
    "exit",
    "interrupt",
    "kill",
    "skip",
    "unchecked",
)
_MARKER = re.compile(rf"^<!--\s*(?P<key>{'|'.join(MARKERS)})\s*:?\s*(?P<value>.*?)\s*-->\s*$")
_FILE_COMMENT = re.compile(r"^#\s*(?P<name>[\w./-]+\.py)\s*$")


@dataclass
class _Block:
    lang: str
    lines: list[str]
    start: int  # index of the first body line in the page
    markers: dict[str, str] = field(default_factory=dict)


def _blocks(lines: list[str]) -> list[_Block]:
    """Fenced blocks with the markers before them, and ``run`` markers (lang "run"), in order."""
    out: list[_Block] = []
    pending: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line.strip())
        opening = _FENCE_OPEN.match(line)
        if marker:
            if marker["key"] == "run":
                out.append(_Block("run", [marker["value"]], i, pending))
                pending = {}
            else:
                pending[marker["key"]] = marker["value"]
        elif opening:
            fence = opening["fence"]
            j = i + 1
            while j < len(lines) and not lines[j].startswith(fence):
                j += 1
            out.append(_Block(opening["lang"], lines[i + 1 : j], i + 1, pending))
            pending = {}
            i = j
        elif line.strip():
            pending = {}
        i += 1
    return out


def folders(text: str) -> list[str]:
    """The absolute paths a page uses as scratch folders (``<!-- folder: PATH -->``)."""
    return re.findall(r"^<!--\s*folder:\s*(\S+)\s*-->\s*$", text, flags=re.MULTILINE)


def read_page(text: str) -> list[Step]:
    """The steps a reader of the page takes, in order."""
    steps: list[Step] = []
    last: Command | None = None
    for block in _blocks(text.splitlines()):
        m, body = block.markers, block.lines
        if "skip" in m:
            continue
        if "file" in m or "append" in m:
            steps.append(FileStep(m.get("file") or m["append"], "\n".join(body) + "\n", "append" in m))
        elif "edit" in m:
            steps.append(EditStep(m["edit"], "\n".join(body) + "\n"))
        elif block.lang == "python" and body and _FILE_COMMENT.match(body[0]):
            steps.append(FileStep(_FILE_COMMENT.match(body[0])["name"], "\n".join(body[1:]) + "\n"))  # type: ignore[index]
        elif block.lang in ("console", "bash", "sh", "shell", "run"):
            commands = _commands(block)
            for n, command in enumerate(commands):
                command.exit = int(m.get("exit") or (INTERRUPTED if "interrupt" in m and n == 0 else 0))
                if "interrupt" in m and n == 0:
                    command.interrupt_after = int(m["interrupt"])
                if "kill" in m and n == 0:
                    command.interrupt_after, command.sig = int(m["kill"]), signal.SIGKILL
                    command.exit = -signal.SIGKILL
                command.checked = "unchecked" not in m
            for command in commands:
                command.fence = block.start - 1
            steps += commands
            last = commands[-1] if commands else last
        elif "output" in m:
            assert last is not None, "an output block before any command"
            last.expected, last.span = body, (block.start, block.start + len(body))
            last.checked = "unchecked" not in m
    return steps


def _commands(block: _Block) -> list[Command]:
    commands: list[Command] = []
    for k, raw in enumerate(block.lines):
        at = block.start + k
        if block.lang == "console":
            if raw.startswith("$ "):
                commands.append(Command(raw[2:], span=(at + 1, at + 1)))
            elif commands:
                command = commands[-1]
                command.expected = [*(command.expected or []), raw]
                command.span = (command.span[0], at + 1)  # type: ignore[index]
        elif raw.strip() and not raw.lstrip().startswith("#"):
            commands.append(Command(raw.strip()))
    for command in commands:
        if command.expected is not None and not any(line.strip() for line in command.expected):
            command.expected = None
    return commands


# -- normalizing outputs ------------------------------------------------------------

_HEX = re.compile(r"(?<![\w.])[0-9a-f]{4,64}(?![\w-])")
_RULES = [
    (re.compile(r"^(platform|rootdir|plugins|cachedir|configfile)\b.*"), r"\1 <...>"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?"), "<time>"),
    (re.compile(r"\b\d{8}[-T]\d{6}\b"), "<time>"),
    (re.compile(r"\b\d+:\d\d:\d\d\b"), "<duration>"),
    (re.compile(r"\b(\d+h )?(\d+m )?\d+(\.\d+)?(ms|s)\b"), "<duration>"),
    (re.compile(r"\b\d+(\.\d+)?/s\b"), "<rate>"),
    (re.compile(r"\b\d+(\.\d+)? ?(B|KiB|MiB|GiB|kB|MB)\b"), "<size>"),
    (re.compile(r"^\d+(\.\d+)?[KMG]?(?=\s)"), "<size>"),  # du -sh
    (re.compile(r"^(Host:\s*)\S+"), r"\1<host>"),
    (re.compile(r"(=|!|─|━|═|-){3,}"), r"\1"),
    (re.compile(r"\s+"), " "),
]


def _hex_ids(line: str) -> list[str]:
    # an id has a letter or is long: a count such as 2026 is not an id
    return [h for h in _HEX.findall(line) if len(h) >= 8 or re.search("[a-f]", h)]


def normalize(line: str) -> str:
    line = line.rstrip()
    for h in _hex_ids(line):
        line = re.sub(rf"(?<![\w.]){h}(?![\w-])", "<id>", line)
    for pattern, repl in _RULES:
        line = pattern.sub(repl, line)
    return line.strip()


# "doteval: eval_x: 240/1000 samples (40 reused), 3.2/s, 2 errors, about 3m 57s left", also in the
# middle of a line of pytest's (stderr and stdout are one pipe here)
_PLAIN_PROGRESS = re.compile(r"doteval: [^\n:]+: \d+/(?:\d+|\?) samples[^\n]*?, \d+ errors?, [^\n]*\n?")


def _is_progress(line: str) -> bool:
    """A progress bar, or the ``^C`` a terminal echoes: what only a terminal shows."""
    return ("━" in line and not re.search("[┏┳┓┡╇┩]", line)) or line.strip() == "^C"


def _meaningful(lines: list[str]) -> list[str]:
    return [line.rstrip() for line in lines if line.strip() and not _is_progress(line)]


def _runs(expected: list[str]) -> list[list[str]]:
    """The expected lines split at ``...`` lines; an empty run marks a ``...`` at an end."""
    runs: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == "...":
            runs.append([])
        else:
            runs[-1].append(line)
    return runs


def _find(run: list[str], actual: list[str], start: int) -> int | None:
    want = [normalize(x) for x in run]
    have = [normalize(x) for x in actual]
    for i in range(start, len(have) - len(want) + 1):
        if have[i : i + len(want)] == want:
            return i
    return None


def match(expected: list[str], actual: list[str]) -> list[tuple[str, str]] | None:
    """Pairs (expected line, actual line) when ``actual`` is what ``expected`` shows."""
    expected, actual = _meaningful(expected), _meaningful(actual)
    runs = _runs(expected)
    pairs: list[tuple[str, str]] = []
    pos = 0
    for n, run in enumerate(runs):
        if not run:
            continue
        first, last = n == 0, n == len(runs) - 1
        at = len(actual) - len(run) if last else pos
        found = _find(run, actual, at)
        if found is None or (first and found != 0) or (last and found != len(actual) - len(run)):
            return None
        pairs += list(zip(run, actual[found : found + len(run)]))
        pos = found + len(run)
    if len(runs) == 1 and pos != len(actual):
        return None
    return pairs


def _keep_unchanged(old: list[str], new: list[str]) -> list[str]:
    """``new``, with the lines of ``old`` kept where they say the same (blank lines too)."""
    raw = [i for i, line in enumerate(old) if line.strip() and not _is_progress(line)]
    matcher = difflib.SequenceMatcher(None, [normalize(old[i]) for i in raw], [normalize(x) for x in new])
    out: list[str] = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op != "equal":
            out += new[b1:b2]
            continue
        for k in range(a2 - a1):  # an aligned line (a table's) is kept only at its width
            was, now = old[raw[a1 + k]], new[b1 + k]
            if k:
                out += old[raw[a1 + k - 1] + 1 : raw[a1 + k]]  # the blank lines between
            aligned = "  " in now.strip() or any(c in now for c in "─━═│┃")
            out.append(was if not aligned or len(was.rstrip()) == len(now.rstrip()) else now)
    return out


def refreshed(expected: list[str], actual: list[str]) -> list[str]:
    """The shown output rewritten from a real one, keeping its shape (its ``...`` cuts)
    and its lines that are still true."""
    actual = _meaningful(actual)
    runs = _runs(expected)
    if len(runs) == 1:
        return _keep_unchanged(expected, actual)
    out: list[str] = []
    pos = 0
    for n, run in enumerate(runs):
        if not run:
            if n and (not out or out[-1] != "..."):
                out.append("...")
            continue
        lines = _meaningful(run)
        size = min(len(lines), len(actual) - pos)
        want = [normalize(x) for x in lines]
        first, last = n == 0, n == len(runs) - 1
        # where most of its lines are; at its end of the output when it is there too
        anchored = 0 if first else len(actual) - size if last else None
        scores = {
            i: sum(normalize(a) in want for a in actual[i : i + size])
            for i in range(pos, len(actual) - size + 1)
        }
        best = max(scores.values(), default=0)
        at = anchored if anchored is not None and scores.get(anchored, -1) == best else None
        if at is None:
            at = min((i for i, v in scores.items() if v == best), default=pos)
        if (n and (not out or out[-1] != "...")) or (first and at > 0):
            out.append("...")
        out += _keep_unchanged(run, actual[at : at + size])
        pos = at + size
        if last and pos < len(actual):
            out.append("...")
    return out


# -- running a page ------------------------------------------------------------------


@dataclass
class Outcome:
    command: Command
    code: int
    output: list[str]
    problem: str | None
    seconds: float = 0.0


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOTEVAL_", "PYTEST_", "COV_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        COLUMNS="100",
        LINES="50",
        # no plain progress line (a reader at a terminal sees a bar, which the pages leave out)
        DOTEVAL_PROGRESS_EVERY="86400",
        NO_COLOR="1",
        TERM="dumb",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        # the test extra's hypothesis plugin, which a reader's venv need not have and no page
        # uses, costs a second of CPU at every pytest start
        PYTEST_ADDOPTS="-p no:hypothesispytest",
        # no network: a proxy that does not exist
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
    )
    return env


class PageRun:
    """One page's steps run in a fresh folder."""

    def __init__(self, folder: Path, scratch: list[str] = []) -> None:  # noqa: B006
        self.folder = folder
        self.cwd = folder
        # each absolute path the page uses, and the folder that stands for it
        self.paths = {
            shown: _scratch_folder(shown, folder / f"scratch{n}") for n, shown in enumerate(scratch)
        }
        self.ids: dict[str, str] = {}  # a page's hex id -> the one printed at its place
        self.env = environment(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".venv").symlink_to(VENV, target_is_directory=True)

    def _shell_text(self, text: str) -> str:
        text = text.replace(f"{PROJECT_PLACEHOLDER}/.venv", str(VENV)).replace(PROJECT_PLACEHOLDER, str(ROOT))
        for shown, real in self.paths.items():
            text = text.replace(shown, real)
        for shown, real in sorted(self.ids.items(), key=lambda kv: -len(kv[0])):
            text = re.sub(rf"(?<![\w-]){shown}(?![\w-])", real, text)
            for h in set(_HEX.findall(text)):
                if len(h) >= 4 and shown.startswith(h) and h not in self.ids:
                    text = re.sub(rf"(?<![\w-]){h}(?![\w-])", real[: len(h)], text)
        return text

    def write(self, step: FileStep) -> None:
        path = self.cwd / step.name
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.read_text(encoding="utf-8") + "\n\n" if step.append else ""
        path.write_text(before + step.content, encoding="utf-8")

    def edit(self, step: EditStep) -> None:
        path = self.cwd / step.name
        text = path.read_text(encoding="utf-8")
        for hunk in re.split(r"^ ?\.\.\.\s*$\n?", step.diff, flags=re.MULTILINE):
            old = [ln[1:] for ln in hunk.splitlines() if ln[:1] in (" ", "-")]
            new = [ln[1:] for ln in hunk.splitlines() if ln[:1] in (" ", "+")]
            if not old and not new:
                continue
            before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
            if text.count(before) != 1:
                raise AssertionError(f"{step.name}: the edit's lines are not in the file once:\n{before}")
            text = text.replace(before, after)
        path.write_text(text, encoding="utf-8")

    def run(self, command: Command) -> Outcome:
        where = tempfile.mktemp(dir=self.folder, prefix=".cwd-")
        script = f"{self._shell_text(command.text)}\n__rc=$?\npwd > {where}\nexit $__rc\n"
        started = time.monotonic()
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if command.interrupt_after is not None:
            self._interrupt_when(proc, command.interrupt_after, command.sig)
        out, _ = proc.communicate(timeout=600)
        if os.path.exists(where):
            self.cwd = Path(Path(where).read_text().strip())
            os.unlink(where)
        printed = _PLAIN_PROGRESS.sub("", out.decode("utf-8", "replace"))
        for shown, real in self.paths.items():
            printed = printed.replace(real, shown)
        output = printed.splitlines()
        problem = None
        if proc.returncode != command.exit:
            problem = f"exit code {proc.returncode}, the page says {command.exit}"
        elif command.expected is not None and command.checked:
            pairs = match(command.expected, output)
            if pairs is None:
                problem = "its output is not the one the page shows"
            else:
                for shown, real in pairs:
                    for a, b in zip(_hex_ids(shown), _hex_ids(real)):
                        self.ids.setdefault(a.rstrip("."), b)
        return Outcome(command, proc.returncode, output, problem, time.monotonic() - started)

    def _interrupt_when(self, proc: subprocess.Popen[bytes], results: int, sig: int) -> None:
        from doteval._objects.journal import read_journal

        deadline = time.monotonic() + 300  # turns a hang into a failure; never reached
        while proc.poll() is None and time.monotonic() < deadline:
            count = 0
            for journal in self.cwd.glob(".doteval/journals/*/*.journal"):
                try:
                    count += sum(1 for r in read_journal(journal)[0] if r and r[0] == "r")
                except OSError:
                    pass
            if count >= results:
                os.killpg(proc.pid, sig)
                return
            time.sleep(0.01)


def _scratch_folder(shown: str, fallback: Path) -> str:
    """A new folder with a path as long as ``shown``, so that lines wrap as the page shows."""
    parent, size = "/tmp/", len(shown) - len("/tmp/")
    if shown.startswith(parent) and size >= 2 and os.path.isdir(parent):
        for _ in range(1000):
            path = parent + "".join(random.choices(string.ascii_lowercase + string.digits, k=size))
            try:
                os.mkdir(path)
                return path
            except FileExistsError:
                continue
    return str(fallback)


def run_page(
    steps: list[Step],
    folder: Path,
    *,
    keep_going: bool = False,
    scratch: list[str] = [],  # noqa: B006
) -> list[Outcome]:
    """Run every step; stops at the first command that fails (``keep_going``: that
    exits with another code)."""
    page = PageRun(folder, scratch)
    try:
        return _run_steps(page, steps, keep_going)
    finally:
        for real in page.paths.values():
            if not real.startswith(str(folder)):
                shutil.rmtree(real, ignore_errors=True)


def _run_steps(page: PageRun, steps: list[Step], keep_going: bool) -> list[Outcome]:
    outcomes = []
    for step in steps:
        if isinstance(step, FileStep):
            page.write(step)
        elif isinstance(step, EditStep):
            page.edit(step)
        else:
            outcome = page.run(step)
            outcomes.append(outcome)
            if outcome.problem and not keep_going:
                break
    return outcomes


def report(outcome: Outcome) -> str:
    c = outcome.command
    shown = "\n".join(c.expected or [])
    return (
        f"$ {c.text}\n  {outcome.problem}\n--- the page shows\n{shown}\n"
        f"--- the program printed\n" + "\n".join(outcome.output)
    )


def update(path: Path, steps: list[Step], outcomes: list[Outcome], *, every: bool = False) -> int:
    """Rewrite the page's shown outputs, and its ``exit`` markers, from ``outcomes``;
    the number of places changed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    edits: list[tuple[int, int, list[str]]] = []  # (start, end, new lines), applied bottom up
    fences: dict[int, int] = {}
    for outcome in outcomes:
        c = outcome.command
        if outcome.problem is None and not every:
            continue
        if outcome.code != c.exit:
            if c.fence is not None and c.interrupt_after is None:
                fences[c.fence] = outcome.code
            continue
        if c.expected is None or not c.checked or c.span is None:
            continue
        new = refreshed(c.expected, outcome.output)
        if c.span[1] - c.span[0] == len(c.expected) and new != c.expected:
            edits.append((c.span[0], c.span[1], new))
    for fence, code in fences.items():
        has_marker = fence > 0 and re.match(r"<!--\s*exit\b", lines[fence - 1].strip())
        marker = [f"<!-- exit: {code} -->"] if code else []
        edits.append((fence - 1, fence, marker) if has_marker else (fence, fence, marker))
    for start, end, new in sorted(edits, key=lambda e: -e[0]):
        lines[start:end] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(edits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--update", action="store_true", help="rewrite the shown outputs from a real run")
    parser.add_argument(
        "--all", action="store_true", help="with --update: rewrite every shown output, also those that match"
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder the page ran in")
    parser.add_argument("--times", action="store_true", help="print how long each command took")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.pages:
        rewrite_all = args.all and args.update
        # --update: run again after each rewrite, as a later command may use an id shown earlier
        for _ in range(5 if args.update else 1):
            folder = Path(tempfile.mkdtemp(prefix="docrun-"))
            steps = read_page(path.read_text(encoding="utf-8"))
            outcomes = run_page(steps, folder, keep_going=args.update, scratch=folders(path.read_text()))
            bad = [o for o in outcomes if o.problem]
            for o in outcomes if args.times else []:
                print(f"{o.seconds:6.1f}s  {o.command.text}")
            if args.keep:
                print(f"{path}: ran in {folder}")
            else:
                subprocess.run(["rm", "-rf", str(folder)], check=False)
            if rewrite_all:
                rewrite_all = False
                if update(path, steps, outcomes, every=True):
                    print(f"{path}: rewrote the shown outputs; running it again")
                    continue
            if not bad:
                print(f"{path}: ok ({len(outcomes)} commands)")
                break
            if not (args.update and update(path, steps, outcomes)):
                print(f"{path}: FAILED\n{report(bad[0])}")
                failed += 1
                break
            print(f"{path}: updated {len(bad)} shown output(s); running it again")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
