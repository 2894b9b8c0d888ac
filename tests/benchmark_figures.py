"""Which figures in docs/benchmarks.md still describe the code: each `## ` section names the
commit it measured and the code it measures, and git tells whether that code changed since.

The line, right under the section's heading:

    Measured at: `04b59d4` · Code: `src/accord/collect/`, `src/accord/consent/gate.py`

(`unknown` instead of a commit when nobody recorded it: such figures count as stale). A
section is *current* when no commit after the measured one changed a named path, *stale*
when one did, and *unchecked* when this clone cannot tell (no git, or the commit is not in
its history: a shallow clone, or history rewritten since). Run
`python -m tests.benchmark_figures` for the list; tests/test_benchmark_figures.py runs it
in `make test` and warns about every stale section (it fails only on a malformed line or
a named path that does not exist).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "benchmarks.md"

_HEADING = re.compile(r"^## (?P<title>.+?)\s*$")
_MEASURED = re.compile(r"^Measured at: (?P<commit>`[0-9a-f]{7,40}`|unknown) · Code: (?P<paths>.+)$")
_PATH = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Section:
    title: str
    line: int  # of the heading, 1-based
    commit: str | None  # None: not recorded
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    section: Section
    status: str  # "current", "stale" or "unchecked"
    reason: str


def sections(text: str) -> list[Section]:
    """Every `## ` section with its measured commit and code paths.

    ValueError lists every section without exactly one well-formed line.
    """
    found: list[Section] = []
    problems: list[str] = []
    title: str | None = None
    heading_line = 0
    lines: list[str] = []

    def close() -> None:
        if title is None:
            return
        marked = [line for line in lines if line.startswith("Measured at:")]
        matches = [m for m in (_MEASURED.match(line) for line in marked) if m]
        if len(marked) != 1 or len(matches) != 1:
            problems.append(
                f"line {heading_line} ({title}): needs exactly one line "
                "'Measured at: `<commit>` · Code: `<path>`, ...' (or 'Measured at: unknown')"
            )
            return
        match = matches[0]
        paths = tuple(_PATH.findall(match["paths"]))
        if not paths:
            problems.append(f"line {heading_line} ({title}): names no code path")
            return
        commit = None if match["commit"] == "unknown" else match["commit"].strip("`")
        found.append(Section(title, heading_line, commit, paths))

    in_code = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else _HEADING.match(line)
        if heading:
            close()
            title, heading_line, lines = heading["title"], number, []
        elif title is not None:
            lines.append(line)
    close()
    if problems:
        raise ValueError("\n".join(problems))
    return found


def missing_paths(section: Section, root: Path = ROOT) -> list[str]:
    return [path for path in section.paths if not (root / path).exists()]


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
    )


def verdict(section: Section, root: Path = ROOT) -> Verdict:
    """Whether the code a section measures changed after the commit it measured."""
    if section.commit is None:
        return Verdict(section, "stale", "no commit recorded for these figures")
    try:
        known = _git(root, "rev-parse", "--quiet", "--verify", f"{section.commit}^{{commit}}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Verdict(section, "unchecked", f"git cannot run here ({exc})")
    if known.returncode != 0:
        if _git(root, "rev-parse", "--git-dir").returncode != 0:
            return Verdict(section, "unchecked", "not a git checkout")
        shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        why = "this clone is shallow" if shallow else "history was rewritten, or a typo"
        return Verdict(section, "unchecked", f"commit {section.commit} is not here ({why})")
    last = _git(root, "log", "-1", "--format=%H %h %cs %s", "--", *section.paths).stdout.strip()
    if not last:
        return Verdict(section, "current", "no commit in this history touches the code")
    full, short, day, subject = [*last.split(" ", 3), "", "", ""][:4]
    ancestor = _git(root, "merge-base", "--is-ancestor", full, section.commit)
    if ancestor.returncode == 0:
        return Verdict(section, "current", f"code last changed in {short}, before or at it")
    if ancestor.returncode == 1:
        return Verdict(
            section, "stale", f"code changed after {section.commit}: {short} ({day}) {subject}"
        )
    return Verdict(section, "unchecked", ancestor.stderr.strip() or "git merge-base failed")


def verdicts(root: Path = ROOT, document: Path = BENCHMARKS) -> list[Verdict]:
    return [verdict(section, root) for section in sections(document.read_text())]


def main() -> int:
    """Print each section's status; exit status 1 when any is stale (0 otherwise)."""
    results = verdicts()
    for result in results:
        commit = result.section.commit or "unknown"
        print(f"{result.status:9}  {commit:9}  {result.section.title}: {result.reason}")
    return 1 if any(result.status == "stale" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
