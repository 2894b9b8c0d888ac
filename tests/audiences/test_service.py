"""Audiences end to end on SQLite and PostgreSQL: events through the worker, refresh on
DuckDB, real-time entries and exits, suppression, and exports that respect consent."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from accord.accounts.models import Bootstrap, SourceRef
from accord.audiences import activation, definitions, destinations, membership, service
from accord.audiences import refresh as audience_refresh
from accord.audiences.exports import InterestGroupOptions, sha256
from accord.audiences.models import AudienceIn, WebhookIn
from accord.audiences.predefined import PREDEFINED
from accord.audiences.text import parse
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import iso, utcnow
from accord.core.errors import InvalidInput, NotFound
from accord.core.outbound import OutboundPolicy
from accord.core.settings import Settings
from accord.core.webhooks import verify
from accord.engine.connection import connect
from accord.process.email import record_in_ledger
from accord.process.worker import drain
from accord.reach import service as reach
from accord.store.db import Store

LEASE = timedelta(seconds=60)


@dataclass
class Grants:
    """Purposes granted by user id, to record in the consent ledger (everything that asks
    about consent reads the ledger)."""

    by_user: dict[str, set[str]] = field(default_factory=dict)

    def record(self, store: Store, business_id: str) -> None:
        """Append the grants to the ledger the way a confirmed form does."""
        with store.write() as conn:
            for user_id, purposes in self.by_user.items():
                if purposes:
                    record_in_ledger(
                        conn,
                        business_id=business_id,
                        anonymous_id=None,
                        user_id=user_id,
                        purposes=dict.fromkeys(purposes, True),
                        source="api",
                        evidence={},
                    )


def ago(days: float) -> str:
    return iso(utcnow() - timedelta(days=days))


def track(n: int, user: str, name: str, days: float, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "messageId": f"m{n}",
        "userId": user,
        "timestamp": ago(days),
        "properties": properties,
    }


def identify(n: int, user: str, days: float, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"m{n}",
        "userId": user,
        "timestamp": ago(days),
        "traits": traits,
    }


def ingest(store: Store, keys: Bootstrap, settings: Settings, events: list[dict[str, Any]]) -> None:
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    append(store, source=source, events=events, gate=KeepEverything(), received_at=utcnow())
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=1000, lease=LEASE)


SHOP = [
    identify(1, "ann", 20, email="Ann@Example.com", first_name="Ann", plan="pro", ltv=320, phone="+44 844 412 4653"),  # noqa: E501
    identify(2, "bob", 20, email="bob@example.com", plan="free", ltv=20),
    identify(3, "cyd", 20, email="cyd@example.com", plan="pro", ltv=80, nps_score=3),
    track(4, "ann", "Product Viewed", 2, category="shoes"),
    track(5, "ann", "Product Viewed", 3, category="shoes"),
    track(6, "ann", "Product Viewed", 4, category="shoes"),
    track(7, "bob", "Product Viewed", 1, category="shoes"),
    track(8, "bob", "Product Added", 1, category="shoes"),
    track(9, "cyd", "Order Completed", 5, revenue=250),
]  # fmt: skip


@pytest.fixture
def shop(store: Store, keys: Bootstrap, settings: Settings) -> Bootstrap:
    ingest(store, keys, settings, SHOP)
    return keys


def create(store: Store, business_id: str, slug: str, text: str, **extra: Any) -> str:
    with store.write() as conn:
        view = definitions.create_audience(
            conn,
            business_id=business_id,
            audience=AudienceIn(name=slug, slug=slug, text=text, **extra),
        )
    return view.id


def refresh(store: Store, settings: Settings, business_id: str, **kw: Any) -> Any:
    return audience_refresh.refresh(
        store,
        business_id=business_id,
        backend=connect("duckdb://"),
        lake_url=settings.resolved_lake_url(),
        **kw,
    )


def members(store: Store, business_id: str, audience: str) -> set[str]:
    with store.read() as conn:
        ids = membership.member_ids(conn, business_id=business_id, audience=audience)
        everyone = service.people(conn, business_id=business_id, profile_ids=ids)
    return {p.user_ids[0] for p in everyone.values()}


def test_predefined_audiences_exist_and_validate(store: Store, keys: Bootstrap) -> None:
    with store.write() as conn:
        definitions.ensure_predefined(conn, business_id=keys.business_id)
        definitions.ensure_predefined(conn, business_id=keys.business_id)
        listed = definitions.list_audiences(conn, business_id=keys.business_id)
    assert sorted(a.slug for a in listed) == sorted(p.slug for p in PREDEFINED)
    assert [a.slug for a in listed if a.suppression] == ["low-nps"]
    for audience in listed:
        assert parse(audience.text).model_dump(mode="json")["condition"] == audience.definition


def test_create_refuses_what_it_cannot_evaluate(store: Store, shop: Bootstrap) -> None:
    business = shop.business_id
    with pytest.raises(InvalidInput) as caught:
        create(store, business, "x", 'trait plann = "pro"')
    assert caught.value.problems[0].field == "definition.condition.trait"
    assert "unknown trait 'plann'" in caught.value.problems[0].reason
    with pytest.raises(InvalidInput) as caught:
        create(store, business, "x", 'trait plan = "pro" and trait ltv > "a lot"')
    assert caught.value.problems[0].field == "definition.condition.all[1].value"
    with pytest.raises(InvalidInput, match="exists already"):
        create(store, business, "purchased-30d", "everyone")
    create(store, business, "a", "in audience purchased-30d")
    with pytest.raises(InvalidInput, match="unknown audience 'b'"):
        create(store, business, "b", "in audience b")
    with pytest.raises(InvalidInput, match="is predefined"), store.write() as conn:
        definitions.delete_audience(conn, business_id=business, audience="purchased-30d")
    create(store, business, "c", "in audience a")
    with pytest.raises(InvalidInput, match="'a' is named by c"), store.write() as conn:
        definitions.delete_audience(conn, business_id=business, audience="a")
    with store.write() as conn:
        definitions.delete_audience(conn, business_id=business, audience="c")
        definitions.delete_audience(conn, business_id=business, audience="a")
    with pytest.raises(NotFound), store.read() as conn:
        definitions.get_audience(conn, business_id=business, audience="a")


def test_refresh_on_duckdb_sizes_history_and_overlap(
    store: Store, shop: Bootstrap, settings: Settings
) -> None:
    business = shop.business_id
    shoes = create(
        store,
        business,
        "shoe-fans",
        'did "Product Viewed" where category = "shoes" at least 3 times in the last 30 days',
    )
    pros = create(store, business, "pros", 'trait plan = "pro" and trait ltv >= 100')
    results = {r.audience_id: r for r in refresh(store, settings, business)}
    assert members(store, business, shoes) == {"ann"}
    assert members(store, business, pros) == {"ann"}
    assert members(store, business, "cart-abandoners") == {"bob"}
    assert members(store, business, "high-value") == {"cyd"}
    assert members(store, business, "low-nps") == {"cyd"}
    assert members(store, business, "new-visitors") == {"ann", "bob", "cyd"}
    assert results[shoes].entered == 1 and results[shoes].size == 1

    ingest(store, shop, settings, [track(20, "bob", "Product Viewed", 1, category="shoes"), track(21, "bob", "Product Viewed", 1, category="shoes"), identify(22, "ann", 0, plan="free")])  # fmt: skip  # noqa: E501
    refresh(store, settings, business, only=["shoe-fans", "pros"])
    assert members(store, business, shoes) == {"ann", "bob"}
    assert members(store, business, pros) == set()
    with store.read() as conn:
        history = membership.sizes(conn, business_id=business, audience="pros")
        both = membership.overlap(
            conn, business_id=business, first="shoe-fans", second="cart-abandoners"
        )
        feed = membership.changes(conn, business_id=business, audience="pros")
    assert [p.size for p in history] == [1, 0]
    assert (both.first_size, both.second_size, both.both) == (2, 1, 1)
    assert both.jaccard == pytest.approx(1 / 2)
    # pros has no event condition: ann left it in real time, when her identify was processed.
    assert [(c.change, c.origin) for c in feed] == [("entered", "refresh"), ("exited", "realtime")]


def test_preview_counts_and_samples(store: Store, shop: Bootstrap, settings: Settings) -> None:
    result = audience_refresh.preview(
        store,
        business_id=shop.business_id,
        definition=parse('did "Product Viewed" in the last 7 days'),
        backend=connect("duckdb://"),
        lake_url=settings.resolved_lake_url(),
        sample=1,
    )
    assert result.size == 2
    assert len(result.sample) == 1 and "email" in result.sample[0].traits


def test_realtime_entries_and_exits_from_the_worker(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    business = keys.business_id
    with store.write() as conn:
        definitions.ensure_predefined(conn, business_id=business)
    ingest(store, keys, settings, [identify(1, "dan", 1), track(2, "dan", "Product Added", 0.5)])
    assert members(store, business, "cart-abandoners") == {"dan"}
    ingest(store, keys, settings, [track(3, "dan", "Order Completed", 0.1, revenue=10)])
    assert members(store, business, "cart-abandoners") == set()
    assert members(store, business, "purchased-7d") == {"dan"}
    with store.read() as conn:
        feed = membership.changes(conn, business_id=business, audience="cart-abandoners")
        # Not decided in real time: its window is longer than the inbox keeps events.
        assert members(store, business, "purchased-90d") == set()
    assert [(c.change, c.origin) for c in feed] == [("entered", "realtime"), ("exited", "realtime")]
    # The engine agrees with what real time decided.
    refresh(store, settings, business)
    assert members(store, business, "cart-abandoners") == set()
    assert members(store, business, "purchased-90d") == {"dan"}
    with store.read() as conn:
        refreshed = [
            c
            for c in membership.changes(conn, business_id=business, audience="purchased-7d")
            if c.origin == "refresh"
        ]
    assert refreshed == []


def test_consent_conditions_read_the_ledger(
    store: Store, shop: Bootstrap, settings: Settings
) -> None:
    """ann granted marketing, bob refused it, cyd has no record (so has not consented);
    refresh, preview and real time all read the same ledger."""
    business = shop.business_id
    marketable = create(store, business, "marketable", "consent marketing")
    Grants({"ann": {"marketing"}}).record(store, business)
    with store.write() as conn:
        record_in_ledger(
            conn,
            business_id=business,
            anonymous_id=None,
            user_id="bob",
            purposes={"marketing": False, "newsletter": True},
            source="api",
            evidence={},
        )
    refresh(store, settings, business)
    assert members(store, business, marketable) == {"ann"}
    result = audience_refresh.preview(
        store,
        business_id=business,
        definition=parse("consent newsletter and not consent marketing"),
        backend=connect("duckdb://"),
        lake_url=settings.resolved_lake_url(),
    )
    assert [m.traits["email"] for m in result.sample] == ["bob@example.com"]
    # bob changes his mind; his next event decides again in real time.
    Grants({"bob": {"marketing"}}).record(store, business)
    ingest(store, shop, settings, [identify(30, "bob", 0, plan="pro")])
    assert members(store, business, marketable) == {"ann", "bob"}
    # A purpose is known when the business has it (newsletter came with bob's decision)
    # or it is a standard one; any other is refused.
    with pytest.raises(InvalidInput, match="unknown purpose 'nonsense'"):
        create(store, business, "x", "consent nonsense")


def _reach(store: Store, business: str, **identifiers: str) -> Any:
    fields = {"email": "emails", "user_id": "user_ids", "phone": "phones"}
    person = reach.Addressee(
        key="p", **{fields[kind]: (value,) for kind, value in identifiers.items()}
    )
    with store.read() as conn:
        return reach.decisions(
            conn,
            business_id=business,
            people=[person],
            channel="email",
            lists=service.suppression_lists,
        )["p"]


def test_suppression_by_identifier_and_by_audience(
    store: Store, shop: Bootstrap, settings: Settings
) -> None:
    business = shop.business_id
    refresh(store, settings, business)
    with store.write() as conn:
        reach.suppress(
            conn, business_id=business, kind="email", value=" ANN@example.com", reason="unsubscribe"
        )
        reach.suppress(
            conn, business_id=business, kind="email", value="ann@example.com", reason="complaint"
        )
    assert _reach(store, business, user_id="ann").reason == "unsubscribed"
    assert _reach(store, business, email="Ann@example.com").reason == "unsubscribed"
    # cyd answered the NPS survey with 3: the low-NPS audience suppresses her.
    assert _reach(store, business, user_id="cyd").detail == "in audience low-nps"
    assert _reach(store, business, user_id="bob").reason == "no_consent"
    assert _reach(store, business, email="nobody@example.com").reason == "no_consent"
    with store.read() as conn:
        listed = reach.list_suppressions(conn, business_id=business)
    assert [(s["kind"], s["value"], s["reason"]) for s in listed] == [
        ("email", "ann@example.com", "unsubscribe")
    ]
    with store.write() as conn:
        assert reach.unsuppress(conn, business_id=business, kind="email", value="ann@example.com")
    assert _reach(store, business, user_id="ann").reason == "no_consent"


# Exports: never a person without consent or on a suppression list ----------------------

# Every combination of (purposes granted, how suppressed) gets one person.
COMBINATIONS = [
    (granted, suppressed)
    for granted in ([], ["marketing"], ["advertising"], ["marketing", "advertising"])
    for suppressed in (None, "email", "user_id", "phone", "low-nps")
]


def _population() -> list[dict[str, Any]]:
    events = []
    for i, (_, suppressed) in enumerate(COMBINATIONS):
        traits: dict[str, Any] = {
            "email": f"p{i}@example.com",
            "phone": f"+33 6 12 34 56 {i:02d}",
            "first_name": f"Émile-{i}",
            "plan": "pro",
        }
        if suppressed == "low-nps":
            traits["nps_score"] = 2
        events.append(identify(100 + i, f"user{i}", 3, **traits))
        events.append(
            {
                **track(200 + i, f"user{i}", "Order Completed", 1, revenue=30),
                "anonymousId": f"anon{i}",
            }
        )
    return events


@pytest.mark.parametrize("destination", ["csv", "meta", "google", "interest_groups"])
def test_exports_never_contain_anyone_without_consent_or_suppressed(
    store: Store, keys: Bootstrap, settings: Settings, destination: Any
) -> None:
    business = keys.business_id
    ingest(store, keys, settings, _population())
    Grants({f"user{i}": set(g) for i, (g, _) in enumerate(COMBINATIONS)}).record(store, business)
    refresh(store, settings, business)
    with store.write() as conn:
        for i, (_, suppressed) in enumerate(COMBINATIONS):
            if suppressed in ("email", "phone"):
                value = f"p{i}@example.com" if suppressed == "email" else f"+33612345 6{i:02d}"
                reach.suppress(
                    conn, business_id=business, kind=suppressed, value=value, reason="complaint"
                )
            elif suppressed == "user_id":
                reach.suppress(conn, business_id=business, kind="user_id", value=f"user{i}")
    purpose = "marketing"
    allowed = {i for i, (g, s) in enumerate(COMBINATIONS) if purpose in g and s is None}
    options = InterestGroupOptions(
        owner="https://dsp.example",
        bidding_logic_url="https://dsp.example/bid.js",
        ads=("https://dsp.example/ad/1",),
    )
    with store.read() as conn:
        export = activation.export_audience(
            conn,
            business_id=business,
            audience="purchased-7d",
            destination=destination,
            interest_groups=options,
        )

    if destination == "interest_groups":
        body = orjson.loads(export.body)
        found = {int(a.removeprefix("anon")) for a in body["anonymousIds"]}
        assert body["interestGroup"]["name"] == "purchased-7d"
        assert body["interestGroup"]["lifetimeMs"] == 30 * 86_400_000
    else:
        rows = list(csv.DictReader(io.StringIO(export.body.decode())))
        column = {"csv": "email", "meta": "email", "google": "Email"}[destination]
        index = {
            (f"p{i}@example.com" if destination == "csv" else sha256(f"p{i}@example.com")): i
            for i in range(len(COMBINATIONS))
        }
        found = {index[row[column]] for row in rows}
    assert found == allowed
    assert export.included == len(allowed)
    # Suppressions come first: a suppressed person is counted as suppressed.
    without = sum(1 for g, s in COMBINATIONS if purpose not in g and s is None)
    assert export.left_out[f"no consent for {purpose}"] == without
    assert sum(export.left_out.values()) == len(COMBINATIONS) - len(allowed)


def test_no_consent_recorded_means_nobody_leaves(
    store: Store, shop: Bootstrap, settings: Settings
) -> None:
    refresh(store, settings, shop.business_id)
    with store.read() as conn:
        export = activation.export_audience(
            conn,
            business_id=shop.business_id,
            audience="new-visitors",
            destination="meta",
        )
    assert export.included == 0
    assert export.left_out == {"no consent for marketing": 2, "suppressed: in audience low-nps": 1}
    assert export.body.decode().strip() == "email,phone,fn,ln,zip,country"


def test_webhook_receives_signed_entries_and_exits_with_retries(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    business = keys.business_id
    with store.write() as conn:
        definitions.ensure_predefined(conn, business_id=business)
        hook = destinations.add_webhook(
            conn,
            business_id=business,
            audience="cart-abandoners",
            webhook_in=WebhookIn(url="https://hooks.example/accord"),
            outbound=OutboundPolicy(),
        )
    ingest(
        store,
        keys,
        settings,
        [
            identify(1, "eve", 1, email="eve@example.com"),
            identify(2, "fay", 1),
            track(3, "eve", "Product Added", 0.5),
            track(4, "fay", "Product Added", 0.5),
        ],
    )
    ingest(store, keys, settings, [track(5, "eve", "Order Completed", 0.2)])
    received: list[httpx.Request] = []
    answers = iter([503, 200, 200])

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(next(answers))

    Grants({"eve": {"marketing"}}).record(store, business)
    client = httpx.Client(transport=httpx.MockTransport(receiver))
    [run] = destinations.deliver_webhooks(
        store, business_id=business, client=client, sleep=lambda _s: None
    )
    assert run.delivery is not None and run.delivery.delivered and run.delivery.attempts == 2
    assert run.left_out == {"no consent for marketing": 1}
    body = orjson.loads(received[-1].content)
    assert [(c["change"], c["user_id"], c["email"]) for c in body["changes"]] == [
        ("entered", "eve", "eve@example.com"),
        ("exited", "eve", "eve@example.com"),
    ]
    headers = {k: v for k, v in received[-1].headers.items()}
    assert verify(hook["secret"], headers, received[-1].content)
    assert not verify("whsec_other", headers, received[-1].content)
    # Delivered once: the next run has nothing to send.
    [again] = destinations.deliver_webhooks(store, business_id=business, client=client)
    assert again.sent == 0 and again.delivery is None
    with store.read() as conn:
        feed = membership.changes(conn, business_id=business, audience="cart-abandoners")
    # fay's entry was withheld (no consent), not lost: it stays in the feed.
    assert [c.change for c in feed] == ["entered", "entered", "exited"]


def test_unknown_audience(store: Store, keys: Bootstrap) -> None:
    with pytest.raises(NotFound), store.read() as conn:
        definitions.get_audience(conn, business_id=keys.business_id, audience="nope")
