"""The demo's banner decisions into the consent ledger (with a banner A/B test), and its
administrator's sign-in."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from accord.accounts import membership, people
from accord.accounts import service as accounts
from accord.accounts.models import Actor
from accord.consent import analytics, config
from accord.consent import service as consent
from accord.consent.models import NoticeIn, NoticeVariantIn
from accord.core.settings import Settings
from accord.demo.seen import BannerDecision
from accord.store.db import Store

PROPERTY = "web"
ADMIN_EMAIL = "admin@demo.accord.test"
ADMIN_NAME = "Demo administrator"
_ACTOR = Actor(kind="system", label="accord demo")


def _ms(at: datetime) -> int:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def banner_test(conn: Connection, *, business_id: str) -> list[dict[str, Any]]:
    """The demo's banner A/B test, published once: the notice as it was (A) against the
    other layout (B), with the same texts. Returns the current variants."""
    prop = config.get_property(conn, business_id=business_id, key=PROPERTY)
    variants = config.current_variants(conn, property_id=prop["id"])
    if len(variants) > 1:
        return variants
    base = variants[0]
    other = "box" if base["layout"] == "bar" else "bar"
    spec = NoticeIn(
        variants=[
            NoticeVariantIn(
                variant=name,
                default_language=base["default_language"],
                texts=base["texts"],
                layout=layout,
            )
            for name, layout in (("A", base["layout"]), ("B", other))
        ]
    )
    config.publish_notice(conn, business_id=business_id, property_key=PROPERTY, spec=spec)
    return config.current_variants(conn, property_id=prop["id"])


def record_decisions(store: Store, *, business_id: str, decisions: Sequence[BannerDecision]) -> int:
    """Append each decision the ledger does not hold yet, through the function that
    `POST /v1/consent` calls, under the property's published notice; returns how many."""
    recorded = 0
    with store.write() as conn:
        variants = banner_test(conn, business_id=business_id)
        held = analytics.decisions(conn, business_id=business_id)
        done = {
            (subject, _ms(at))
            for subject, at in zip(
                held["subject"].to_pylist(), held["recorded_at"].to_pylist(), strict=True
            )
        }
        for decision in decisions:
            key = (decision.user_id or decision.anonymous_id, _ms(decision.at))
            if key in done:
                continue
            # The banner shows each visitor one variant, the same on every visit.
            notice = variants[zlib.crc32(decision.anonymous_id.encode()) % len(variants)]
            consent.record_consent(
                conn,
                business_id=business_id,
                property_key=PROPERTY,
                purposes=decision.purposes,
                source="banner",
                anonymous_id=decision.anonymous_id,
                user_id=decision.user_id,
                language="en",
                notice_id=notice["id"],
                recorded_at=decision.at,
                country=decision.country or None,
                ip=decision.ip,
                user_agent=decision.user_agent,
            )
            done.add(key)
            recorded += 1
    return recorded


def admin_sign_in(store: Store, settings: Settings, *, business_id: str) -> dict[str, str]:
    """The demo business's administrator, created if missing, with a new password each run."""
    password = people.new_password()
    with store.write() as conn:
        person = people.person_by_email(conn, email=ADMIN_EMAIL)
        if person is None:
            membership.add_person(
                conn,
                business_id=business_id,
                email=ADMIN_EMAIL,
                role="admin",
                actor=_ACTOR,
                name=ADMIN_NAME,
                password=password,
            )
        else:
            people.set_password(conn, person_id=person.id, password=password)
            if accounts.role_of(conn, business_id=business_id, person_id=person.id) is None:
                membership.add_member(
                    conn, business_id=business_id, person_id=person.id, role="admin", actor=_ACTOR
                )
    return {
        "email": ADMIN_EMAIL,
        "password": password,
        "url": f"http://{settings.host}:{settings.port}/sign-in",
    }
