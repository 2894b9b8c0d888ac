"""Subject rights: export everything, erase everywhere, and stay erased after a replay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from sqlalchemy import String, Text, select

from accord.accounts.models import Bootstrap
from accord.core.errors import NotFound
from accord.core.outbound import OutboundPolicy
from accord.core.settings import Settings
from accord.rights.service import erase_subject, export_subject
from accord.store.db import Store
from accord.store.schema import metadata
from tests.identity.helpers import assert_conserved, ev, groups, linked_events, process, profile_of

ERASED = ("ann-user", "ann-phone", "ann@example.org", "+33612345678", "ann-laptop")


def _events() -> list[dict[str, Any]]:
    return [
        ev(
            minute=1,
            anonymousId="ann-phone",
            event="Product Viewed",
            properties={"product_id": "p1"},
            timestamp="2026-11-09T23:59:00Z",
        ),
        ev(
            "identify",
            2,
            anonymousId="ann-phone",
            userId="ann-user",
            traits={"email": "Ann@Example.org", "phone": "+33 6 12 34 56 78"},
        ),
        ev(
            minute=3,
            userId="ann-user",
            anonymousId="ann-laptop",
            event="Order Completed",
            properties={"revenue": 20},
        ),
        ev(
            minute=4,
            anonymousId="bob-pc",
            userId="bob",
            event="Order Completed",
            properties={"revenue": 5},
        ),
    ]


def _scan_store(store: Store) -> list[str]:
    """Every text value anywhere in the state store that names the erased person."""
    found = []
    with store.read() as conn:
        for table in metadata.sorted_tables:
            text_columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if not text_columns:
                continue
            for row in conn.execute(select(*text_columns)):
                for value in row:
                    if isinstance(value, str) and any(e.lower() in value.lower() for e in ERASED):
                        found.append(f"{table.name}: {value[:80]}")
    return found


def _scan_lake(lake: str) -> list[str]:
    files = sorted(Path(lake).rglob("*.parquet"))
    found = []
    for file in files:
        for row in pq.ParquetFile(file).read().to_pylist():
            text = orjson.dumps([str(v) for v in row.values()]).decode().lower()
            found += [f"{file.name}: {e}" for e in ERASED if e.lower() in text]
    return found


def test_export_then_erase_everywhere(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    sent = _events()
    process(store, keys, lake, sent)
    ann = profile_of(store, biz, "user_id:ann-user")
    assert _scan_lake(lake) and _scan_store(store)

    with store.read() as conn:
        exported = export_subject(conn, business_id=biz, profile_id=ann)
    assert len(exported.events) == 3
    assert {i["value"] for i in exported.identifiers} == {
        "ann-user",
        "ann-phone",
        "ann-laptop",
        "ann@example.org",
        "+33612345678",
    }
    assert exported.consent_records == []  # nobody recorded a decision for ann
    assert exported.profile["computed"]["total_spend"] == 20

    report = erase_subject(store, business_id=biz, profile_id=ann, lake_url=lake)
    assert (report.identifiers, report.events, report.inbox_rows) == (5, 3, 3)
    # Two days hold Ann's events: both partitions were rewritten.
    assert report.lake_files_rewritten == 2
    assert len(report.identifier_hashes) == 5
    assert _scan_store(store) == []
    assert _scan_lake(lake) == []
    assert groups(store, biz) == {frozenset({"user_id:bob", "anonymous_id:bob-pc"})}
    assert_conserved(store, biz, sent)

    # Replaying the original events (new messageIds, as a re-import would) and a late
    # event from Ann's phone bring nothing back; Bob's replayed event comes in.
    replay = [{**e, "messageId": e["messageId"] + "-again"} for e in sent]
    late = ev(minute=9, anonymousId="ann-phone", event="Product Viewed")
    process(store, keys, lake, [*replay, late])
    assert _scan_store(store) == []
    assert _scan_lake(lake) == []
    assert len(linked_events(store, biz)[profile_of(store, biz, "user_id:bob")]) == 2
    with store.read() as conn, pytest.raises(NotFound):
        export_subject(conn, business_id=biz, profile_id=ann)


def test_export_and_erase_through_api_and_cli(
    client: Any,
    keys: Bootstrap,
    store: Store,
    settings: Settings,
    tmp_path: Path,
    database_url: str,
) -> None:
    from tests.test_cli import Cli

    biz, lake = keys.business_id, settings.resolved_lake_url()
    process(store, keys, lake, _events())
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    ann = profile_of(store, biz, "user_id:ann-user")
    exported = client.get(f"/api/profiles/{ann}/export", headers=admin)
    assert exported.status_code == 200, exported.text
    # The consent ledger is wired in; Ann has made no decision in it.
    assert exported.json()["consent_records"] == []
    assert len(exported.json()["events"]) == 3

    cli = Cli(tmp_path, database_url)
    cli.env["ACCORD_LAKE_URL"] = lake
    by_email = cli.json("profiles", "export", "email:ANN@example.org", "--business", biz)
    assert by_email["identifiers"] == exported.json()["identifiers"]
    assert by_email["consent_records"] == []
    cli("profiles", "erase", "email:nobody@example.org", "--business", biz, "--yes", code=1)
    bob = profile_of(store, biz, "user_id:bob")
    assert cli.json("profiles", "erase", bob, "--business", biz, "--yes")["events"] == 1

    erased = client.delete(f"/api/profiles/{ann}", headers=admin)
    assert erased.status_code == 200, erased.text
    assert erased.json()["events"] == 3
    assert client.delete(f"/api/profiles/{ann}", headers=admin).status_code == 404
    from accord.accounts.service import audit_entries

    with store.read() as conn:
        erased_by = {
            e.asset_id: (e.actor_kind, e.actor_label)
            for e in audit_entries(conn, business_id=biz, action="profile.erase", limit=10)
        }
    assert erased_by[ann][0] == "token"
    assert erased_by[bob] == ("system", erased_by[bob][1])
    assert erased_by[bob][1].startswith("accord profiles erase (by ")
    assert _scan_lake(lake) == []
    assert groups(store, biz) == set()


def test_an_erasure_during_a_batch_leaves_nothing_in_the_lake(
    store: Store, keys: Bootstrap, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.identity.service import add_tombstones
    from accord.process import pipeline

    biz, lake = keys.business_id, settings.resolved_lake_url()
    real_write = pipeline.write_batch

    def write_then_erase(*args: Any, **kwargs: Any) -> list[str]:
        written = real_write(*args, **kwargs)
        # The erasure stores its tombstones just after this batch wrote its lake files.
        with store.write() as conn:
            add_tombstones(
                conn, business_id=biz, keys=[("anonymous_id", "ann-phone")], erasure_id="era_test"
            )
        return written

    monkeypatch.setattr(pipeline, "write_batch", write_then_erase)
    process(
        store, keys, lake, [ev(minute=1, anonymousId="ann-phone"), ev(minute=2, anonymousId="bob")]
    )
    assert _scan_lake(lake) == []
    assert groups(store, biz) == {frozenset({"anonymous_id:bob"})}


WAIT_JOURNEY: dict[str, Any] = {
    "entry": {"type": "api"},
    "start": "wait",
    "nodes": {
        "wait": {
            "type": "wait_for_event",
            "event": "Order Completed",
            "timeout": "1d",
            "on_event": "out",
            "on_timeout": "out",
        },
        "out": {"type": "exit"},
    },
    "messages": {},
}

# Tables that keep rows naming the erased person on purpose (docs/identity.md).
KEPT_AS_PROOF = {"consent_records"}


def _everything_about_ann(
    store: Store, keys: Bootstrap, settings: Settings, sink: Any
) -> dict[str, Any]:
    """Ann in every context: events, a consent ledger record, a confirmed lead with a
    confirmation email (opened), a list membership, an unsubscribe, a journey run, and
    audience memberships with a webhook destination."""
    import asyncio

    from accord.audiences.definitions import create_audience
    from accord.audiences.destinations import add_webhook
    from accord.audiences.models import AudienceIn, WebhookIn
    from accord.consent import config
    from accord.consent.models import PropertyIn
    from accord.consent.service import record_consent
    from accord.core.clock import utcnow
    from accord.journeys import service as journeys
    from accord.journeys.runner import Runner
    from accord.leads import confirmation, forms, service, submissions
    from accord.leads.models import FormIn
    from accord.leads.validation import CleanSubmission
    from accord.messaging import lists, tracking
    from accord.messaging import service as messaging
    from accord.messaging.models import ListIn, MemberIn
    from accord.process.journeys import environment
    from tests.messaging.helpers import FakeLedger, mailer_for

    biz, lake = keys.business_id, settings.resolved_lake_url()
    with store.write() as conn:
        audience = create_audience(
            conn,
            business_id=biz,
            audience=AudienceIn(
                name="Known by email", slug="with-email", text="trait email exists"
            ),
        )
        hook = add_webhook(
            conn,
            business_id=biz,
            audience="with-email",
            webhook_in=WebhookIn(url="http://127.0.0.1:9/hook", purpose="marketing"),
            outbound=OutboundPolicy.from_setting("127.0.0.1"),
        )
        config.create_property(conn, business_id=biz, spec=PropertyIn(key="web", name="Web"))
        record_consent(
            conn,
            business_id=biz,
            property_key="web",
            purposes={"marketing": True},
            source="api",
            anonymous_id="ann-phone",
        )
    sent = _events()
    process(store, keys, lake, sent)
    ann = profile_of(store, biz, "user_id:ann-user")

    form_in = FormIn.model_validate(
        {
            "slug": "news",
            "title": {"en": "News"},
            "fields": [{"key": "email", "kind": "email"}, {"key": "phone", "kind": "phone"}],
            "consents": [{"purpose": "marketing", "label": {"en": "Email me"}}],
            "privacy_policy_url": "https://shop.example/privacy",
            "from_address": "hello@shop.example",
        }
    )
    mailer = mailer_for(sink)
    with store.write() as conn:
        form = forms.create_form(conn, business_id=biz, data=form_in)
        done = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="ann@example.org", purposes=["marketing"]),
            anonymous_id="ann-phone",
            ip="198.51.100.4",
            user_agent="Firefox",
        )
    message_id = asyncio.run(
        confirmation.send_confirmation(
            store,
            form=form,
            lead_id=done.lead_id,
            email="ann@example.org",
            lang="en",
            mailer=mailer,
        )
    )
    with store.write() as conn:
        confirmation.confirm(
            conn,
            lead_id=done.lead_id,
            ip="198.51.100.9",
            wiring=FakeLedger().wiring(),
            signer=mailer.signer,
        )
        service.set_stage(
            conn, business_id=biz, lead_id=done.lead_id, stage="prospect", reason="called"
        )
        newsletter = lists.create_list(conn, business_id=biz, data=ListIn(name="Newsletter"))
        lists.add_member(
            conn,
            business_id=biz,
            list_id=newsletter,
            member=MemberIn(email="ann@example.org", anonymous_id="ann-phone", traits={"n": 1}),
        )
        messaging.suppress_email(
            conn, business_id=biz, email="ann@example.org", reason="unsubscribed"
        )
    with store.write() as conn:
        tracking.record_open(
            conn,
            mailer=mailer,
            token=mailer.signer.dumps("open", message_id),
            user_agent="Thunderbird",
            ip="198.51.100.7",
            now=utcnow() + timedelta(minutes=5),
        )
    with store.write() as conn:
        journeys.create_journey(
            conn,
            business_id=biz,
            key="wait",
            name="Wait",
            definition=WAIT_JOURNEY,
            now=utcnow(),
            outbound=OutboundPolicy(),
        )
        journeys.set_status(conn, business_id=biz, key="wait", status="active", now=utcnow())
        journeys.trigger(
            conn,
            Runner(environment()),
            business_id=biz,
            key="wait",
            profile_id=ann,
            entry_key="e-1",
            context={},
            now=utcnow(),
        )
    return {"ann": ann, "sent": sent, "audience": audience.id, "hook": hook["id"]}


def test_export_and_erasure_cover_leads_email_journeys_and_audiences(
    store: Store, keys: Bootstrap, settings: Settings, sink: Any
) -> None:
    from accord.accounts.models import Actor
    from accord.accounts.service import audit_entries
    from accord.audiences.membership import changes
    from accord.reach.service import suppressed
    from accord.rights.service import erase_subject

    biz, lake = keys.business_id, settings.resolved_lake_url()
    made = _everything_about_ann(store, keys, settings, sink)
    ann = made["ann"]

    with store.read() as conn:
        exported = export_subject(conn, business_id=biz, profile_id=ann)
    assert [r["purposes"]["marketing"] for r in exported.consent_records or []] == [True]
    assert [lead["email"] for lead in exported.leads["leads"]] == ["ann@example.org"]
    assert [c["status"] for c in exported.leads["consents"]] == ["recorded"]
    assert [s["stage"] for s in exported.leads["stage_changes"]][-1] == "prospect"
    assert [m["kind"] for m in exported.email["messages"]] == ["confirmation"]
    assert [e["kind"] for e in exported.email["events"]] == ["open"]
    assert [s["reason"] for s in exported.email["suppressions"]] == ["unsubscribed"]
    assert [m["list_name"] for m in exported.email["list_memberships"]] == ["Newsletter"]
    assert [r["steps"][0]["outcome"] for r in exported.journeys] == ["entered"]
    assert _scan_store(store)

    report = erase_subject(
        store,
        business_id=biz,
        profile_id=ann,
        lake_url=lake,
        actor=Actor(kind="person", id="per_dpo", label="dpo@shop.example"),
    )
    assert report.tables["leads"] == 1
    assert report.tables["lead_consents"] == 1
    assert report.tables["email_messages_anonymised"] == 1
    assert report.tables["email_events_anonymised"] == 1
    assert report.tables["email_list_members"] == 1
    assert report.tables["suppressions_hashed"] == 1
    assert report.tables["journey_runs"] == 1
    assert report.tables["journey_timers"] == 1
    assert report.tables["audience_members"] >= 1
    assert report.erasure_notices >= 1

    # Nothing names Ann any more, except the consent ledger's proof.
    left = _scan_store(store)
    assert left and all(line.startswith("consent_records:") for line in left), left
    assert _scan_lake(lake) == []
    with store.read() as conn:
        # The address stays suppressed, by its hash alone.
        assert suppressed(
            conn, business_id=biz, kind="email", values=["ann@example.org"], channel="email"
        ) == {"ann@example.org": "unsubscribed"}
        # Destinations of the audience get one `erased` change naming the profile id.
        assert [
            (c.change, c.profile_id)
            for c in changes(conn, business_id=biz, audience="with-email")
            if c.profile_id == ann
        ] == [("erased", ann)]
        entry = audit_entries(conn, business_id=biz, action="profile.erase", limit=10)
    assert [(e.actor_label, e.asset_id) for e in entry] == [("dpo@shop.example", ann)]

    # The webhook destination receives it (no consent needed to be told to forget),
    # with nothing but the profile id.
    import httpx

    from accord.audiences.destinations import deliver_webhooks

    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(receiver))
    deliver_webhooks(store, business_id=biz, client=client)
    body = orjson.loads(received[-1].content)
    assert [c for c in body["changes"] if c["profile_id"] == ann] == [
        {
            "seq": body["changes"][-1]["seq"],
            "change": "erased",
            "at": body["changes"][-1]["at"],
            "profile_id": ann,
            "user_id": None,
            "email": None,
        }
    ]

    # A replay and a late event bring nothing back, in any table.
    replay = [{**e, "messageId": e["messageId"] + "-again"} for e in made["sent"]]
    process(store, keys, lake, [*replay, ev(minute=9, anonymousId="ann-phone")])
    assert all(line.startswith("consent_records:") for line in _scan_store(store))
    assert _scan_lake(lake) == []
    with store.read() as conn:
        assert [c.profile_id for c in changes(conn, business_id=biz, audience="with-email")].count(
            ann
        ) == 1
