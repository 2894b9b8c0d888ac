"""Reading lead exports: Facebook / Instagram Lead Ads files and generic CSV with a mapping."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from accord.core.errors import FieldProblem, InvalidInput

# Lead Ads columns that describe the ad, not the person.
AD_COLUMNS = {
    "id": "lead_id",
    "created_time": "created_time",
    "ad_id": "ad_id",
    "ad_name": "ad_name",
    "adset_id": "adset_id",
    "adset_name": "adset_name",
    "campaign_id": "campaign_id",
    "campaign_name": "campaign_name",
    "form_id": "form_id",
    "form_name": "form_name",
    "is_organic": "is_organic",
    "platform": "platform",
    "lead_status": "lead_status",
}
# Standard questions of a Lead Ads form and the lead field each fills.
QUESTION_FIELDS = {
    "email": "email",
    "full_name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone_number": "phone",
    "company_name": "company",
}
# Ids in exports carry a type prefix: l: lead, ag: ad, as: ad set, c: campaign, f: form.
ID_PREFIXES = ("l:", "ag:", "as:", "c:", "f:")
MAX_BYTES = 50 * 1024 * 1024


@dataclass
class LeadRow:
    line: int
    fields: dict[str, str] = field(default_factory=dict)  # email, name, phone, company
    answers: dict[str, str] = field(default_factory=dict)  # custom questions
    ad: dict[str, str | bool] = field(default_factory=dict)


def decode(raw: bytes) -> str:
    """UTF-16 (with its BOM, as Lead Ads' "CSV for Excel"), UTF-8 with or without BOM."""
    if len(raw) > MAX_BYTES:
        raise InvalidInput([FieldProblem("file", f"is larger than {MAX_BYTES} bytes")])
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif raw.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            [FieldProblem("file", f"is not {encoding} text (byte {exc.start})")]
        ) from exc


def _reader(text: str) -> csv.DictReader[str]:
    header = text.split("\n", 1)[0]
    delimiter = "\t" if header.count("\t") > header.count(",") else ","
    return csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)


def _strip_prefix(value: str) -> str:
    for prefix in ID_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def read_lead_ads(raw: bytes) -> Iterator[LeadRow]:
    reader = _reader(decode(raw))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "email" not in columns:
        raise InvalidInput([FieldProblem("file", "has no email column; is it a Lead Ads export?")])
    for index, record in enumerate(reader, start=2):
        row = LeadRow(line=index)
        for column, raw_value in record.items():
            if column is None:
                continue
            key = column.strip()
            value = (raw_value or "").strip() if isinstance(raw_value, str) else ""
            if key in AD_COLUMNS:
                if key == "is_organic":
                    row.ad["is_organic"] = value.lower() in ("true", "1", "yes")
                elif value:
                    row.ad[AD_COLUMNS[key]] = _strip_prefix(value)
            elif key in QUESTION_FIELDS:
                if key == "phone_number" and value.startswith("p:"):
                    value = value[2:]
                if value:
                    row.fields[QUESTION_FIELDS[key]] = value
            elif value:
                row.answers[key] = value
        if "name" not in row.fields and ("first_name" in row.fields or "last_name" in row.fields):
            row.fields["name"] = " ".join(
                row.fields.get(k, "") for k in ("first_name", "last_name")
            ).strip()
        yield row


LEAD_FIELDS = ("email", "name", "phone", "company")


def read_mapped_csv(raw: bytes, mapping: Mapping[str, str]) -> Iterator[LeadRow]:
    """Generic CSV: `mapping` names the column of each lead field (email is required);
    every other column is kept as an answer."""
    if "email" not in mapping:
        raise InvalidInput([FieldProblem("mapping", "must name the email column")])
    unknown = [f for f in mapping if f not in LEAD_FIELDS]
    if unknown:
        raise InvalidInput(
            [FieldProblem("mapping", f"unknown lead fields {unknown}; use {LEAD_FIELDS}")]
        )
    reader = _reader(decode(raw))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in mapping.values() if c not in columns]
    if missing:
        raise InvalidInput([FieldProblem("mapping", f"columns not in the file: {missing}")])
    by_column = {column: lead_field for lead_field, column in mapping.items()}
    for index, record in enumerate(reader, start=2):
        row = LeadRow(line=index)
        for column, raw_value in record.items():
            if column is None:
                continue
            value = (raw_value or "").strip() if isinstance(raw_value, str) else ""
            if not value:
                continue
            if column.strip() in by_column:
                row.fields[by_column[column.strip()]] = value
            else:
                row.answers[column.strip()] = value
        yield row
