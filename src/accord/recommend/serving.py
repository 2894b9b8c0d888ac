"""Answers from the precomputed tables: who is asking, may we personalise, what to show.

Personalisation needs the person's `preferences` purpose (Consent Mode's
personalization_storage), read from the ledger at every request, so a withdrawal
counts at once. Without it the answer is the popular products only, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from accord.consent.service import granted_purposes
from accord.core.errors import FieldProblem, InvalidInput
from accord.profiles.service import identifier_rows, owners
from accord.recommend.catalogue import by_ids, out_of_stock
from accord.recommend.models import (
    recommendation_histories,
    recommendation_neighbours,
    recommendation_popular,
)
from accord.recommend.ranking import Ranked, rank

PURPOSE = "preferences"
MAX_LIMIT = 100
POPULAR_READ = 200
CONTEXT_PREFIX = "product:"


@dataclass(frozen=True)
class Answer:
    items: list[Ranked]
    personalised: bool
    notes: list[str] = field(default_factory=list)
    profile_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        items = []
        for item in self.items:
            entry: dict[str, Any] = {
                "product_id": item.product_id,
                "score": round(item.score, 6),
                "source": item.source,
            }
            product = self.details.get(item.product_id)
            if product is not None:
                entry |= {
                    k: v
                    for k, v in product.as_dict().items()
                    if k in ("name", "url", "image", "price", "currency") and v is not None
                }
            items.append(entry)
        return {
            "items": items,
            "personalised": self.personalised,
            "basis": "personal" if self.personalised else "popular",
            "notes": self.notes,
        }


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput([FieldProblem("limit", f"must be between 1 and {MAX_LIMIT}")])
    return limit


def parse_context(context: str | None) -> str | None:
    """The product id of `product:<id>`; any other context is refused."""
    if context is None or context == "":
        return None
    if not context.startswith(CONTEXT_PREFIX) or len(context) == len(CONTEXT_PREFIX):
        raise InvalidInput([FieldProblem("context", "use product:<product id>")])
    product = context.removeprefix(CONTEXT_PREFIX)
    if len(product) > 255:
        raise InvalidInput([FieldProblem("context", "product ids have at most 255 characters")])
    return product


def find_profile(
    conn: Connection, *, business_id: str, user_id: str | None, anonymous_id: str | None
) -> str | None:
    keys = [(k, v) for k, v in (("user_id", user_id), ("anonymous_id", anonymous_id)) if v]
    found = owners(conn, business_id=business_id, keys=keys)
    for key in keys:  # the userId's profile first, as the worker links events
        if key in found:
            return found[key]
    return None


def may_personalise(
    conn: Connection,
    *,
    business_id: str,
    profile_id: str | None,
    user_ids: list[str],
    anonymous_ids: list[str],
) -> bool:
    """Whether the person granted `preferences`, over every identifier of their profile."""
    users, anonymous = set(user_ids), set(anonymous_ids)
    if profile_id is not None:
        for _, kind, value in identifier_rows(
            conn, business_id=business_id, profile_ids=[profile_id]
        ):
            if kind == "user_id":
                users.add(value)
            elif kind == "anonymous_id":
                anonymous.add(value)
    if not users and not anonymous:
        return False
    granted = granted_purposes(
        conn, business_id=business_id, user_ids=sorted(users), anonymous_ids=sorted(anonymous)
    )
    return granted.get(PURPOSE) is True


def _popular(conn: Connection, business_id: str) -> list[tuple[str, float]]:
    t = recommendation_popular.c
    rows = conn.execute(
        select(t.product_id, t.score)
        .where(t.business_id == business_id)
        .order_by(t.score.desc(), t.product_id)
        .limit(POPULAR_READ)
    )
    return [(r.product_id, float(r.score)) for r in rows]


def _neighbours(
    conn: Connection, business_id: str, products: list[str]
) -> dict[str, list[tuple[str, float]]]:
    t = recommendation_neighbours.c
    found: dict[str, list[tuple[str, float]]] = {}
    if not products:
        return found
    rows = conn.execute(
        select(t.product_id, t.related_id, t.score).where(
            t.business_id == business_id, t.product_id.in_(products)
        )
    )
    for row in rows:
        found.setdefault(row.product_id, []).append((row.related_id, float(row.score)))
    return found


def recommend(
    conn: Connection,
    *,
    business_id: str,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    profile_id: str | None = None,
    context: str | None = None,
    limit: int = 10,
    with_details: bool = True,
) -> Answer:
    """Recommendations for one person (by userId / anonymousId, or profile), optionally on
    the page of one product."""
    check_limit(limit)
    notes: list[str] = []
    if profile_id is None:
        profile_id = find_profile(
            conn, business_id=business_id, user_id=user_id, anonymous_id=anonymous_id
        )
    personal = may_personalise(
        conn,
        business_id=business_id,
        profile_id=profile_id,
        user_ids=[user_id] if user_id else [],
        anonymous_ids=[anonymous_id] if anonymous_id else [],
    )
    popular = _popular(conn, business_id)
    excluded = out_of_stock(conn, business_id=business_id)
    if not popular:
        notes.append("no training has run yet: nothing to recommend")
    if not personal:
        notes.append(
            f"no {PURPOSE} consent (personalization_storage): popular products only"
            + ("; the product context was not used" if context else "")
        )
        items = rank(history={}, neighbours={}, popular=popular, exclude=excluded, limit=limit)
        return _answer(conn, business_id, items, False, notes, profile_id, with_details)
    history: dict[str, float] = {}
    if profile_id is not None:
        t = recommendation_histories.c
        for row in conn.execute(
            select(t.product_id, t.strength, t.bought).where(
                t.business_id == business_id, t.profile_id == profile_id
            )
        ):
            history[row.product_id] = float(row.strength)
            if row.bought:
                excluded.add(row.product_id)
    if not history:
        notes.append("no product history for this person yet: popular products fill the list")
    neighbours = _neighbours(conn, business_id, sorted({*history, *([context] if context else [])}))
    if context is not None and context not in neighbours:
        notes.append(f"unknown product context {context!r}: ignored")
        context = None
    items = rank(
        history=history,
        neighbours=neighbours,
        popular=popular,
        exclude=excluded,
        context=context,
        limit=limit,
    )
    return _answer(conn, business_id, items, True, notes, profile_id, with_details)


def _answer(
    conn: Connection,
    business_id: str,
    items: list[Ranked],
    personalised: bool,
    notes: list[str],
    profile_id: str | None,
    with_details: bool,
) -> Answer:
    details = (
        by_ids(conn, business_id=business_id, ids=[i.product_id for i in items])
        if with_details and items
        else {}
    )
    return Answer(items, personalised, notes, profile_id, details)


def for_contact(
    conn: Connection, *, business_id: str, contact: Mapping[str, Any], limit: int
) -> list[dict[str, Any]]:
    """What an email template's `recommendations(contact, n)` lists: products with their
    catalogue fields, for the contact's profile (found by profile id, userId or email)."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    profile_id = contact.get("profile_id")
    if not isinstance(profile_id, str):
        keys = [
            (kind, str(contact[name]))
            for kind, name in (("user_id", "user_id"), ("user_id", "userId"), ("email", "email"))
            if contact.get(name)
        ]
        found = owners(conn, business_id=business_id, keys=keys)
        profile_id = next((found[k] for k in keys if k in found), None)
    answer = recommend(conn, business_id=business_id, profile_id=profile_id, limit=limit)
    out = []
    for item in answer.items:
        product = answer.details.get(item.product_id)
        entry = product.as_dict() if product is not None else {"product_id": item.product_id}
        out.append({**entry, "score": round(item.score, 6)})
    return out
