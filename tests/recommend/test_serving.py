"""Serving from the precomputed tables (SQLite and PostgreSQL): on a fixed data set with
out-of-stock products, products missing from the catalogue, merged identifiers, refused
and withdrawn consent, every answer equals the one computed plainly from whole tables
(as serving first did), and a call costs a fixed, small number of queries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from random import Random
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert, select, update

from accord.accounts.models import Bootstrap
from accord.consent import config
from accord.consent.models import PropertyIn
from accord.consent.service import granted_purposes, record_consent
from accord.profiles.models import profile_identifiers, profiles
from accord.recommend import catalogue
from accord.recommend.models import (
    products,
    recommendation_histories,
    recommendation_neighbours,
    recommendation_popular,
)
from accord.recommend.ranking import rank
from accord.recommend.serving import PURPOSE, Answer, recommend
from accord.store.db import Store

AT = datetime(2026, 11, 1, tzinfo=UTC)
PRODUCTS = [f"p-{i:02d}" for i in range(30)]
OUT_OF_STOCK = {"p-01", "p-04", "p-09", "p-15", "p-22"}
PEOPLE = 12


def _fill(store: Store, business_id: str) -> None:
    rng = Random(11)
    with store.write() as conn:
        catalogue.upsert(
            conn,
            business_id=business_id,
            items=[
                catalogue.Product(
                    product_id=p,
                    name=f"Product {p}",
                    url=f"https://shop.example/{p}" if i % 3 else None,
                    price=float(i) if i % 2 else None,
                    in_stock=p not in OUT_OF_STOCK,
                )
                for i, p in enumerate(PRODUCTS[:26])  # four products not in the catalogue
            ],
        )
        conn.execute(
            insert(recommendation_popular),
            [
                {"business_id": business_id, "product_id": p, "score": rng.choice([1.0, 2.5, 4.0])}
                for p in rng.sample(PRODUCTS, 20)
            ],
        )
        neighbours = []
        for product in PRODUCTS[:25]:
            others = [p for p in PRODUCTS if p != product]
            for related in rng.sample(others, rng.randint(0, 10)):
                score = rng.choice([0.0, 0.25, 0.5, round(rng.random(), 3)])
                neighbours.append(
                    {
                        "business_id": business_id,
                        "product_id": product,
                        "related_id": related,
                        "score": score,
                    }
                )
        conn.execute(insert(recommendation_neighbours), neighbours)
        for person in range(PEOPLE):
            profile_id = f"prof-{person}"
            conn.execute(
                insert(profiles).values(
                    id=profile_id,
                    business_id=business_id,
                    traits="{}",
                    trait_times="{}",
                    first_seen=AT,
                    last_seen=AT,
                    created_at=AT,
                    updated_at=AT,
                )
            )
            keys = [("anonymous_id", f"a-{person}")]
            if person % 3 != 2:
                keys.append(("user_id", f"u-{person}"))
            if person % 4 == 0:
                keys.append(("anonymous_id", f"b-{person}"))
            conn.execute(
                insert(profile_identifiers),
                [
                    {
                        "business_id": business_id,
                        "kind": kind,
                        "value": value,
                        "profile_id": profile_id,
                        "first_seen": AT,
                    }
                    for kind, value in keys
                ],
            )
            history = rng.sample(PRODUCTS, rng.randint(1, 8))
            if person < 10 and person % 7:  # persons 0 and 7 and the last two: none
                conn.execute(
                    insert(recommendation_histories),
                    [
                        {
                            "business_id": business_id,
                            "profile_id": profile_id,
                            "product_id": p,
                            "strength": round(rng.uniform(0.1, 3.0), 2),
                            "bought": rng.random() < 0.3,
                            "last_seen_at": AT,
                        }
                        for p in history
                    ],
                )
        config.create_property(
            conn, business_id=business_id, spec=PropertyIn(key="web", name="Web")
        )
        for person in range(PEOPLE):

            def choice(granted: bool, **subject: str) -> None:
                record_consent(
                    conn,
                    business_id=business_id,
                    property_key="web",
                    purposes={PURPOSE: granted},
                    source="api",
                    **subject,
                )

            if person % 5 == 3:
                choice(False, anonymous_id=f"a-{person}")
            elif person % 4 == 0:
                choice(True, anonymous_id=f"b-{person}")  # through its other browser
            elif person % 6 == 1:
                choice(True, anonymous_id=f"a-{person}")
                choice(False, user_id=f"u-{person}")  # withdrawn later, logged in
            else:
                choice(True, anonymous_id=f"a-{person}")


@dataclass(frozen=True)
class Tables:
    """Everything serving reads, loaded whole."""

    owner: dict[tuple[str, str], str]
    identifiers: dict[str, list[tuple[str, str]]]
    popular: list[tuple[str, float]]
    catalogue: dict[str, catalogue.Product]
    histories: dict[str, list[tuple[str, float, bool]]]
    neighbours: dict[str, list[tuple[str, float]]]


def _load(conn: Connection, business_id: str) -> Tables:
    def rows(table: Any, *order: str) -> list[Any]:
        query = select(table).where(table.c.business_id == business_id)
        return list(conn.execute(query.order_by(*(table.c[c] for c in order))))

    owner: dict[tuple[str, str], str] = {}
    identifiers: dict[str, list[tuple[str, str]]] = {}
    for r in rows(profile_identifiers, "kind", "value"):
        owner[(r.kind, r.value)] = r.profile_id
        identifiers.setdefault(r.profile_id, []).append((r.kind, r.value))
    popular = sorted(
        ((r.product_id, r.score) for r in rows(recommendation_popular, "product_id")),
        key=lambda kv: (-kv[1], kv[0]),
    )[:200]
    histories: dict[str, list[tuple[str, float, bool]]] = {}
    for r in rows(recommendation_histories, "profile_id", "product_id"):
        histories.setdefault(r.profile_id, []).append((r.product_id, r.strength, r.bought))
    neighbours: dict[str, list[tuple[str, float]]] = {}
    for r in rows(recommendation_neighbours, "product_id", "related_id"):
        neighbours.setdefault(r.product_id, []).append((r.related_id, r.score))
    found = {
        r.product_id: catalogue.Product(**{c: getattr(r, c) for c in catalogue.COLUMNS})
        for r in rows(products, "product_id")
    }
    return Tables(owner, identifiers, popular, found, histories, neighbours)


def _plainly(
    conn: Connection,
    tables: Tables,
    business_id: str,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    profile_id: str | None = None,
    context: str | None = None,
    limit: int = 10,
    with_details: bool = True,
    stock: bool = True,
) -> Answer:
    """The answer as the first serving code made it: the whole stock list excluded up front
    (or, with `stock=False`, as if everything were in stock)."""
    notes: list[str] = []
    keys = [(k, v) for k, v in (("user_id", user_id), ("anonymous_id", anonymous_id)) if v]
    if profile_id is None:
        profile_id = next((tables.owner[k] for k in keys if k in tables.owner), None)
    known = set(keys) | set(tables.identifiers.get(profile_id or "", []))
    users = sorted(v for k, v in known if k == "user_id")
    anonymous = sorted(v for k, v in known if k == "anonymous_id")
    personal = bool(known) and (
        granted_purposes(
            conn, business_id=business_id, user_ids=users, anonymous_ids=anonymous
        ).get(PURPOSE)
        is True
    )
    excluded = {p for p, product in tables.catalogue.items() if stock and not product.in_stock}
    if not tables.popular:
        notes.append("no training has run yet: nothing to recommend")
    history: dict[str, float] = {}
    neighbours: dict[str, list[tuple[str, float]]] = {}
    if not personal:
        notes.append(
            f"no {PURPOSE} consent (personalization_storage): popular products only"
            + ("; the product context was not used" if context else "")
        )
        context = None
    else:
        for product, strength, bought in tables.histories.get(profile_id or "", []):
            history[product] = strength
            if bought:
                excluded.add(product)
        if not history:
            notes.append("no product history for this person yet: popular products fill the list")
        wanted = {*history, *([context] if context else [])}
        neighbours = {p: n for p, n in tables.neighbours.items() if p in wanted}
        if context is not None and context not in neighbours:
            notes.append(f"unknown product context {context!r}: ignored")
            context = None
    items = rank(
        history=history,
        neighbours=neighbours,
        popular=tables.popular,
        exclude=excluded,
        context=context,
        limit=limit,
    )
    details = {
        i.product_id: tables.catalogue[i.product_id]
        for i in items
        if with_details and i.product_id in tables.catalogue
    }
    return Answer(items, personal, notes, profile_id, details)


def _requests() -> Iterator[dict[str, Any]]:
    people: list[dict[str, Any]] = [{}, {"user_id": "nobody"}, {"anonymous_id": "b-0"}]
    for person in range(PEOPLE):
        people += [
            {"user_id": f"u-{person}"},
            {"anonymous_id": f"a-{person}"},
            {"profile_id": f"prof-{person}"},
            # Two identifiers of different people: the userId's profile is the person's.
            {"user_id": f"u-{person}", "anonymous_id": f"a-{(person + 1) % PEOPLE}"},
        ]
    n = 0
    for who in people:
        for context in (None, "p-03", "p-01", "p-27", "nope"):
            for limit in (1, 3, 10, 100):
                n += 1
                yield who | {"context": context, "limit": limit, "with_details": n % 3 != 0}


@pytest.fixture
def served(store: Store, keys: Bootstrap) -> Bootstrap:
    _fill(store, keys.business_id)
    return keys


def test_answers_equal_the_plain_computation(store: Store, served: Bootstrap) -> None:
    business = served.business_id
    sources: set[str] = set()
    stock_mattered = 0
    with store.read() as conn:
        tables = _load(conn, business)
        for request in _requests():
            answer = recommend(conn, business_id=business, **request)
            assert answer == _plainly(conn, tables, business, **request), request
            sources |= {i.source for i in answer.items}
            stock_mattered += answer != _plainly(conn, tables, business, **request, stock=False)
    # The data set reaches every branch: all three sources, and lists that would have held
    # out-of-stock products had the stock not been read.
    assert sources == {"context", "personal", "popular"}
    assert stock_mattered > 50


@contextmanager
def _counted(conn: Connection) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(conn, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(conn, "before_cursor_execute", count)


def test_one_query_per_table(store: Store, served: Bootstrap) -> None:
    """Person with their identifiers, ledger, popular, history, neighbours, catalogue: one
    query each, though products of the list are out of stock (a few are looked up
    ahead); never the whole catalogue's stock."""
    business = served.business_id
    with store.read() as conn:
        tables = _load(conn, business)
        cases = [
            {"user_id": f"u-{person}", "context": "p-03", "limit": limit}
            for person in range(PEOPLE)
            for limit in (3, 10)
        ]
        cases = [c for c in cases if _personal(conn, business, c)]
        calm = next(c for c in cases if not _stock_matters(conn, tables, business, c))
        stocked = next(c for c in cases if _stock_matters(conn, tables, business, c))
        refused = {"anonymous_id": "a-3"}
        assert _stock_matters(conn, tables, business, refused)
        for request in (calm, stocked):
            assert _read(conn, business, request) == [*ONCE, "products"]
        assert not _personal(conn, business, refused)
        assert _read(conn, business, refused) == [*ONCE[:3], "products"]


