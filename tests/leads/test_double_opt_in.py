"""Double opt-in against an injected consent ledger: proof recorded only after confirming."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.consent.models import consent_records
from accord.leads import confirmation, forms, submissions
from accord.leads.models import FormIn, lead_consents
from accord.leads.validation import CleanSubmission
from accord.process.email import default_wiring
from accord.store.db import Store
from tests.messaging.helpers import FakeLedger, mailer_for
from tests.smtp_sink import running_sink

FORM = FormIn.model_validate(
    {
        "slug": "news",
        "title": {"en": "News"},
        "fields": [{"key": "email", "kind": "email"}],
        "consents": [
            {"purpose": "marketing", "label": {"en": "Email me"}},
            {"purpose": "preferences", "label": {"en": "Tailor offers"}},
        ],
        "privacy_policy_url": "https://shop.example/privacy",
        "from_address": "hello@shop.example",
    }
)


def test_consent_reaches_the_ledger_with_its_proof_only_after_confirmation(
    store: Store, keys: Bootstrap
) -> None:
    ledger = FakeLedger()
    submission = CleanSubmission(email="ada@people.example", purposes=["marketing", "preferences"])
    with store.write() as conn:
        form = forms.create_form(conn, business_id=keys.business_id, data=FORM)
        done = submissions.submit(
            conn,
            form=form,
            submission=submission,
            anonymous_id="anon-ada",
            ip="198.51.100.4",
            user_agent="Firefox",
        )
    assert done.needs_confirmation
    with running_sink() as sink:
        mailer = mailer_for(sink)
        message_id = asyncio.run(
            confirmation.send_confirmation(
                store,
                form=form,
                lead_id=done.lead_id,
                email="ada@people.example",
                lang="en",
                mailer=mailer,
            )
        )
        assert sink.to("ada@people.example")
    assert ledger.recorded == []

    with store.write() as conn:
        confirmed = confirmation.confirm(
            conn,
            lead_id=done.lead_id,
            ip="198.51.100.9",
            wiring=ledger.wiring(),
            signer=mailer.signer,
        )
    assert confirmed.purposes == ["marketing", "preferences"]
    assert sorted(orjson.dumps(r["purposes"]) for r in ledger.recorded) == [
        b'{"marketing":true}',
        b'{"preferences":true}',
    ]
    evidence = ledger.recorded[0]["evidence"]
    assert evidence["form_version"] == 1 and evidence["ip"] == "198.51.100.4"
    assert evidence["double_opt_in"]["confirmation_message_id"] == message_id
    assert evidence["double_opt_in"]["ip"] == "198.51.100.9"
    assert all(r["anonymous_id"] == "anon-ada" for r in ledger.recorded)

    # Confirming again records nothing twice; a later submission of a confirmed lead
    # is recorded at once (it needs no new confirmation).
    with store.write() as conn:
        confirmation.confirm(
            conn, lead_id=done.lead_id, ip=None, wiring=ledger.wiring(), signer=mailer.signer
        )
        assert len(ledger.recorded) == 2
        again = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="ada@people.example", purposes=["marketing"]),
            anonymous_id=None,
            ip="198.51.100.4",
            user_agent=None,
        )
        assert not again.needs_confirmation
        confirmation.confirm(
            conn, lead_id=again.lead_id, ip=None, wiring=ledger.wiring(), signer=mailer.signer
        )
        statuses = conn.execute(select(lead_consents.c.status)).scalars().all()
    assert len(ledger.recorded) == 3 and ledger.recorded[2]["evidence"]["double_opt_in"] is None
    assert statuses == ["recorded"] * 3


def test_item_15_double_opt_in_records_evidence_and_the_language_shown(
    store: Store, keys: Bootstrap
) -> None:
    ledger = FakeLedger()
    italian = FormIn.model_validate(
        {
            **FORM.model_dump(),
            "slug": "notizie",
            "consents": [{"purpose": "marketing", "label": {"en": "Email me", "it": "Scrivetemi"}}],
        }
    )
    with store.write() as conn:
        form = forms.create_form(conn, business_id=keys.business_id, data=italian)
        done = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="giulia@people.example", purposes=["marketing"]),
            anonymous_id="anon-giulia",
            ip="198.51.100.4",
            user_agent="Firefox",
        )
    with running_sink() as sink:
        mailer = mailer_for(sink)
        message_id = asyncio.run(
            confirmation.send_confirmation(
                store,
                form=form,
                lead_id=done.lead_id,
                email="giulia@people.example",
                lang="it",
                mailer=mailer,
            )
        )
    with store.write() as conn:
        confirmation.confirm(
            conn,
            lead_id=done.lead_id,
            ip="198.51.100.9",
            wiring=ledger.wiring(),
            signer=mailer.signer,
            lang="it",
        )
    [recorded] = ledger.recorded
    evidence = recorded["evidence"]
    assert evidence["language"] == "it" and evidence["checkbox_text"] == "Scrivetemi"
    assert evidence["form_version"] == 1
    assert evidence["double_opt_in"]["confirmation_message_id"] == message_id
    # The ledger itself records the language the form was shown in.
    with store.write() as conn:
        again = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="giulia@people.example", purposes=["marketing"]),
            anonymous_id="anon-giulia",
            ip="198.51.100.4",
            user_agent="Firefox",
        )
        assert not again.needs_confirmation
        confirmation.confirm(
            conn,
            lead_id=done.lead_id,
            ip=None,
            wiring=default_wiring(),
            signer=mailer.signer,
            lang="it",
        )
        languages = conn.execute(
            select(consent_records.c.language).where(
                consent_records.c.anonymous_id == "anon-giulia"
            )
        ).scalars()
        assert list(languages) == ["it"]
