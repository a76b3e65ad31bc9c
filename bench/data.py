"""Deterministic data sets and stand-in models for the benchmarks.

Everything here is a pure function of its arguments (seeded ``random.Random``,
never Python's salted ``hash``), so every run of the suite, on any machine,
evaluates and stores the same bytes.

- ``arithmetic_items``: short questions with short answers (about 150-190 B
  per result as a JSON line).
- ``chat_items`` / ``chat_response``: chat-style responses of 1-4 KB built
  from a seeded word list: varied sentences, markdown headings and lists,
  code blocks, like real model output.
"""

from __future__ import annotations

import itertools
import random
import zlib

# -- arithmetic ---------------------------------------------------------------

_OPS = "+-*"


def arithmetic_items(n: int, offset: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (question, answer) pairs; ``offset`` shifts to another range."""
    items = []
    for i in range(offset, offset + n):
        a, b, op = i % 1000, (i // 1000) % 1000 + (i // 1_000_000) * 1000, _OPS[i % 3]
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        items.append((f"What is {a} {op} {b}?", str(answer)))
    return items


def arithmetic_answer(prompt: str) -> str:
    """What the stand-in model answers: right, except for a reproducible slip."""
    a_text, op, b_text = prompt[8:-1].split(" ")
    a, b = int(a_text), int(b_text)
    answer = a + b if op == "+" else a - b if op == "-" else a * b
    if (a * 7 + b * 3) % 10 == 0:
        answer += 1
    return str(answer)


# The stand-in model of the pytest runs, written into the generated conftest.py
# (and executed by the JSON-lines baseline, so both loops call the same code).
MODEL_SOURCE = '''
class InstantModel:
    """Answers arithmetic questions at once: right, except for a reproducible slip."""

    def __doteval_params__(self):
        return {"name": "instant", "version": 1}

    def generate(self, prompt):
        a_text, op, b_text = prompt[8:-1].split(" ")
        a, b = int(a_text), int(b_text)
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        if (a * 7 + b * 3) % 10 == 0:
            answer += 1
        return str(answer)
'''

# -- chat-style responses ----------------------------------------------------

_WORDS = """
the of and to a in is that it for as with was on be by this are from or have an not which but at
they can one all their will more there has been if when would so what about into than its some could
them other these time only new may also use two how first then way each most any over such our like
just where after those even many make well should because through between very much before must same
while however both under used work number part each data model value case result example point
system following given function code set order first need change test output input file line error
type method state object process step run call return list string question answer response prompt
token request user first second third note important simple small large fast slow easy hard common
true false check update build read write load save start stop open close handle support include
require define create remove replace compare measure improve performance memory cache index query
table column row field record key version server client network message event task thread async
await loop batch stream score metric sample evaluation dataset training label feature vector matrix
average mean total count rate limit size length width depth level layer weight probably usually
often always never sometimes quickly carefully directly simply approach solution problem issue
option setting default config parameter argument because although unless whether since until
therefore instead otherwise rather
""".split()  # noqa: SIM905

_TECH = """
Python JSON HTTP API SQL Docker Kubernetes Redis PostgreSQL NumPy pandas pytest asyncio FastAPI
React TypeScript Linux Git YAML CSV UTF-8 TLS OAuth gRPC Rust
""".split()  # noqa: SIM905

_IDENTS = [
    "data",
    "items",
    "result",
    "value",
    "config",
    "cache",
    "client",
    "response",
    "records",
    "index",
    "count",
    "total",
    "path",
    "name",
    "batch",
    "model",
    "score",
    "row",
    "key",
    "text",
]

# Zipf-like weights: common words much more common, as in real text.
_WEIGHTS = [1.0 / (rank + 1) ** 0.9 for rank in range(len(_WORDS))]
_CUM = list(itertools.accumulate(_WEIGHTS))


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _sentence(rng: random.Random) -> str:
    n = rng.randint(6, 20)
    words = rng.choices(_WORDS, cum_weights=_CUM, k=n)
    if rng.random() < 0.4:
        words[rng.randrange(n)] = rng.choice(_TECH)
    if rng.random() < 0.2:
        words[rng.randrange(n)] = f"`{rng.choice(_IDENTS)}`"
    if n > 9 and rng.random() < 0.5:
        words[rng.randrange(3, n - 3)] += ","
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice("....?!")


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


def _code_block(rng: random.Random) -> str:
    f = rng.choice(["load", "parse", "compute", "update", "fetch", "merge", "filter", "build"])
    a, b, c = rng.sample(_IDENTS, 3)
    lines = [f"def {f}_{a}({b}, {c}=None):"]
    for _ in range(rng.randint(3, 10)):
        x, y = rng.sample(_IDENTS, 2)
        template = rng.choice(
            [
                f"    {x} = {y}.get({rng.choice(_IDENTS)!r}, {rng.randint(0, 100)})",
                f"    for {x} in {y}:",
                f"        {x}.append({y}[{rng.randint(0, 9)}])",
                f"    if {x} is None:",
                f"        return {y}",
                f"    {x} = [{y} * {rng.randint(2, 9)} for {y} in range({rng.randint(1, 50)})]",
                f"    # {_sentence(rng)[:-1].lower()}",
                f"    {x}[{rng.choice(_IDENTS)!r}] = {y}",
            ]
        )
        lines.append(template)
    lines.append(f"    return {a}")
    lang = "python" if rng.random() < 0.8 else ""
    return f"```{lang}\n" + "\n".join(lines) + "\n```"


def chat_response(prompt: str) -> str:
    """A 1-4 KB markdown answer, the same for the same prompt."""
    rng = random.Random(_seed(prompt))
    target = rng.randint(1000, 4000)
    parts = [_paragraph(rng)]
    while sum(len(p) + 2 for p in parts) < target:
        kind = rng.random()
        if kind < 0.35:
            parts.append(_paragraph(rng))
        elif kind < 0.55:
            parts.append(f"## {' '.join(w.capitalize() for w in rng.choices(_WORDS, cum_weights=_CUM, k=3))}")
            parts.append(_paragraph(rng))
        elif kind < 0.8:
            bullets = []
            for _ in range(rng.randint(3, 6)):
                term = rng.choice(_TECH + _WORDS[:80])
                bullets.append(f"- **{term}**: {_sentence(rng)}")
            parts.append("\n".join(bullets))
        else:
            parts.append(_code_block(rng))
    return "\n\n".join(parts)[:target]


def chat_items(n: int, offset: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (question, topic) pairs."""
    items = []
    for i in range(offset, offset + n):
        rng = random.Random(i * 7919 + 17)
        topic = rng.choice(_TECH)
        verb = rng.choice(["explain", "compare", "debug", "speed up", "test", "document", "design"])
        words = " ".join(rng.choices(_WORDS, cum_weights=_CUM, k=rng.randint(4, 14)))
        items.append((f"[{i}] How do I {verb} {words} with {topic}?", topic))
    return items
