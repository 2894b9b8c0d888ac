"""The registry of subject rights: one entry per context, erased in a safe order."""

from __future__ import annotations

import importlib.util

from accord.rights.contributors import CONTRIBUTORS


def test_each_contributor_is_a_context_of_its_own() -> None:
    names = [c.name for c in CONTRIBUTORS]
    assert len(names) == len(set(names))
    assert all(importlib.util.find_spec(f"accord.{name}") for name in names)
    assert all(c.export is not None or c.erase is not None for c in CONTRIBUTORS)


def test_the_profile_goes_last_and_consent_records_stay() -> None:
    erasing = [c.name for c in CONTRIBUTORS if c.erase is not None]
    assert erasing[-1] == "profiles"
    # The consent ledger is the proof of consent the law requires: never erased.
    assert [c.erase for c in CONTRIBUTORS if c.name == "consent"] == [None]
