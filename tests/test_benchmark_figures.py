"""docs/benchmarks.md names, per section, the commit measured and the code it measures;
stale sections are reported as warnings (a malformed line or a missing path fails)."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest

from tests import benchmark_figures as figures


class StaleBenchmark(UserWarning):
    """Figures in docs/benchmarks.md measured code that has changed since."""


def test_every_section_names_its_commit_and_existing_code() -> None:
    sections = figures.sections(figures.BENCHMARKS.read_text())
    assert sections, "docs/benchmarks.md has no sections"
    missing = {s.title: figures.missing_paths(s) for s in sections if figures.missing_paths(s)}
    assert not missing, f"paths named in docs/benchmarks.md do not exist: {missing}"


def test_stale_sections_are_reported() -> None:
    # Re-running a benchmark needs a quiet machine and minutes to hours, so a change to
    # measured code warns (in the summary of every run) rather than failing the suite.
    for result in figures.verdicts():
        assert result.status in {"current", "stale", "unchecked"}
        if result.status != "current":
            warnings.warn(
                f"docs/benchmarks.md, {result.section.title}: {result.status}: {result.reason}",
                StaleBenchmark,
                stacklevel=1,
            )


def test_a_section_needs_exactly_one_line() -> None:
    with pytest.raises(ValueError, match="Two"):
        figures.sections("## One\nMeasured at: unknown · Code: `a`\n## Two\ntext\n")
    with pytest.raises(ValueError, match="One"):
        figures.sections(
            "## One\nMeasured at: `abc1234` · Code: `a`\nMeasured at: unknown · Code: `b`\n"
        )
    with pytest.raises(ValueError, match="names no code"):
        figures.sections("## One\nMeasured at: unknown · Code: everything\n")
    parsed = figures.sections(
        "# Title\n## A\n```\n## not a heading\n```\n"
        "Measured at: `abc1234` · Code: `src/x/`, `bench/y.py`\n"
    )
    assert parsed == [figures.Section("A", 2, "abc1234", ("src/x/", "bench/y.py"))]


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _commit(root: Path, path: str, text: str) -> str:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"change {path}")
    return _git(root, "rev-parse", "--short", "HEAD")


def test_verdicts_follow_the_history(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    measured = _commit(tmp_path, "src/collect/a.py", "1")

    def status(commit: str | None) -> str:
        section = figures.Section("Ingest", 1, commit, ("src/collect/",))
        return figures.verdict(section, tmp_path).status

    assert status(measured) == "current"
    _commit(tmp_path, "docs/other.md", "unrelated")
    assert status(measured) == "current"
    changed = _commit(tmp_path, "src/collect/b.py", "2")
    assert status(measured) == "stale"
    assert status(changed) == "current"
    assert status(None) == "stale"
    assert status("0123456789abcdef") == "unchecked"  # not in this history (shallow clone)


def test_no_git_history_is_unchecked(tmp_path: Path) -> None:
    section = figures.Section("Ingest", 1, "abc1234", ("src/",))
    result = figures.verdict(section, tmp_path)
    assert result.status == "unchecked"
