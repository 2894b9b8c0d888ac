"""Probabilistic matching: links, review band, guardrails, undo and bad configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.errors import InvalidInput
from accord.core.settings import Settings
from accord.identity import service
from accord.identity.matching import run_match, undo_last_match
from accord.store.db import Store
from tests.identity.helpers import ev, groups, process, profile_of, states
from tests.identity.matching_data import MATCHING, base
from tests.test_cli import Cli

ENGINE = "duckdb://"


def _setup(store: Store, keys: Bootstrap, settings: Settings, **matching: Any) -> list[Any]:
    events, same = base()
    with store.write() as conn:
        service.set_rules(
            conn, business_id=keys.business_id, rules={"matching": {**MATCHING, **matching}}
        )
    process(store, keys, settings.resolved_lake_url(), events, batch=50)
    return same


def test_matching_links_the_same_people(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz = keys.business_id
    same = _setup(store, keys, settings)
    before = groups(store, biz)
    dry = run_match(store, business_id=biz, engine_url=ENGINE, dry_run=True)
    assert dry.linked >= 10
    assert groups(store, biz) == before

    report = run_match(store, business_id=biz, engine_url=ENGINE)
    joined = {frozenset(g) for g in groups(store, biz) if len(g) > 2}
    found = {
        pair for pair in same if profile_of(store, biz, pair[0]) == profile_of(store, biz, pair[1])
    }
    # Nearly every duplicate found, and no two different people joined.
    assert len(found) >= 10
    assert len(joined) == len(found)
    assert report.linked == len(found)
    assert all(p.probability >= 0.99 for p in report.pairs if p.outcome == "linked")
    pid = profile_of(store, biz, sorted(found)[0][0])
    with store.read() as conn:
        (merge,) = service.merge_history(conn, business_id=biz, profile_id=pid)
        edges = service.edges_of(conn, business_id=biz, profile_id=pid)
    assert merge.rule == "probabilistic"
    details = merge.evidence["details"]
    assert details["match_probability"] >= 0.99
    assert set(details["levels"]) == {"first_name", "last_name", "birth_date", "postcode"}
    assert any(level.startswith("Exact match") for level in details["levels"].values())
    assert [e.message_id for e in edges if e.rule == "probabilistic"] == [report.run_id]

    # A second run finds the same pairs already linked and changes nothing.
    again = run_match(store, business_id=biz, engine_url=ENGINE)
    assert again.linked == 0
    assert {p.outcome for p in again.pairs} <= {"already_linked", "review", "refused"}


def test_middle_band_goes_to_review(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz = keys.business_id
    _setup(store, keys, settings)
    scores = sorted(
        p.probability
        for p in run_match(store, business_id=biz, engine_url=ENGINE, dry_run=True).pairs
    )
    # Put the weakest scored pair alone in the review band.
    weakest = scores[0]
    assert scores[1] > weakest
    with store.write() as conn:
        rules = service.get_rules(conn, business_id=biz).model_dump()
        rules["matching"]["review_threshold"] = weakest / 2
        rules["matching"]["link_threshold"] = (weakest + scores[1]) / 2
        service.set_rules(conn, business_id=biz, rules=rules)
    before = groups(store, biz)
    report = run_match(store, business_id=biz, engine_url=ENGINE)
    review = [p for p in report.pairs if p.outcome == "review"]
    assert review and review[0].probability == weakest
    with store.read() as conn:
        (item,) = [
            r for r in service.list_reviews(conn, business_id=biz) if r.id == review[0].review_id
        ]
        diff = service.review_diff(conn, business_id=biz, review_id=item.id)
    assert "probabilistic match" in item.reason
    assert sorted([*diff.profiles_merged, diff.surviving_profile]) == sorted(
        [review[0].profile_id, review[0].other_profile_id]
    )
    assert diff.guardrail_violations == []
    assert len(groups(store, biz)) == len(before) - report.linked


def test_two_user_ids_are_never_joined(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz = keys.business_id
    _setup(store, keys, settings)
    # Both records of person 0 log in, each with its own account.
    process(
        store,
        keys,
        settings.resolved_lake_url(),
        [
            ev(minute=59, anonymousId="crm-0", userId="u-crm"),
            ev(minute=59, anonymousId="pos-0", userId="u-pos"),
        ],
    )
    report = run_match(store, business_id=biz, engine_url=ENGINE)
    crm, pos = profile_of(store, biz, "user_id:u-crm"), profile_of(store, biz, "user_id:u-pos")
    assert crm != pos
    (refused,) = [p for p in report.pairs if {p.profile_id, p.other_profile_id} == {crm, pos}]
    assert refused.outcome == "refused"
    assert refused.reason == "would join profiles with different user_id values"
    assert refused.probability >= 0.99


def test_undo_restores_the_profiles(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz = keys.business_id
    _setup(store, keys, settings)
    before = groups(store, biz)
    traits_before = sorted(str(sorted(s.traits.items())) for s in states(store, biz).values())
    report = run_match(store, business_id=biz, engine_url=ENGINE)
    assert report.linked > 0
    assert groups(store, biz) != before
    with store.write() as conn:
        undone = undo_last_match(conn, business_id=biz)
    assert undone.run_id == report.run_id
    assert undone.edges_removed == report.linked
    assert groups(store, biz) == before
    traits_after = sorted(str(sorted(s.traits.items())) for s in states(store, biz).values())
    assert traits_after == traits_before
    with store.write() as conn:
        assert undo_last_match(conn, business_id=biz).run_id is None
    # The separated pairs are not linked again by the next run.
    assert run_match(store, business_id=biz, engine_url=ENGINE).linked == 0


@pytest.mark.parametrize(
    ("matching", "field"),
    [
        ({**MATCHING, "link_threshold": 0.5, "review_threshold": 0.6}, "matching"),
        ({**MATCHING, "blocking_rules": [[{"field": "shoe_size"}]]}, "matching"),
        (
            {**MATCHING, "comparisons": [{"field": "first_name", "method": "soundex"}]},
            "matching.comparisons.0.method",
        ),
        (
            {**MATCHING, "comparisons": [{"field": "Name!"}, {"field": "x"}]},
            "matching.comparisons.0.field",
        ),
    ],
)
def test_bad_configuration_is_refused(
    store: Store, keys: Bootstrap, matching: dict[str, Any], field: str
) -> None:
    with store.write() as conn, pytest.raises(InvalidInput) as caught:
        service.set_rules(conn, business_id=keys.business_id, rules={"matching": matching})
    assert caught.value.problems[0].field == field


def test_matching_needs_a_configuration(store: Store, keys: Bootstrap) -> None:
    with pytest.raises(InvalidInput, match="no matching section"):
        run_match(store, business_id=keys.business_id, engine_url=ENGINE)


def test_match_from_the_command_line(
    tmp_path: Path, database_url: str, store: Store, keys: Bootstrap, settings: Settings
) -> None:
    cli = Cli(tmp_path, database_url)
    biz = keys.business_id
    cli("identity", "match", "--business", biz, code=1)
    _setup(store, keys, settings)
    before = groups(store, biz)
    dry = cli.json("identity", "match", "--business", biz, "--dry-run", "--json")
    assert dry["dry_run"] is True
    assert dry["linked"] >= 10
    assert groups(store, biz) == before
    shown = cli("identity", "match", "--business", biz)
    assert "linked" in shown.output
    assert len(groups(store, biz)) == len(before) - dry["linked"]
    undone = json.loads(cli("identity", "match", "--business", biz, "--undo").stdout)
    assert undone["edges_removed"] == dry["linked"]
    assert groups(store, biz) == before


def test_match_through_the_api(
    client: TestClient, store: Store, keys: Bootstrap, settings: Settings
) -> None:
    biz = keys.business_id
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    assert client.post("/api/identity/match").status_code == 401
    missing = client.post("/api/identity/match", headers=admin)
    assert missing.status_code == 400
    assert missing.json()["problems"][0]["field"] == "matching"
    _setup(store, keys, settings)
    before = groups(store, biz)
    dry = client.post("/api/identity/match", headers=admin, json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["linked"] >= 10
    assert groups(store, biz) == before
    done = client.post("/api/identity/match", headers=admin).json()
    assert done["linked"] == dry.json()["linked"]
    undone = client.post("/api/identity/match", headers=admin, json={"undo": True}).json()
    assert undone["run_id"] == done["run_id"]
    assert groups(store, biz) == before
    assert "/api/identity/match" in client.get("/openapi.json").json()["paths"]


@pytest.mark.slow
@pytest.mark.spark
def test_spark_engine_scores_like_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from accord.identity.matching import records_frame, score
    from accord.identity.matching_config import MatchingConfig
    from tests.identity.matching_data import people

    # Spark runs the methods it has built in (no Jaro-Winkler there).
    spark_ready = {
        **MATCHING,
        "comparisons": [
            {**c, "method": "levenshtein"} if c["method"] == "jaro_winkler" else c
            for c in MATCHING["comparisons"]
        ],
    }
    config = MatchingConfig.model_validate(spark_ready)
    # Splink's Spark API makes an (empty) ./spark-warehouse: keep it out of the checkout.
    monkeypatch.chdir(tmp_path)
    rows = [(f"crm{i}", p) for i, p in enumerate(people())]
    rows += [(f"pos{i}", p) for i, p in enumerate(people()[:10])]
    found = {}
    for engine in ("duckdb://", "pyspark://local[1]"):
        scored = score(records_frame(rows, config), config, engine_url=engine)
        found[engine] = {(p.left, p.right) for p in scored if p.probability >= 0.99}
    assert (
        found["duckdb://"]
        == found["pyspark://local[1]"]
        == {(f"crm{i}", f"pos{i}") for i in range(10)}
    )
    with pytest.raises(InvalidInput, match="do not run on the Spark engine"):
        score(
            records_frame(rows, MatchingConfig.model_validate(MATCHING)),
            MatchingConfig.model_validate(MATCHING),
            engine_url="pyspark://local[1]",
        )


def test_the_documented_configuration_is_valid() -> None:
    from accord.identity.rules import IdentityRules

    text = (Path(__file__).parents[2] / "docs" / "identity.md").read_text()
    section = text.split("## Probabilistic matching", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    rules = IdentityRules.model_validate(json.loads(example))
    assert rules.matching is not None
    assert rules.matching.link_threshold == 0.99


def test_item_16_names_alone_never_link(store: Store, keys: Bootstrap, settings: Settings) -> None:
    """An in-store "Giulia Rossi" (names only) and a different online Giulia Rossi score
    high on first and last name alone: that goes to review, it never links."""
    biz = keys.business_id
    _setup(store, keys, settings)
    process(
        store,
        keys,
        settings.resolved_lake_url(),
        [
            ev(
                "identify",
                59,
                anonymousId="store-giulia",
                traits={"first_name": "Giulia", "last_name": "Rossi"},
            ),
            ev(
                "identify",
                59,
                anonymousId="web-giulia",
                traits={
                    "first_name": "giulia",
                    "last_name": "rossi",
                    "birth_date": "1983-04-09",
                    "postcode": "20121",
                    "email": "giulia@web.example",
                },
            ),
        ],
    )
    shop, web = (profile_of(store, biz, f"anonymous_id:{k}-giulia") for k in ("store", "web"))
    report = run_match(store, business_id=biz, engine_url=ENGINE)
    (pair,) = [p for p in report.pairs if {p.profile_id, p.other_profile_id} == {shop, web}]
    assert pair.probability >= 0.99
    assert pair.outcome == "review"
    assert pair.reason is not None and "first_name, last_name alone" in pair.reason
    assert "birth_date, postcode" in pair.reason
    assert profile_of(store, biz, "anonymous_id:store-giulia") == shop != web
    # The people the model links still agree exactly on a birth date or postcode.
    linked = [p for p in report.pairs if p.outcome == "linked"]
    assert len(linked) >= 10
    assert all(
        {"birth_date", "postcode"} & {k for k, v in p.levels.items() if v.startswith("Exact")}
        for p in linked
    )
    with store.read() as conn:
        (item,) = [r for r in service.list_reviews(conn, business_id=biz) if r.id == pair.review_id]
    assert item.reason == pair.reason


def test_item_16_distinguishing_traits_are_configurable() -> None:
    from accord.identity.matching_config import MatchingConfig

    config = MatchingConfig.model_validate(
        {
            **MATCHING,
            "comparisons": [
                *MATCHING["comparisons"],
                {"field": "city", "method": "exact", "distinguishing": False},
                {"field": "surname", "method": "exact"},
            ],
        }
    )
    assert config.distinguishing == ["birth_date", "postcode"]


def test_item_16_untrained_model_never_links(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    """EM over birth date blocks alone cannot train birth date's m-probabilities: every
    pair whose score uses them rests on Splink's defaults and waits for an operator."""
    biz = keys.business_id
    _setup(store, keys, settings, training_rules=[[{"field": "birth_date"}]])
    before = groups(store, biz)
    report = run_match(store, business_id=biz, engine_url=ENGINE)
    assert any(u.startswith("birth_date: Exact match") for u in report.untrained)
    high = [p for p in report.pairs if p.probability >= 0.99]
    assert len(high) >= 10
    assert report.linked == 0 and groups(store, biz) == before
    reasons = []
    for pair in high:
        assert pair.outcome == "review"
        assert pair.reason is not None and "the model did not train" in pair.reason
        assert pair.reason.endswith("the score rests on default values")
        reasons.append(pair.reason)
    assert any("birth_date: Exact match on birth_date (m)" in r for r in reasons)
