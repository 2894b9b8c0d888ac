"""`accord identity …` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.store.db import Store
from tests.identity.helpers import ev, groups, process, profile_of
from tests.test_cli import Cli


def test_review_and_unmerge_from_the_command_line(
    tmp_path: Path, database_url: str, store: Store, keys: Bootstrap, settings: Settings
) -> None:
    cli = Cli(tmp_path, database_url)
    biz = keys.business_id
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps({"max_component_identifiers": 3, "trait_policies": {"plan": "first"}})
    )
    assert (
        '"max_component_identifiers": 3'
        in cli("identity", "rules", "--business", biz, "--set", str(rules)).stdout
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"limits": {"email": {"max": 0}}}))
    cli("identity", "rules", "--business", biz, "--set", str(bad), code=1)

    process(
        store,
        keys,
        settings.resolved_lake_url(),
        [
            ev("identify", 1, anonymousId="a1", traits={"email": "x@example.org", "plan": "a"}),
            ev("identify", 2, anonymousId="a2", traits={"email": "y@example.org", "plan": "b"}),
            ev("identify", 3, anonymousId="a1", traits={"email": "y@example.org"}),
        ],
    )
    (review,) = cli.json("identity", "review", "list", "--business", biz, "--json")
    diff = json.loads(cli("identity", "review", "diff", review["id"], "--business", biz).stdout)
    assert {c["trait"]: c["after"] for c in diff["traits_changed"]}["plan"] == "a"
    cli("identity", "review", "accept", review["id"], "--business", biz, "--note", "same person")
    cli("identity", "review", "accept", review["id"], "--business", biz, code=1)
    assert len(groups(store, biz)) == 1
    assert cli.json("identity", "review", "list", "--business", biz, "--json") == []

    pid = profile_of(store, biz, "email:x@example.org")
    edges = cli.json("identity", "edges", pid, "--business", biz, "--json")
    review_edge = next(e for e in edges if e["rule"] == "review")
    split = json.loads(
        cli(
            "identity", "unmerge", str(review_edge["id"]), "--business", biz, "--reason", "no"
        ).stdout
    )
    assert len(split["profiles"]) == 2
    assert len(groups(store, biz)) == 2
    assert "profiles derived again: 2" in cli("identity", "rederive", "--business", biz).output


def test_verify_compares_profiles_with_batch_components(
    tmp_path: Path, database_url: str, store: Store, keys: Bootstrap, settings: Settings
) -> None:
    cli = Cli(tmp_path, database_url)
    process(
        store,
        keys,
        settings.resolved_lake_url(),
        [
            ev("identify", 1, anonymousId="a1", userId="u1", traits={"email": "x@example.org"}),
            ev(minute=2, anonymousId="a2"),
        ],
    )
    report = cli.json("identity", "verify", "--business", keys.business_id, "--json")
    assert report == {
        "identifiers": 4,
        "edges": 2,
        "profiles": 2,
        "components": 2,
        "mismatched": [],
        "violations": [],
    }
