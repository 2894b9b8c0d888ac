"""Journeys wired to the other contexts: the runner's environment (profiles, consent,
suppression, lists), the channels built from settings, and the journey loop's thread."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import unescape
from typing import Any

from sqlalchemy import Connection

from accord.accounts.service import internal_source
from accord.audiences.models import Change
from accord.audiences.refresh import ChangeListener
from accord.audiences.service import suppression_lists
from accord.collect.service import append_in
from accord.core import outbound
from accord.core.clock import iso, utcnow
from accord.core.ids import new_id
from accord.core.settings import Settings
from accord.journeys.environment import Environment, Reach
from accord.journeys.runner import Runner
from accord.journeys.worker import run as run_journeys
from accord.messaging.channels import (
    Channel,
    Delivery,
    Outgoing,
    TwilioSms,
    Webhook,
    WebPush,
    WhatsAppCloud,
)
from accord.messaging.mailer import Mailer, send_rendered
from accord.messaging.templates import RenderedEmail
from accord.profiles.service import identifier_rows, load_states, profile_rows
from accord.reach import service as reach
from accord.store.db import Store, open_store


def _identifiers(conn: Connection, business_id: str, profile_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, kind, value in identifier_rows(conn, business_id=business_id, profile_ids=[profile_id]):
        found.setdefault(kind, []).append(value)
    return found


class ProfilePeople:
    """People as the profiles context holds them; a journey's trait change is an
    `identify` event, so it reaches the profile (and its history) like any other."""

    def traits(self, conn: Connection, *, business_id: str, profile_id: str) -> dict[str, Any]:
        state = load_states(conn, profile_ids=[profile_id]).get(profile_id)
        if state is None:
            return {}
        traits = {**state.computed(), **state.traits}
        ids = _identifiers(conn, business_id, profile_id)
        for kind in ("email", "phone"):
            if not traits.get(kind) and ids.get(kind):
                traits[kind] = ids[kind][0]
        return traits

    def _append(
        self, conn: Connection, business_id: str, profile_id: str, event: dict[str, Any]
    ) -> None:
        ids = _identifiers(conn, business_id, profile_id)
        event = {
            **event,
            "messageId": new_id("jny"),
            "timestamp": iso(utcnow()),
            "context": {"library": {"name": "accord-journeys"}},
        }
        if ids.get("user_id"):
            event["userId"] = ids["user_id"][0]
        elif ids.get("anonymous_id"):
            event["anonymousId"] = ids["anonymous_id"][0]
        else:
            return  # a person known by no id of their own cannot be written to
        source = internal_source(conn, business_id=business_id, kind="journeys", name="journeys")
        append_in(conn, source=source, events=[event], received_at=utcnow())

    def set_trait(
        self, conn: Connection, *, business_id: str, profile_id: str, trait: str, value: Any
    ) -> None:
        self._append(conn, business_id, profile_id, {"type": "identify", "traits": {trait: value}})

    def record(
        self,
        conn: Connection,
        *,
        business_id: str,
        profile_id: str,
        event: str,
        properties: dict[str, Any],
    ) -> None:
        self._append(
            conn,
            business_id,
            profile_id,
            {"type": "track", "event": event, "properties": properties},
        )

    def with_trait(
        self, conn: Connection, *, business_id: str, trait: str
    ) -> Iterable[tuple[str, dict[str, Any]]]:
        for row in profile_rows(conn, business_id=business_id):
            if row.traits.get(trait) is not None:
                yield row.id, row.traits


class ReachOfProfiles:
    """Reach decides (consent in the ledger, suppressions by any identifier and
    suppression audiences, an address on the channel)."""

    def check(self, conn: Connection, *, business_id: str, profile_id: str, channel: str) -> Reach:
        # The reader adds every identifier the profile holds.
        person = reach.Addressee(key=profile_id, profile_ids=(profile_id,))
        decided = reach.decisions(
            conn,
            business_id=business_id,
            people=[person],
            channel=channel,
            lists=suppression_lists,
        )[profile_id]
        return Reach(decided.allowed, decided.explained())


class SuppressionLists:
    """`list` nodes: the name `suppression` is the business's suppression list."""

    def change(
        self, conn: Connection, *, business_id: str, profile_id: str, name: str, add: bool
    ) -> None:
        if add:
            reach.suppress(
                conn,
                business_id=business_id,
                kind="profile",
                value=profile_id,
                reason=f"list {name}",
                source="journey",
            )
        else:
            reach.unsuppress(conn, business_id=business_id, kind="profile", value=profile_id)