def test_most_products_out_of_stock(store: Store, served: Bootstrap) -> None:
    """When more of the list is out of stock than is looked up ahead, the catalogue is
    read again, further ahead, and the answers still equal the plain computation."""
    business = served.business_id
    with store.write() as conn:
        conn.execute(
            update(products)
            .where(products.c.business_id == business, products.c.product_id < "p-20")
            .values(in_stock=False)
        )
    again = 0
    with store.read() as conn:
        tables = _load(conn, business)
        for request in _requests():
            answer = recommend(conn, business_id=business, **request)
            assert answer == _plainly(conn, tables, business, **request), request
            found = _read(conn, business, request)
            assert "products" in found and set(found[found.index("products") :]) == {"products"}
            again += found.count("products") > 1
    assert again > 50


ONCE = [
    "profile_identifiers",
    "consent_records",
    "recommendation_popular",
    "recommendation_histories",
    "recommendation_neighbours",
]


def _stock_matters(conn: Connection, tables: Tables, business_id: str, request: Any) -> bool:
    return _plainly(conn, tables, business_id, **request) != _plainly(
        conn, tables, business_id, **request, stock=False
    )


def _read(conn: Connection, business_id: str, request: dict[str, Any]) -> list[str]:
    """The tables a call reads, in order; the catalogue only by product id."""
    with _counted(conn) as statements:
        recommend(conn, business_id=business_id, **request)
    for statement in statements:
        assert "FROM products" not in statement or "IN (" in statement
    return [re.search(r"FROM (\w+)", s).group(1) for s in statements]  # type: ignore[union-attr]


def _personal(conn: Connection, business_id: str, request: dict[str, Any]) -> bool:
    answer = recommend(conn, business_id=business_id, **request)
    return answer.personalised and {i.source for i in answer.items} >= {"context", "personal"}
