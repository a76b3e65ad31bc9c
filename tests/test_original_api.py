"""What users of the original doteval (0.22) type on the command line (issue 11).

Its Python API (name=, valid_json(value, schema), Score.metadata, numeric_match)
is tested in tests/test_evaluators.py.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("args", [["-C", "4"], ["--concurrent=8"], ["-C"]])
def test_the_original_concurrent_option_points_at_concurrency(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    # The original doteval's -C/--concurrent is not taken back; its error names the option to use.
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "use --concurrency N" in "\n".join(result.errlines + result.outlines)


def test_docs_write_params_in_one_form() -> None:
    # `doteval show`, the change messages, diff and the report write a dataclass param
    # as ``ToyModel(name='x')``; no page shows the stored dict with its ``__type__`` key.
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "'__type__':" not in text, f"{page.name} shows params as a raw dict"
