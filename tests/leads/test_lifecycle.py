"""Scoring, decay, stages and the funnel report with cost per lead and per customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import Connection, select

from accord.accounts.models import Bootstrap
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import limits_from
from accord.core.errors import Conflict
from accord.core.settings import Settings
from accord.leads import forms, funnel, imports, service, submissions
from accord.leads.lead_ads import LeadRow
from accord.leads.lifecycle import decayed, match, next_stage
from accord.leads.models import FormIn, ScoringIn, ScoringRule, SpendIn, lead_stage_changes, leads
from accord.leads.validation import CleanSubmission
from accord.store.db import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.floats(min_value=0, max_value=400),
    st.floats(min_value=0, max_value=400),
    st.floats(min_value=0.5, max_value=365),
)
def test_decay_in_two_steps_equals_decay_in_one(
    score: float, first: float, second: float, half_life: float
) -> None:
    middle = T0 + timedelta(days=first)
    end = middle + timedelta(days=second)
    stepwise = decayed(
        decayed(score, scored_at=T0, now=middle, half_life_days=half_life),
        scored_at=middle,
        now=end,
        half_life_days=half_life,
    )
    at_once = decayed(score, scored_at=T0, now=end, half_life_days=half_life)
    assert stepwise == pytest.approx(at_once, rel=1e-9, abs=1e-9)
    assert abs(at_once) <= abs(score)


def test_half_life_halves() -> None:
    assert decayed(80, scored_at=T0, now=T0 + timedelta(days=30), half_life_days=30) == 40


def test_rules_match_by_kind_name_and_value() -> None:
    # The old form of rules (deprecated), converted to audience conditions.
    rules = [
        ScoringRule.model_validate(r)
        for r in (
            {"kind": "answer", "name": "budget", "value": "high", "points": 20},
            {"kind": "answer", "name": "budget", "points": 2},
            {"kind": "event", "name": "Order Completed", "points": 50, "stage": "customer"},
            {"kind": "email", "name": "click", "value": "x", "points": 9},
        )
    ]
    assert match(rules, kind="answer", name="budget", value="high", now=T0).points == 22
    assert match(rules, kind="answer", name="budget", value="low", now=T0).points == 2
    assert match(rules, kind="event", name="Order Completed", now=T0).customer is True
    assert match(rules, kind="fit", name="budget", now=T0).rules == ()
    assert match(rules, kind="email", name="click", now=T0).rules == ()
    assert rules[1].model_dump()["condition"] == {
        "kind": "trait",
        "trait": "budget",
        "op": "exists",
        "value": None,
    }


def test_rules_are_audience_conditions_on_the_activity() -> None:
    big_order = ScoringRule.model_validate(
        {
            "kind": "event",
            "condition": {
                "kind": "event",
                "event": "Order Completed",
                "where": [
                    {"property": "revenue", "op": ">=", "value": 100},
                    {"property": "properties.coupon", "op": "missing"},
                ],
            },
            "points": 30,
        }
    )
    sizes = ScoringRule.model_validate(
        {
            "kind": "answer",
            "condition": {"kind": "trait", "trait": "size", "op": "in", "value": ["L", "XL"]},
            "points": 5,
        }
    )
    rules = [big_order, sizes]

    def order(**properties: object) -> dict[str, object]:
        return {"type": "track", "event": "Order Completed", "properties": properties}

    assert (
        match(rules, kind="event", name="Order Completed", now=T0, event=order(total=120)).points
        == 30
    )
    assert (
        match(rules, kind="event", name="Order Completed", now=T0, event=order(total=90)).points
        == 0
    )
    assert (
        match(
            rules, kind="event", name="Order Completed", now=T0, event=order(total=120, coupon="X")
        ).points
        == 0
    )
    assert match(rules, kind="answer", name="size", value="XL", now=T0).points == 5
    assert match(rules, kind="answer", name="size", value="S", now=T0).points == 0


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"kind": "answer", "condition": {"kind": "event", "event": "X"}}, "trait conditions"),
        ({"kind": "event", "condition": {"kind": "consent", "purpose": "m"}}, "event conditions"),
        (
            {"kind": "fit", "condition": {"kind": "trait", "trait": "n", "op": ">", "value": "a"}},
            "cannot order a string",
        ),
    ],
)
def test_rules_are_validated_as_audience_conditions(rule: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        ScoringRule.model_validate({**rule, "points": 1})

    config = ScoringIn(prospect_at=50)
    assert next_stage("lead", score=49, customer=False, config=config) == "lead"
    assert next_stage("lead", score=50, customer=False, config=config) == "prospect"
    assert next_stage("prospect", score=0, customer=False, config=config) == "prospect"
    assert next_stage("prospect", score=0, customer=True, config=config) == "customer"


def _stage(conn: Connection, lead_id: str) -> tuple[str, str, float]:
    row = conn.execute(
        select(leads.c.stage, leads.c.phase, leads.c.score).where(leads.c.id == lead_id)
    ).one()
    return row.stage, row.phase, row.score


def test_an_event_is_matched_by_email_when_its_anonymous_id_is_not_the_leads(
    store: Store, keys: Bootstrap
) -> None:
    """A lead from a form without the site's anonymous id (or from an import) is known by
    email: the shop's events carry the visitor's own anonymous id and the email."""
    business = keys.business_id
    with store.write() as conn:
        service.set_scoring(
            conn,
            business_id=business,
            data=ScoringIn(
                rules=[
                    ScoringRule(kind="event", name="Order Completed", points=40, stage="customer")
                ]
            ),
        )
        form = forms.create_form(
            conn,
            business_id=business,
            data=FormIn.model_validate(
                {
                    "slug": "newsletter",
                    "title": {"en": "Newsletter"},
                    "fields": [{"key": "email", "kind": "email"}],
                    "privacy_policy_url": "https://shop.example/privacy",
                    "from_address": "news@shop.example",
                    "double_opt_in": False,
                }
            ),
        )
        lead = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="ada@b.example"),
            anonymous_id=None,
            ip=None,
            user_agent=None,
        ).lead_id
        order = {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": "site-visitor-7",
            "context": {"traits": {"email": " Ada@B.example "}},
        }
        assert service.score_event(conn, business_id=business, event=order) == 40
        assert _stage(conn, lead) == ("customer", "decision", 40)
        stranger = {**order, "context": {"traits": {"email": "bob@b.example"}}}
        assert service.score_event(conn, business_id=business, event=stranger) == 0


def test_leads_move_through_stages_and_the_funnel_counts_them(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    business = keys.business_id
    with store.write() as conn:
        service.set_scoring(
            conn,
            business_id=business,
            data=ScoringIn(
                rules=[
                    ScoringRule(kind="answer", name="budget", value="high", points=30),
                    ScoringRule(kind="fit", name="company", points=10),
                    ScoringRule(kind="email", name="click", points=15),
                    ScoringRule(kind="event", name="Order Completed", points=40, stage="customer"),
                ],
                half_life_days=30,
                consideration_at=10,
                prospect_at=50,
            ),
        )
        form = forms.create_form(
            conn,
            business_id=business,
            data=FormIn.model_validate(
                {
                    "slug": "demo-request",
                    "title": {"en": "Ask for a demo"},
                    "fields": [
                        {"key": "email", "kind": "email"},
                        {"key": "company", "kind": "company"},
                        {"key": "budget", "kind": "choice", "options": ["low", "high"]},
                    ],
                    "privacy_policy_url": "https://shop.example/privacy",
                    "from_address": "sales@shop.example",
                    "double_opt_in": False,
                }
            ),
        )

        def submit(email: str, budget: str, company: str | None, campaign: str) -> str:
            return submissions.submit(
                conn,
                form=form,
                submission=CleanSubmission(
                    email=email,
                    company=company,
                    answers={"budget": budget},
                    utm={"utm_campaign": campaign},
                ),
                anonymous_id=None,
                ip=None,
                user_agent=None,
            ).lead_id

        hot = submit("hot@b.example", "high", "Hot Ltd", "spring")
        warm = submit("warm@b.example", "low", "Warm Ltd", "spring")
        cold = submit("cold@b.example", "low", None, "autumn")
        assert _stage(conn, hot)[:2] == ("lead", "consideration")  # 40 points
        assert _stage(conn, warm)[:2] == ("lead", "consideration")  # 10 points
        assert _stage(conn, cold) == ("lead", "awareness", 0)

        service.score_email_engagement(
            conn, business_id=business, email="hot@b.example", kind="click"
        )
        assert _stage(conn, hot)[:2] == ("prospect", "decision")
        anonymous_id = conn.execute(select(leads.c.anonymous_id).where(leads.c.id == hot)).scalar()
        assert (
            service.score_event(
                conn,
                business_id=business,
                event={"type": "track", "event": "Order Completed", "anonymousId": anonymous_id},
            )
            == 40
        )
        assert _stage(conn, hot)[0] == "customer"
        # A page view has no rule, and someone who is not a lead scores nothing.
        assert (
            service.score_event(
                conn,
                business_id=business,
                event={"type": "track", "event": "Page Viewed", "anonymousId": anonymous_id},
            )
            == 0
        )
        assert (
            service.score_event(
                conn,
                business_id=business,
                event={"type": "track", "event": "Order Completed", "anonymousId": "stranger"},
            )
            == 0
        )

        service.set_stage(
            conn, business_id=business, lead_id=warm, stage="prospect", reason="call with sales"
        )
        with pytest.raises(Conflict):
            service.set_stage(
                conn, business_id=business, lead_id=hot, stage="prospect", reason="oops"
            )
        changes = conn.execute(
            select(lead_stage_changes.c.lead_id, lead_stage_changes.c.stage).order_by(
                lead_stage_changes.c.id
            )
        ).all()
        assert [(c.lead_id, c.stage) for c in changes] == [
            (hot, "prospect"),
            (hot, "customer"),
            (warm, "prospect"),
        ]
        funnel.set_spend(conn, business_id=business, data=SpendIn(campaign="spring", amount=90))
        funnel.set_spend(conn, business_id=business, data=SpendIn(campaign="spring", amount=100))

    imports.import_leads(
        store,
        business_id=business,
        rows=[LeadRow(line=2, fields={"email": "ad@b.example"}, ad={"campaign_name": "autumn"})],
        kind="lead_ads",
        name="autumn export",
        spend=30.0,
        gate=KeepEverything(),
        limits=limits_from(settings),
    )
    with store.read() as conn:
        by_campaign = {r.group: r for r in funnel.funnel(conn, business_id=business, by="campaign")}
        by_source = {r.group: r for r in funnel.funnel(conn, business_id=business, by="source")}
        by_campaign_with_ads = {
            r.group: r
            for r in funnel.funnel(
                conn,
                business_id=business,
                by="campaign",
                campaign_spend=lambda conn, *, business_id, campaign: (
                    60.0 if campaign == "autumn" else None
                ),
            )
        }
    spring = by_campaign["spring"]
    assert (spring.leads, spring.prospects, spring.customers) == (2, 2, 1)
    assert spring.lead_to_prospect.value == 1.0 and spring.prospect_to_customer.value == 0.5
    assert spring.cost_per_lead == 50.0 and spring.cost_per_customer == 100.0
    autumn = by_campaign["autumn"]
    assert (autumn.leads, autumn.customers, autumn.spend) == (2, 0, None)
    assert by_campaign_with_ads["autumn"].cost_per_lead == 30.0
    assert by_campaign_with_ads["autumn"].cost_per_customer is None
    assert by_source["lead_ads"].cost_per_lead == 30.0 and by_source["form"].leads == 3


def test_decayed_score_is_applied_before_new_points(store: Store, keys: Bootstrap) -> None:
    business = keys.business_id
    with store.write() as conn:
        service.set_scoring(
            conn,
            business_id=business,
            data=ScoringIn(
                rules=[ScoringRule(kind="email", name="open", points=40)],
                half_life_days=10,
                prospect_at=70,
            ),
        )
        conn.execute(
            leads.insert().values(
                id="lead_x",
                business_id=business,
                email="x@b.example",
                anonymous_id="anon-x",
                answers="{}",
                utm="{}",
                source="csv",
                status="imported",
                created_at=T0,
            )
        )
        service.score_activity(
            conn, business_id=business, lead_id="lead_x", kind="email", name="open", now=T0
        )
        service.score_activity(
            conn,
            business_id=business,
            lead_id="lead_x",
            kind="email",
            name="open",
            now=T0 + timedelta(days=10),
        )
        stage, _phase, score = _stage(conn, "lead_x")
    assert score == pytest.approx(60.0) and stage == "lead"  # 40 halved to 20, plus 40
