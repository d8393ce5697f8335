"""The README's code runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- README snippet: tests/test_readme.py runs it as written -->"


def marked_snippets() -> list[str]:
    """The ```python blocks of the README that follow :data:`MARKER`."""
    pattern = re.escape(MARKER) + r"\n```python\n(.*?)```"
    return re.findall(pattern, README.read_text(), flags=re.DOTALL)


def test_readme_marks_at_least_one_snippet():
    assert marked_snippets()


@pytest.mark.parametrize("snippet", marked_snippets())
def test_readme_snippet_runs_as_written(snippet):
    exec(compile(snippet, str(README), "exec"), {"__name__": "readme"})