def environment() -> Environment:
    return Environment(
        people=ProfilePeople(), reachability=ReachOfProfiles(), lists=SuppressionLists()
    )


def on_audience_changes(runner: Runner | None = None) -> ChangeListener:
    """What an audience refresh tells journeys: who entered an audience starts the
    journeys that begin there, and people waiting for a change go on. Real-time changes
    reach journeys through the pipeline; these are the ones only a refresh finds."""
    chosen = runner or Runner(environment())

    def tell(conn: Connection, business_id: str, audience: str, changes: list[Change]) -> None:
        chosen.handle_audience_changes(
            conn,
            business_id=business_id,
            changes=[(c.profile_id, audience, c.change == "entered") for c in changes],
            now=changes[0].at,
        )

    return tell


def channels(settings: Settings, email: Channel | None = None) -> Mapping[str, Channel]:
    """The channels configured in settings (a provider without credentials is absent,
    and its messages wait in the outbox until it is configured)."""
    out: dict[str, Channel] = {}
    if email is not None:
        out["email"] = email
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.sms_sender:
        out["sms"] = TwilioSms(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            sender=settings.sms_sender,
            base_url=settings.twilio_base_url,
        )
    if settings.whatsapp_phone_number_id and settings.whatsapp_access_token:
        out["whatsapp"] = WhatsAppCloud(
            phone_number_id=settings.whatsapp_phone_number_id,
            access_token=settings.whatsapp_access_token,
            base_url=settings.whatsapp_base_url,
        )
    if settings.webhook_secret:
        out["webhook"] = Webhook(
            secret=settings.webhook_secret,
            client=outbound.client(settings.outbound_policy(), timeout=10),
        )
    if settings.vapid_private_key and settings.vapid_subject:
        out["push"] = WebPush(
            vapid_private_key=settings.vapid_private_key,
            subject=settings.vapid_subject,
            outbound=settings.outbound_policy(),
        )
    return out


@dataclass
class JourneyEmail:
    """Journey email through the email context: tracked, with one-click unsubscribe, and
    kept with the business's other messages (so opens, clicks and unsubscribes count)."""

    store: Store
    mailer: Mailer
    sender: str
    name: str = "email"

    def send(self, message: Outgoing) -> Delivery:
        outcome = asyncio.run(
            send_rendered(
                self.store,
                business_id=message.business_id,
                kind="journey",
                message_id=message.id,
                to=str(message.to),
                rendered=RenderedEmail(
                    subject=message.title, html=message.body, text=plain_text(message.body)
                ),
                from_address=self.sender,
                mailer=self.mailer,
            )
        )
        if outcome.ok:
            return Delivery("sent", provider_id=message.id)
        return Delivery("failed", detail=outcome.error or "not sent")


def plain_text(html: str) -> str:
    """The text part of an HTML message: tags dropped, entities decoded, blank runs closed."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</h[1-6]>|</li>", "\n", text)
    text = unescape(re.sub(r"<[^>]+>", "", text))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def email_channel(settings: Settings, store: Store) -> Channel:
    return JourneyEmail(
        store=store, mailer=Mailer.from_settings(settings), sender=settings.mail_from
    )


def start(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the journey loop on a thread of this process with the configured channels
    (`accord serve` and `accord worker` both start one beside inbox processing)."""
    store = open_store(
        settings.resolved_database_url(), sqlite_synchronous=settings.sqlite_synchronous
    )

    def loop() -> None:
        try:
            run_journeys(
                store,
                Runner(environment()),
                channels(settings, email=email_channel(settings, store)),
                stop=stop,
                poll=settings.journey_poll_seconds,
            )
        finally:
            store.dispose()

    thread = threading.Thread(target=loop, name="journeys", daemon=True)
    thread.start()
    return thread
