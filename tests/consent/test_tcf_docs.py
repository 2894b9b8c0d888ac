"""The examples in docs/consent-standards.md run, and return what the page says they return."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "consent-standards.md"
SAMPLE_GVL = Path(__file__).parent / "vectors" / "gvl-v3-sample.json"
MARK = "# -> "


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def _checked(block: str) -> str:
    """Each `expr  # -> value` line becomes a check that expr equals value."""
    lines = []
    for line in block.splitlines():
        if MARK in line:
            code, expected = line.split(MARK, 1)
            expected = expected.split("  (", 1)[0].strip()
            lines.append(f"__check({code.strip()!r}, {expected!r})")
        else:
            lines.append(line)
    return "\n".join(lines)


def test_the_page_has_checked_examples() -> None:
    blocks = _blocks()
    assert len(blocks) >= 5
    assert sum(block.count(MARK) for block in blocks) >= 15


def test_every_example_runs_and_returns_what_the_page_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(SAMPLE_GVL, tmp_path / "vendor-list.json")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}

    def check(code: str, expected: str) -> None:
        actual = eval(code, namespace)
        assert actual == eval(expected, namespace), (
            f"{code} returned {actual!r}, docs say {expected}"
        )

    namespace["__check"] = check
    for block in _blocks():
        exec(compile(_checked(block), str(PAGE), "exec"), namespace)
