"""The product catalogue: products sent one by one or imported from CSV, and read back."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select

from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.core.links import link_problem
from accord.recommend.models import products

# Limits (docs/recommendations.md).
MAX_IMPORT_ROWS = 100_000
MAX_ID = 255
MAX_NAME = 500
MAX_URL = 2000
MAX_CATEGORY = 255
COLUMNS = ("product_id", "name", "url", "image", "price", "currency", "category", "in_stock")
_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n"})


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    url: str | None = None
    image: str | None = None
    price: float | None = None
    currency: str | None = None
    category: str | None = None
    in_stock: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(raw: Any, field: str, limit: int, problems: list[FieldProblem]) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.append(FieldProblem(field, "must be text"))
        return None
    value = raw.strip()
    if len(value) > limit:
        problems.append(FieldProblem(field, f"at most {limit} characters"))
        return None
    return value or None


def _price(raw: Any, problems: list[FieldProblem], field: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        problems.append(FieldProblem(field, "must be a number of 0 or more"))
        return None
    return value


def _stock(raw: Any, problems: list[FieldProblem], field: str) -> bool:
    if raw is None or raw == "":
        return True
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    problems.append(FieldProblem(field, "must be true or false"))
    return True


def parse_product(data: Mapping[str, Any], *, prefix: str = "") -> Product:
    """One product from JSON or a CSV row; every problem named with its field."""
    problems: list[FieldProblem] = []
    unknown = sorted(set(data) - set(COLUMNS))
    for key in unknown:
        problems.append(FieldProblem(f"{prefix}{key}", f"unknown field; use {', '.join(COLUMNS)}"))
    product_id = _text(data.get("product_id"), f"{prefix}product_id", MAX_ID, problems)
    name = _text(data.get("name"), f"{prefix}name", MAX_NAME, problems)
    if product_id is None and not any(p.field == f"{prefix}product_id" for p in problems):
        problems.append(FieldProblem(f"{prefix}product_id", "required"))
    if name is None and not any(p.field == f"{prefix}name" for p in problems):
        problems.append(FieldProblem(f"{prefix}name", "required"))
    links = {}
    for key in ("url", "image"):
        value = _text(data.get(key), f"{prefix}{key}", MAX_URL, problems)
        reason = link_problem(value)
        if reason is not None:
            problems.append(FieldProblem(f"{prefix}{key}", reason))
        links[key] = value
    currency = _text(data.get("currency"), f"{prefix}currency", 3, problems)
    if currency is not None and not (len(currency) == 3 and currency.isalpha()):
        problems.append(FieldProblem(f"{prefix}currency", "an ISO 4217 code such as EUR"))
    category = _text(data.get("category"), f"{prefix}category", MAX_CATEGORY, problems)
    price = _price(data.get("price"), problems, f"{prefix}price")
    in_stock = _stock(data.get("in_stock"), problems, f"{prefix}in_stock")
    if problems:
        raise InvalidInput(problems)
    assert product_id is not None and name is not None
    return Product(
        product_id=product_id,
        name=name,
        url=links["url"],
        image=links["image"],
        price=price,
        currency=currency.upper() if currency else None,
        category=category,
        in_stock=in_stock,
    )


def parse_csv(text: str) -> list[Product]:
    """Products from CSV text with a header row (`COLUMNS`; product_id and name required).

    Every bad cell is reported as `row N.column`, rows counted from 1 after the header.
    """
    try:
        return _parse_csv(text)
    except csv.Error as exc:
        raise InvalidInput([FieldProblem("file", f"not readable as CSV: {exc}")]) from None


def _parse_csv(text: str) -> list[Product]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    problems: list[FieldProblem] = []
    missing = [c for c in ("product_id", "name") if c not in header]
    if missing:
        raise InvalidInput([FieldProblem("header", f"missing column {c}") for c in missing])
    found: list[Product] = []
    for number, row in enumerate(reader, start=1):
        if number > MAX_IMPORT_ROWS:
            raise InvalidInput([FieldProblem("file", f"at most {MAX_IMPORT_ROWS} rows")])
        if None in row:
            problems.append(FieldProblem(f"row {number}", "more cells than header columns"))
            continue
        try:
            found.append(parse_product(row, prefix=f"row {number}."))
        except InvalidInput as exc:
            problems += exc.problems
        if len(problems) >= 50:
            break
    if problems:
        raise InvalidInput(problems)
    return found


def upsert(conn: Connection, *, business_id: str, items: Sequence[Product]) -> int:
    """Save products (a later row of the same id wins); the number saved."""
    latest = {item.product_id: item for item in items}
    if not latest:
        return 0
    now = utcnow()
    ids = sorted(latest)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(
            delete(products).where(
                products.c.business_id == business_id, products.c.product_id.in_(chunk)
            )
        )
    rows = [{"business_id": business_id, "updated_at": now, **latest[i].as_dict()} for i in ids]
    conn.execute(insert(products), rows)
    return len(rows)


def _product(row: Any) -> Product:
    return Product(**{c: getattr(row, c) for c in COLUMNS})


# Built once: serving reads products by id on every request.
_BY_IDS = select(*(products.c[c] for c in COLUMNS)).where(
    products.c.business_id == bindparam("business_id"),
    products.c.product_id.in_(bindparam("ids", expanding=True)),
)


def by_ids(conn: Connection, *, business_id: str, ids: Iterable[str]) -> dict[str, Product]:
    wanted = sorted(set(ids))
    found: dict[str, Product] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            _BY_IDS, {"business_id": business_id, "ids": wanted[start : start + 500]}
        )
        # The columns are selected in the order of Product's fields.
        found.update({row[0]: Product(*row) for row in rows.all()})
    return found


def out_of_stock(conn: Connection, *, business_id: str) -> set[str]:
    return set(
        conn.execute(
            select(products.c.product_id).where(
                products.c.business_id == business_id, products.c.in_stock.is_(False)
            )
        ).scalars()
    )


def listing(
    conn: Connection, *, business_id: str, limit: int = 200, offset: int = 0
) -> tuple[int, list[Product], datetime | None]:
    """A page of the catalogue by product id, the count and the last update."""
    where = products.c.business_id == business_id
    total, updated = conn.execute(
        select(func.count(), func.max(products.c.updated_at)).where(where)
    ).one()
    rows = conn.execute(
        select(products).where(where).order_by(products.c.product_id).limit(limit).offset(offset)
    )
    return int(total), [_product(r) for r in rows], updated
