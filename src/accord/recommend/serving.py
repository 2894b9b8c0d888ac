"""Answers from the precomputed tables: who is asking, may we personalise, what to show.

Personalisation needs the person's `preferences` purpose (Consent Mode's
personalization_storage), read from the ledger at every request, so a withdrawal
counts at once. Without it the answer is the popular products only, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select

from accord.consent.service import granted_purposes
from accord.core.errors import FieldProblem, InvalidInput
from accord.profiles.service import owner_with_identifiers, owners
from accord.recommend.catalogue import Product, by_ids
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
# Products looked up beyond the list's length, so that a few out of stock among them
# cost no second catalogue read.
LOOK_AHEAD = 10


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
    profile_id, _ = owner_with_identifiers(
        conn, business_id=business_id, keys=_keys(user_id, anonymous_id)
    )
    return profile_id


def _keys(user_id: str | None, anonymous_id: str | None) -> list[tuple[str, str]]:
    # The userId's profile first, as the worker links events.
    return [(k, v) for k, v in (("user_id", user_id), ("anonymous_id", anonymous_id)) if v]


def may_personalise(
    conn: Connection,
    *,
    business_id: str,
    identifiers: list[tuple[str, str]],
) -> bool:
    """Whether the person granted `preferences`, over every identifier they are known by
    (the ledger read collection uses, so a withdrawal counts at once)."""
    users = sorted({v for k, v in identifiers if k == "user_id"})
    anonymous = sorted({v for k, v in identifiers if k == "anonymous_id"})
    if not users and not anonymous:
        return False
    granted = granted_purposes(
        conn, business_id=business_id, user_ids=users, anonymous_ids=anonymous
    )
    return granted.get(PURPOSE) is True


# Built once, like the ledger read: on a request path building a statement costs about as
# much as running it. Rows come in key order so that sums of floats, and so ties, are the
# same on every store.
_t = recommendation_popular.c
_POPULAR = (
    select(_t.product_id, _t.score)
    .where(_t.business_id == bindparam("business_id"))
    .order_by(_t.score.desc(), _t.product_id)
    .limit(POPULAR_READ)
)
_h = recommendation_histories.c
_HISTORY = (
    select(_h.product_id, _h.strength, _h.bought)
    .where(_h.business_id == bindparam("business_id"), _h.profile_id == bindparam("profile_id"))
    .order_by(_h.product_id)
)
_n = recommendation_neighbours.c
_NEIGHBOURS = (
    select(_n.product_id, _n.related_id, _n.score)
    .where(
        _n.business_id == bindparam("business_id"),
        _n.product_id.in_(bindparam("products", expanding=True)),
    )
    .order_by(_n.product_id, _n.related_id)
)


def _popular(conn: Connection, business_id: str) -> list[tuple[str, float]]:
    rows = conn.execute(_POPULAR, {"business_id": business_id}).all()
    return [(product, float(score)) for product, score in rows]


def _neighbours(
    conn: Connection, business_id: str, products: list[str]
) -> dict[str, list[tuple[str, float]]]:
    found: dict[str, list[tuple[str, float]]] = {}
    if not products:
        return found
    # All rows at once: fetched one by one they cost more than the query.
    for product, related, score in conn.execute(
        _NEIGHBOURS, {"business_id": business_id, "products": products}
    ).all():
        found.setdefault(product, []).append((related, float(score)))
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
    profile_id, identifiers = owner_with_identifiers(
        conn, business_id=business_id, keys=_keys(user_id, anonymous_id), profile_id=profile_id
    )
    personal = may_personalise(
        conn, business_id=business_id, identifiers=[*_keys(user_id, anonymous_id), *identifiers]
    )
    popular = _popular(conn, business_id)
    if not popular:
        notes.append("no training has run yet: nothing to recommend")
    if not personal:
        notes.append(
            f"no {PURPOSE} consent (personalization_storage): popular products only"
            + ("; the product context was not used" if context else "")
        )
        items, details = _in_stock(
            conn,
            business_id,
            lambda excluded, window: rank(
                history={}, neighbours={}, popular=popular, exclude=excluded, limit=window
            ),
            set(),
            limit,
        )
        return Answer(items, False, notes, profile_id, details if with_details else {})
    history: dict[str, float] = {}
    excluded: set[str] = set()
    if profile_id is not None:
        for product, strength, bought in conn.execute(
            _HISTORY, {"business_id": business_id, "profile_id": profile_id}
        ).all():
            history[product] = float(strength)
            if bought:
                excluded.add(product)
    if not history:
        notes.append("no product history for this person yet: popular products fill the list")
    neighbours = _neighbours(conn, business_id, sorted({*history, *([context] if context else [])}))
    if context is not None and context not in neighbours:
        notes.append(f"unknown product context {context!r}: ignored")
        context = None
    items, details = _in_stock(
        conn,
        business_id,
        lambda excluded, window: rank(
            history=history,
            neighbours=neighbours,
            popular=popular,
            exclude=excluded,
            context=context,
            limit=window,
        ),
        excluded,
        limit,
    )
    return Answer(items, True, notes, profile_id, details if with_details else {})


def _in_stock(
    conn: Connection,
    business_id: str,
    ranked: Callable[[set[str], int], list[Ranked]],
    excluded: set[str],
    limit: int,
) -> tuple[list[Ranked], dict[str, Product]]:
    """The list of `limit` products `ranked` makes when every out-of-stock product is
    excluded, and the catalogue entries of its products, reading only listed products.

    The ranking is greedy: excluding a product the list does not hold changes nothing,
    and a longer list starts with the shorter one. So it is enough to look up the listed
    products, a few more ahead, and rank again while one of them is out of stock: usually
    one query of `limit + LOOK_AHEAD` ids instead of the whole catalogue's stock."""
    known: dict[str, Product | None] = {}
    window = limit + LOOK_AHEAD
    items = ranked(excluded, window)
    while True:
        head = items[:limit]
        if all(i.product_id in known for i in head):
            details = {i.product_id: known[i.product_id] for i in head}
            return head, {k: v for k, v in details.items() if v is not None}
        unknown = [i.product_id for i in items if i.product_id not in known]
        found = by_ids(conn, business_id=business_id, ids=unknown)
        gone = set()
        for product_id in unknown:
            product = known[product_id] = found.get(product_id)
            if product is not None and not product.in_stock:
                gone.add(product_id)
        if any(i.product_id in gone for i in head):
            excluded |= gone
            window *= 2
            items = ranked(excluded, window)


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
