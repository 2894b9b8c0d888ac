"""docs/operations.md's "What runs by itself" against the code: every trigger is carried
out by a registered pipeline step or job kind, every step and kind is listed, and every
trigger is driven end to end by a test that exists and starts `accord serve`.

A trigger only a test drives (a job nobody schedules, a step no worker runs) is what
this check is for: it reads the table, not the tests' wishes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from accord.process.jobs import default_kinds
from accord.process.pipeline import default_steps

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
SECTION = "## What runs by itself"
HEADER = ["trigger", "carried out by", "driven end to end by"]
NAME = re.compile(r"`([^`]+)`")
# What starts the real server in a test module.
SERVER = "ServerProcess"


@dataclass(frozen=True)
class Row:
    line: int
    trigger: str
    carried_by: list[str]
    driven_by: list[str]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def read_table(text: str) -> list[Row]:
    """The rows of the first table under the section heading."""
    lines = text.splitlines()
    start = lines.index(SECTION)
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    assert _cells(lines[at]) == HEADER, f"{DOC.name}:{at + 1}: the header must be {HEADER}"
    rows = []
    for number in range(at + 2, len(lines)):
        if not lines[number].startswith("|"):
            break
        trigger, carried, driven = _cells(lines[number])
        rows.append(Row(number + 1, trigger, NAME.findall(carried), NAME.findall(driven)))
    return rows


@cache
def table() -> tuple[Row, ...]:
    rows = read_table(DOC.read_text(encoding="utf-8"))
    assert rows, f"{DOC.name}: the table under {SECTION!r} is empty"
    return tuple(rows)


def registered() -> set[str]:
    return {step.name for step in default_steps()} | set(default_kinds())


@cache
def _tests_in(path: Path) -> tuple[frozenset[str], bool]:
    """The module's test functions, and whether it starts the real server."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    names = frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    )
    starts_server = any(
        isinstance(node, ast.ImportFrom) and any(alias.name == SERVER for alias in node.names)
        for node in ast.walk(tree)
    )
    return names, starts_server


def missing_test(reference: str) -> str | None:
    """Why `path::test_function` is not an end-to-end test that exists, or None."""
    path_text, _, function = reference.partition("::")
    path = ROOT / path_text
    if not function or not path.is_file():
        return f"{reference}: no such test file (write `tests/….py::test_…`)"
    names, starts_server = _tests_in(path)
    if function not in names:
        return f"{reference}: {path_text} has no test function {function!r}"
    if not starts_server:
        return f"{reference}: {path_text} does not start `accord serve` ({SERVER})"
    return None


def test_the_table_is_read_as_written() -> None:
    text = "\n".join(
        [
            SECTION,
            "",
            "| trigger | carried out by | driven end to end by |",
            "|---|---|---|",
            "| dates → x | `journeys.date_entry` | `a.py::test_b`, `c.py::test_d` |",
            "| schedules → y | `lake.compact` | none yet |",
            "",
            "| other | table |",
        ]
    )
    assert read_table(text) == [
        Row(5, "dates → x", ["journeys.date_entry"], ["a.py::test_b", "c.py::test_d"]),
        Row(6, "schedules → y", ["lake.compact"], []),
    ]
    assert missing_test("tests/process/test_serve_triggers.py::test_nothing") is not None
    assert missing_test(
        "tests/process/test_pipeline.py::test_the_steps_run_in_the_documented_order"
    )
    assert (
        missing_test(
            "tests/process/test_serve_triggers.py::test_a_scheduled_campaign_is_sent_once_when_due"
        )
        is None
    )


def test_what_carries_each_trigger_is_registered() -> None:
    known = registered()
    problems = [
        f"{DOC.name}:{row.line}: {row.trigger!r} is carried out by {name!r}, which the worker "
        f"does not run (steps and jobs: {', '.join(sorted(known))})"
        for row in table()
        for name in row.carried_by
        if name not in known
    ]
    problems += [
        f"{DOC.name}:{row.line}: {row.trigger!r} names no step or job"
        for row in table()
        if not row.carried_by
    ]
    assert not problems, "\n".join(problems)


def test_every_step_and_job_is_in_the_table() -> None:
    listed = {name for row in table() for name in row.carried_by}
    unlisted = sorted(registered() - listed)
    assert not unlisted, f"registered but not in {DOC.name} ({SECTION!r}): {unlisted}"


def test_every_trigger_a_job_declares_is_in_the_table() -> None:
    problems = [
        f"{kind.name} carries out {trigger!r}, which no row naming it mentions"
        for kind in default_kinds().values()
        for trigger in kind.triggers
        if not any(
            kind.name in row.carried_by and trigger.lower() in row.trigger.lower()
            for row in table()
        )
    ]
    assert not problems, "\n".join(problems)


def test_every_trigger_is_driven_end_to_end_through_accord_serve() -> None:
    problems = [
        f"{DOC.name}:{row.line}: {row.trigger!r} is driven end to end by no test"
        for row in table()
        if not row.driven_by
    ]
    problems += [
        f"{DOC.name}:{row.line}: {why}"
        for row in table()
        for reference in row.driven_by
        if (why := missing_test(reference)) is not None
    ]
    assert not problems, "\n".join(problems)
