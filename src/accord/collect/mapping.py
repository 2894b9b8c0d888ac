"""Column mappings: any CSV row to an identify or track call, or to the problems that stop it.

A `Mapping` says which column holds each identifier, trait and property, the event name
and the time (with its format); for point-of-sale receipts the store, receipt, loyalty
card, items, amount and currency; for CRM files the opt-in column that becomes a consent
decision. `map_rows` is pure: numbered rows in, `Mapped` results out (an event ready for
collection with a messageId derived from the row, or the row's field and reason).
"""

from __future__ import annotations

import hashlib
import math
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accord.collect.importer import coerce_cell
from accord.core.clock import iso
from accord.core.errors import FieldProblem, InvalidInput

Call = Literal["identify", "track"]
ORDER_COMPLETED = "Order Completed"
# How a time is written: ISO 8601, Unix seconds or milliseconds, or a strptime pattern.
NAMED_TIME_FORMATS = ("iso", "unix", "unix_ms")
YES = frozenset(
    {"yes", "y", "true", "1", "x", "on", "opted in", "opt-in", "opt in", "subscribed", "granted"}
)
NO = frozenset(
    {"no", "n", "false", "0", "off", "opted out", "opt-out", "opt out", "unsubscribed", "refused"}
)
ITEM_FIELDS = ("product_id", "sku", "name", "category", "brand", "price", "quantity")
PURPOSE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")
# Reserved: identify traits and track properties these calls set from their own columns.
IDENTIFIER_TRAITS = ("email", "phone")


