"""A column mapping as the flat fields of the Imports page's form, and back."""

from __future__ import annotations

from collections.abc import Mapping as Fields
from typing import Any

from accord.collect.mapping import Mapping, parse_mapping
from accord.core.errors import FieldProblem, InvalidInput

TOP = (
    "call",
    "event",
    "event_column",
    "user_id",
    "anonymous_id",
    "email",
    "phone",
    "timestamp",
    "timestamp_format",
    "timezone",
    "message_id",
)
RECEIPT = ("receipt_id", "store_id", "loyalty_card", "items", "amount", "currency")
CONSENT = ("column", "date", "date_format", "source", "source_text", "property")
# Lines of `name = column` in a text area.
PAIRS = ("traits", "properties", "item_columns")
FIELDS = (
    *TOP,
    *RECEIPT,
    "default_currency",
    *(f"consent_{name}" for name in CONSENT),
    "consent_purposes",
    *PAIRS,
)


def _pairs(text: str, field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, column = line.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise InvalidInput([FieldProblem(field, f"line {number}: write name = column")])
        out[name.strip()] = column.strip()
    return out


def mapping_from_fields(fields: Fields[str, str]) -> Mapping:
    """The mapping a form describes; `InvalidInput` names the form's own fields."""
    value = {name: (fields.get(name) or "").strip() for name in FIELDS}
    data: dict[str, Any] = {name: value[name] or None for name in TOP}
    data["call"] = value["call"] or "track"
    data["timestamp_format"] = value["timestamp_format"] or "iso"
    data["timezone"] = value["timezone"] or "UTC"
    data["traits"] = _pairs(fields.get("traits") or "", "traits")
    data["properties"] = _pairs(fields.get("properties") or "", "properties")
    if value["receipt_id"]:
        data["receipt"] = {name: value[name] or None for name in RECEIPT}
        data["receipt"]["item_columns"] = _pairs(fields.get("item_columns") or "", "item_columns")
        data["receipt"]["default_currency"] = value["default_currency"] or None
    elif any(value[name] for name in (*RECEIPT, "default_currency", "item_columns")):
        raise InvalidInput([FieldProblem("receipt_id", "name the receipt id column first")])
    if value["consent_column"]:
        consent: dict[str, Any] = {
            name: value[f"consent_{name}"] or None for name in ("column", "date", "source")
        }
        consent["date_format"] = value["consent_date_format"] or "iso"
        consent["source_text"] = value["consent_source_text"] or "CRM file"
        consent["property"] = value["consent_property"] or "imports"
        purposes = [p.strip() for p in value["consent_purposes"].split(",") if p.strip()]
        consent["purposes"] = purposes or ["marketing"]
        data["consent"] = consent
    try:
        return parse_mapping(data)
    except InvalidInput as exc:
        problems = [FieldProblem(form_field(p.field), p.reason) for p in exc.problems]
        raise InvalidInput(problems) from None


def form_field(field: str) -> str:
    """The form field a mapping problem belongs next to (`receipt.amount` → `amount`)."""
    head, _, rest = field.partition(".")
    if head in ("traits", "properties"):
        return head
    if head == "receipt":
        name = rest.partition(".")[0]
        return name if name in (*RECEIPT, "item_columns", "default_currency") else "receipt_id"
    if head == "consent":
        name = rest.partition(".")[0]
        return f"consent_{name}" if name else "consent_column"
    return head if head in FIELDS else "call"


def fields_of(mapping: Mapping) -> dict[str, str]:
    """The form's fields filled with a mapping."""
    out = {name: str(getattr(mapping, name) or "") for name in TOP}
    out["traits"] = "\n".join(f"{k} = {c}" for k, c in mapping.traits.items())
    out["properties"] = "\n".join(f"{k} = {c}" for k, c in mapping.properties.items())
    if mapping.receipt is not None:
        for name in RECEIPT:
            out[name] = getattr(mapping.receipt, name) or ""
        out["default_currency"] = mapping.receipt.default_currency or ""
        out["item_columns"] = "\n".join(
            f"{k} = {c}" for k, c in mapping.receipt.item_columns.items()
        )
    if mapping.consent is not None:
        for name in CONSENT:
            out[f"consent_{name}"] = getattr(mapping.consent, name) or ""
        out["consent_purposes"] = ", ".join(mapping.consent.purposes)
    return out