class Receipt(BaseModel):
    """Point-of-sale receipts: one "Order Completed" per receipt. Items come from a JSON
    column, or from `item_columns` on repeated rows grouped by the receipt id."""

    model_config = ConfigDict(extra="forbid")

    receipt_id: str = Field(min_length=1, description="column of the receipt number")
    store_id: str | None = None
    loyalty_card: str | None = None
    items: str | None = Field(default=None, description="column holding a JSON list of items")
    item_columns: dict[str, str] = Field(
        default_factory=dict, description="item field (sku, name, price, quantity...) → column"
    )
    amount: str | None = None
    currency: str | None = None
    default_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class ConsentColumn(BaseModel):
    """A CRM opt-in column: each filled cell becomes a consent decision in the ledger,
    dated and sourced as the file states."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1)
    purposes: list[str] = Field(default_factory=lambda: ["marketing"], min_length=1)
    date: str = Field(min_length=1, description="column of the date the person decided")
    date_format: str = "iso"
    source: str | None = Field(default=None, description="column saying where they decided")
    source_text: str = Field(default="CRM file", max_length=200)
    property: str = Field(default="imports", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Mapping(BaseModel):
    """How the columns of a CSV file become one identify or track call per row."""

    model_config = ConfigDict(extra="forbid")

    call: Call = "track"
    event: str | None = Field(default=None, max_length=200)
    event_column: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    phone: str | None = None
    traits: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    timestamp: str | None = None
    timestamp_format: str = "iso"
    timezone: str = "UTC"
    message_id: str | None = Field(
        default=None, description="column of an id unique per event (an order id)"
    )
    receipt: Receipt | None = None
    consent: ConsentColumn | None = None


def parse_mapping(data: Any) -> Mapping:
    """A mapping from JSON-like data, or `InvalidInput` naming each bad field."""
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldProblem(".".join(str(p) for p in e["loc"]) or "mapping", e["msg"])
                for e in exc.errors()
            ]
        ) from None
    problems = mapping_problems(mapping)
    if problems:
        raise InvalidInput(problems)
    return mapping


def _time_format_problem(fmt: str) -> str | None:
    if fmt in NAMED_TIME_FORMATS:
        return None
    if "%" not in fmt:
        return "use iso, unix, unix_ms or a pattern such as %d/%m/%Y %H:%M"
    sample = datetime(2001, 2, 3, 4, 5, 6)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        return f"is not a usable pattern: {exc}"
    return None


def mapping_problems(mapping: Mapping) -> list[FieldProblem]:
    """What makes a well-typed mapping unusable, field by field."""
    problems: list[FieldProblem] = []
    if mapping.call == "track":
        if bool(mapping.event) == bool(mapping.event_column):
            problems.append(
                FieldProblem("event", "give the event name, or the column that holds it (one)")
            )
    else:
        for name in ("event", "event_column", "receipt"):
            if getattr(mapping, name):
                problems.append(FieldProblem(name, "only a track call has it"))
        if mapping.properties:
            problems.append(FieldProblem("properties", "only a track call has properties"))
    identifiers = (mapping.user_id, mapping.anonymous_id, mapping.email, mapping.phone)
    if not any(identifiers) and mapping.receipt is None:
        problems.append(
            FieldProblem("user_id", "map at least one of userId, anonymousId, email or phone")
        )
    for section, names in (("traits", mapping.traits), ("properties", mapping.properties)):
        for name, column in names.items():
            if not NAME.match(name) or (section == "traits" and name in IDENTIFIER_TRAITS):
                problems.append(
                    FieldProblem(f"{section}.{name}", "use letters, digits and _ (not email/phone)")
                )
            if not column:
                problems.append(FieldProblem(f"{section}.{name}", "name its column"))
    found = _time_format_problem(mapping.timestamp_format)
    if found:
        problems.append(FieldProblem("timestamp_format", found))
    try:
        zoneinfo.ZoneInfo(mapping.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(FieldProblem("timezone", "is not a time zone such as UTC or Europe/Rome"))
    receipt = mapping.receipt
    if receipt is not None:
        if receipt.items and receipt.item_columns:
            problems.append(
                FieldProblem("receipt.items", "use a JSON items column or item columns, not both")
            )
        for name in receipt.item_columns:
            if name not in ITEM_FIELDS:
                problems.append(
                    FieldProblem(f"receipt.item_columns.{name}", f"use {', '.join(ITEM_FIELDS)}")
                )
    consent = mapping.consent
    if consent is not None:
        for purpose in consent.purposes:
            if not PURPOSE_KEY.match(purpose):
                problems.append(FieldProblem("consent.purposes", f"{purpose!r} is no purpose key"))
        found = _time_format_problem(consent.date_format)
        if found:
            problems.append(FieldProblem("consent.date_format", found))
    return problems


def columns_of(mapping: Mapping) -> list[tuple[str, str]]:
    """Every (field, column) the mapping reads."""
    out: list[tuple[str, str]] = []
    for name in ("event_column", "user_id", "anonymous_id", "email", "phone", "timestamp"):
        value = getattr(mapping, name)
        if value:
            out.append((name, value))
    if mapping.message_id:
        out.append(("message_id", mapping.message_id))
    out += [(f"traits.{k}", c) for k, c in mapping.traits.items()]
    out += [(f"properties.{k}", c) for k, c in mapping.properties.items()]
    if mapping.receipt is not None:
        r = mapping.receipt
        for name in ("receipt_id", "store_id", "loyalty_card", "items", "amount", "currency"):
            value = getattr(r, name)
            if value:
                out.append((f"receipt.{name}", value))
        out += [(f"receipt.item_columns.{k}", c) for k, c in r.item_columns.items()]
    if mapping.consent is not None:
        c = mapping.consent
        out += [("consent.column", c.column), ("consent.date", c.date)]
        if c.source:
            out.append(("consent.source", c.source))
    return out


def check_columns(mapping: Mapping, header: Iterable[str]) -> None:
    """Refuse (`InvalidInput`, naming the mapping's field) columns the file does not have."""
    present = set(header)
    problems = [
        FieldProblem(name, f"the file has no column {column!r}")
        for name, column in columns_of(mapping)
        if column not in present
    ]
    if problems:
        raise InvalidInput(problems)


# --- Presets ---------------------------------------------------------------------------

PRESETS: dict[str, Mapping] = {
    "crm_contacts": Mapping(
        call="identify",
        user_id="contact_id",
        email="email",
        phone="phone",
        traits={
            "first_name": "first_name",
            "last_name": "last_name",
            "company": "company",
            "city": "city",
            "country": "country",
        },
        timestamp="updated_at",
        consent=ConsentColumn(
            column="email_opt_in",
            date="opt_in_date",
            source="opt_in_source",
            purposes=["marketing"],
        ),
    ),
    "ecommerce_orders": Mapping(
        call="track",
        event=ORDER_COMPLETED,
        user_id="customer_id",
        email="email",
        message_id="order_id",
        properties={
            "order_id": "order_id",
            "total": "total",
            "revenue": "revenue",
            "shipping": "shipping",
            "tax": "tax",
            "discount": "discount",
            "coupon": "coupon",
            "currency": "currency",
            "products": "products",
        },
        timestamp="created_at",
    ),
    "pos_receipts": Mapping(
        call="track",
        event=ORDER_COMPLETED,
        timestamp="time",
        receipt=Receipt(
            receipt_id="receipt_id",
            store_id="store_id",
            loyalty_card="loyalty_card",
            item_columns={
                "sku": "sku",
                "name": "product_name",
                "quantity": "quantity",
                "price": "unit_price",
            },
            amount="total",
            currency="currency",
        ),
    ),
}
PRESET_LABELS = {
    "crm_contacts": "CRM contacts (identify, with the email opt-in as consent)",
    "ecommerce_orders": 'E-commerce orders (track "Order Completed")',
    "pos_receipts": 'Point-of-sale receipts (track "Order Completed", one per receipt)',
}
# Columns a preset cannot do without; the others are left out when the file lacks them.
_PRESET_NEEDS = {"event_column", "receipt.receipt_id", "message_id"}


def _key(column: str) -> str:
    return re.sub(r"[^a-z0-9]", "", column.lower())


def fit_preset(name: str, header: Iterable[str]) -> Mapping:
    """A preset matched to a file: its columns found whatever their case and spacing
    ("First Name" for first_name), optional ones the file lacks left out."""
    preset = PRESETS.get(name)
    if preset is None:
        raise InvalidInput([FieldProblem("preset", f"use one of {', '.join(PRESETS)}")])
    by_key = {_key(c): c for c in header}

    def find(column: str | None) -> str | None:
        return None if column is None else by_key.get(_key(column))

    data = preset.model_dump()
    for name_ in ("event_column", "user_id", "anonymous_id", "email", "phone", "timestamp"):
        data[name_] = find(data[name_])
    data["message_id"] = find(preset.message_id) or preset.message_id
    for section in ("traits", "properties"):
        data[section] = {k: f for k, c in data[section].items() if (f := find(c)) is not None}
    if preset.receipt is not None:
        receipt = data["receipt"]
        receipt["receipt_id"] = find(preset.receipt.receipt_id) or preset.receipt.receipt_id
        for name_ in ("store_id", "loyalty_card", "amount", "currency"):
            receipt[name_] = find(receipt[name_])
        columns = {k: f for k, c in receipt["item_columns"].items() if (f := find(c)) is not None}
        receipt["item_columns"] = columns
        if not columns and find("items"):
            receipt["items"] = find("items")
    if preset.consent is not None:
        consent = data["consent"]
        column, date = find(consent["column"]), find(consent["date"])
        if column is None or date is None:
            data["consent"] = None
        else:
            consent.update(column=column, date=date, source=find(consent["source"]))
    return Mapping.model_validate(data)


# --- Rows to events --------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRow:
    """A decision a file states: for the ledger, marked as imported."""

    purposes: dict[str, bool]
    recorded_at: datetime
    stated_source: str
    property: str
    user_id: str | None
    anonymous_id: str | None
    key: str


@dataclass
class Mapped:
    """One event from one row (or the rows of one receipt), or why it cannot be made."""

    line: int
    event: dict[str, Any] | None
    problems: list[FieldProblem] = field(default_factory=list)
    consent: ConsentRow | None = None
    lines: tuple[int, ...] = ()


def _cell(record: dict[str, str], column: str | None) -> str:
    if column is None:
        return ""
    value = record.get(column)
    return value.strip() if isinstance(value, str) else ""


def parse_time(text: str, fmt: str, zone: tzinfo) -> datetime:
    """A time written in `fmt` (iso, unix, unix_ms or a strptime pattern); a time without
    offset is read in `zone`. Raises ValueError saying what was expected."""
    if fmt in ("unix", "unix_ms"):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a Unix time") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a Unix time")
        try:
            return datetime.fromtimestamp(number / (1000 if fmt == "unix_ms" else 1), UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{text!r} is out of range") from None
    try:
        if fmt == "iso":
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        else:
            parsed = datetime.strptime(text, fmt)
    except ValueError:
        wanted = "an ISO 8601 time" if fmt == "iso" else fmt
        raise ValueError(f"{text!r} is not {wanted}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def parse_amount(text: str) -> float:
    """12.50, 12,50, 1,234.50 and 1.234,50 as numbers; anything else is a ValueError."""
    value = text.replace(" ", "").replace("\u00a0", "")
    if "," in value and "." in value:
        if value.rfind(".") > value.rfind(","):
            value = value.replace(",", "")
        else:
            value = value.replace(".", "").replace(",", ".")
    elif "," in value:
        value = value.replace(",", ".")
    if not re.fullmatch(r"-?\d+(\.\d+)?", value):
        raise ValueError(f"{text!r} is not an amount")
    return float(value)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _receipt_key(record: dict[str, str], receipt: Receipt) -> str:
    store = _cell(record, receipt.store_id)
    number = _cell(record, receipt.receipt_id)
    return f"{store}/{number}" if store else number


def _item(record: dict[str, str], columns: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, column in columns.items():
        text = _cell(record, column)
        if not text:
            continue
        if name == "price":
            item[name] = parse_amount(text)
        elif name == "quantity":
            number = parse_amount(text)
            if not number.is_integer():
                raise ValueError(f"quantity {text!r} is not a whole number")
            item[name] = int(number)
        else:
            item[name] = text
    return item


def _receipt_properties(
    rows: list[tuple[int, dict[str, str]]], receipt: Receipt, problems: list[FieldProblem]
) -> dict[str, Any]:
    record = rows[0][1]
    number = _cell(record, receipt.receipt_id)
    store = _cell(record, receipt.store_id)
    props: dict[str, Any] = {
        "order_id": f"{store}-{number}" if store else number,
        "receipt_id": number,
    }
    if store:
        props["store_id"] = store
    card = _cell(record, receipt.loyalty_card)
    if card:
        props["loyalty_card"] = card
    products: list[Any] = []
    if receipt.items:
        text = _cell(record, receipt.items)
        if text:
            try:
                products = orjson.loads(text)
            except orjson.JSONDecodeError:
                products = None  # type: ignore[assignment]
            if not isinstance(products, list) or not all(isinstance(p, dict) for p in products):
                problems.append(FieldProblem("receipt.items", "is not a JSON list of items"))
                products = []
    for line, row in rows:
        if receipt.item_columns:
            try:
                item = _item(row, receipt.item_columns)
            except ValueError as exc:
                problems.append(FieldProblem("receipt.item_columns", f"row {line}: {exc}"))
                continue
            if item:
                products.append(item)
    if products:
        props["products"] = products
    amount = _cell(record, receipt.amount)
    if amount:
        try:
            props["total"] = parse_amount(amount)
        except ValueError as exc:
            problems.append(FieldProblem("receipt.amount", str(exc)))
    elif receipt.amount is None and products:
        priced = [p for p in products if isinstance(p.get("price"), int | float)]
        if priced and len(priced) == len(products):
            props["total"] = round(sum(p["price"] * p.get("quantity", 1) for p in priced), 2)
    currency = _cell(record, receipt.currency).upper() or receipt.default_currency
    if currency:
        if re.fullmatch(r"[A-Z]{3}", currency):
            props["currency"] = currency
        else:
            problems.append(FieldProblem("receipt.currency", f"{currency!r} is no ISO 4217 code"))
    return props


def _anonymous_seed(
    email: str, phone: str, props: dict[str, Any], receipt_key: str | None
) -> tuple[str, str] | None:
    if email:
        return "email", email.lower()
    if phone:
        return "phone", re.sub(r"[^0-9+]", "", phone)
    if props.get("loyalty_card"):
        return "loyalty_card", str(props["loyalty_card"])
    if receipt_key:
        return "receipt", receipt_key
    return None


def _consent(
    record: dict[str, str], mapping: Mapping, event: dict[str, Any], problems: list[FieldProblem]
) -> ConsentRow | None:
    spec = mapping.consent
    if spec is None:
        return None
    answer = _cell(record, spec.column).lower()
    if not answer:
        return None  # the file states no decision for this person
    if answer in YES:
        granted = True
    elif answer in NO:
        granted = False
    else:
        problems.append(
            FieldProblem("consent.column", f"{answer!r} is neither yes nor no (yes, no, 1, 0…)")
        )
        return None
    date = _cell(record, spec.date)
    if not date:
        problems.append(FieldProblem("consent.date", "is empty: the ledger needs the date"))
        return None
    try:
        when = parse_time(date, spec.date_format, zoneinfo.ZoneInfo(mapping.timezone))
    except ValueError as exc:
        problems.append(FieldProblem("consent.date", str(exc)))
        return None
    stated = _cell(record, spec.source) or spec.source_text
    purposes = dict.fromkeys(spec.purposes, granted)
    user_id, anonymous_id = event.get("userId"), event.get("anonymousId")
    key = _digest(
        "consent",
        str(user_id or ""),
        str(anonymous_id or ""),
        orjson.dumps(purposes, option=orjson.OPT_SORT_KEYS).decode(),
        iso(when),
        stated,
    )[:40]
    return ConsentRow(
        purposes=purposes,
        recorded_at=when,
        stated_source=stated[:200],
        property=spec.property,
        user_id=user_id,
        anonymous_id=anonymous_id,
        key=key,
    )


def map_group(rows: list[tuple[int, dict[str, str]]], mapping: Mapping) -> Mapped:
    """The event of one row, or of the rows of one receipt (the first row gives the
    person, time and totals; every row gives an item)."""
    line, record = rows[0]
    problems: list[FieldProblem] = []
    user_id = _cell(record, mapping.user_id)
    anonymous_id = _cell(record, mapping.anonymous_id)
    email, phone = _cell(record, mapping.email), _cell(record, mapping.phone)
    traits: dict[str, Any] = {
        name: coerce_cell(value)
        for name, column in mapping.traits.items()
        if (value := _cell(record, column))
    }
    if email:
        traits["email"] = email
    if phone:
        traits["phone"] = phone
    event: dict[str, Any] = {"type": mapping.call}
    properties: dict[str, Any] = {}
    receipt_key: str | None = None
    if mapping.receipt is not None:
        receipt_key = _receipt_key(record, mapping.receipt)
        if not _cell(record, mapping.receipt.receipt_id):
            problems.append(FieldProblem("receipt.receipt_id", "is empty"))
        properties.update(_receipt_properties(rows, mapping.receipt, problems))
    properties.update(
        {
            name: coerce_cell(value)
            for name, column in mapping.properties.items()
            if (value := _cell(record, column))
        }
    )
    if user_id:
        event["userId"] = user_id
    if anonymous_id:
        event["anonymousId"] = anonymous_id
    if not user_id and not anonymous_id:
        seed = _anonymous_seed(email, phone, properties, receipt_key)
        if seed is None:
            problems.append(
                FieldProblem("user_id", "names nobody: userId, anonymousId, email, phone are empty")
            )
        else:
            event["anonymousId"] = f"import-{_digest(*seed)[:24]}"
    if mapping.call == "identify":
        if traits:
            event["traits"] = traits
        name = ""
    else:
        name = mapping.event or _cell(record, mapping.event_column)
        if not name:
            problems.append(FieldProblem("event_column", "is empty: the event needs a name"))
        event["event"] = name
        if properties:
            event["properties"] = properties
        if traits:
            event["context"] = {"traits": traits}
    if mapping.timestamp:
        text = _cell(record, mapping.timestamp)
        if text:
            try:
                zone = zoneinfo.ZoneInfo(mapping.timezone)
                event["timestamp"] = iso(parse_time(text, mapping.timestamp_format, zone))
            except ValueError as exc:
                problems.append(FieldProblem("timestamp", str(exc)))
    key: str | None
    if mapping.message_id:
        key = _cell(record, mapping.message_id) or None
        if key is None:
            problems.append(FieldProblem("message_id", "is empty: each event needs its own id"))
    elif receipt_key:
        key = f"receipt:{receipt_key}"
    else:
        key = None
    consent = _consent(record, mapping, event, problems)
    lines = tuple(n for n, _ in rows)
    if problems:
        return Mapped(line=line, event=None, problems=problems, lines=lines)
    if key is None:
        key = orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
    event["messageId"] = f"import-{_digest(mapping.call, name, key)[:32]}"
    return Mapped(line=line, event=event, consent=consent, lines=lines)


def map_rows(rows: Iterable[tuple[int, dict[str, str]]], mapping: Mapping) -> Iterator[Mapped]:
    """One `Mapped` per row; with receipt item columns, one per receipt (its rows grouped
    by store and receipt id wherever they are in the file, in order of first sight)."""
    receipt = mapping.receipt
    if receipt is None or not receipt.item_columns:
        for line, record in rows:
            yield map_group([(line, record)], mapping)
        return
    order: list[str | Mapped] = []
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, record in rows:
        if not _cell(record, receipt.receipt_id):
            order.append(
                Mapped(
                    line=line,
                    event=None,
                    problems=[FieldProblem("receipt.receipt_id", "is empty")],
                    lines=(line,),
                )
            )
            continue
        key = _receipt_key(record, receipt)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((line, record))
    for entry in order:
        yield entry if isinstance(entry, Mapped) else map_group(groups[entry], mapping)
