"""Column mappings: presets make the right events, rows become events or problems, ids are
deterministic, and the form round-trips a mapping (pure functions, no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.collect.mapped import read_csv_bytes
from accord.collect.mapping import (
    PRESETS,
    Mapping,
    check_columns,
    fit_preset,
    map_rows,
    parse_amount,
    parse_mapping,
    parse_time,
)
from accord.collect.mapping_form import fields_of, mapping_from_fields
from accord.core.errors import InvalidInput

CRM = (
    b"Contact ID,Email,Phone,First Name,Company,Email Opt-In,Opt-In Date,Opt-In Source\n"
    b"c-1,Ada@Example.com,+39 333 123 4567,Ada,Acme,yes,2025-03-01,newsletter form\n"
    b"c-2,bob@example.com,,Bob,,no,2025-04-02T10:00:00Z,fair\n"
    b"c-3,cy@example.com,,Cy,,,,\n"
    b"c-4,dee@example.com,,Dee,,maybe,2025-01-01,\n"
)
ORDERS = (
    b"order_id,customer_id,email,total,currency,created_at,products\n"
    b'o-1,u-1,ada@example.com,42.50,EUR,2026-10-01T09:05:00Z,"[{""sku"": ""b-1""}]"\n'
    b"o-2,,,10,EUR,2026-10-02T09:05:00Z,\n"
    b"o-3,u-3,,7,EUR,not a time,\n"
)
RECEIPTS = (
    b"store_id;receipt_id;loyalty_card;sku;product_name;quantity;unit_price;total;currency;time\n"
    b"S1;R1;L-77;a;Apple;2;1,50;5.00;eur;2026-10-01T10:00:00+02:00\n"
    b"S1;R2;;c;Cake;1;4;4;EUR;2026-10-01T11:00:00+02:00\n"
    b"S1;R1;;b;Bread;1;2;;;\n"
    b"S2;;;x;X;1;1;1;EUR;2026-10-01T12:00:00Z\n"
)


def mapped_of(raw: bytes, mapping: Mapping) -> list[Any]:
    return list(map_rows(read_csv_bytes(raw).rows, mapping))


def test_crm_preset_makes_identify_calls_and_consent_decisions() -> None:
    csv_file = read_csv_bytes(CRM)
    mapping = fit_preset("crm_contacts", csv_file.header)
    assert mapping.user_id == "Contact ID" and mapping.consent is not None
    results = list(map_rows(csv_file.rows, mapping))
    first = results[0]
    assert first.event == {
        "type": "identify",
        "userId": "c-1",
        "traits": {
            "first_name": "Ada",
            "company": "Acme",
            "email": "Ada@Example.com",
            "phone": "+39 333 123 4567",
        },
        "messageId": first.event["messageId"],
    }
    assert first.consent is not None
    assert first.consent.purposes == {"marketing": True}
    assert first.consent.recorded_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert first.consent.stated_source == "newsletter form"
    assert first.consent.user_id == "c-1"
    assert results[1].consent is not None and results[1].consent.purposes == {"marketing": False}
    assert results[2].event is not None and results[2].consent is None  # no decision stated
    assert results[3].event is None
    assert [(p.field, p.reason) for p in results[3].problems] == [
        ("consent.column", "'maybe' is neither yes nor no (yes, no, 1, 0…)")
    ]


def test_order_preset_makes_order_completed_with_the_order_id_as_key() -> None:
    csv_file = read_csv_bytes(ORDERS)
    mapping = fit_preset("ecommerce_orders", csv_file.header)
    results = list(map_rows(csv_file.rows, mapping))
    event = results[0].event
    assert event is not None
    assert event["event"] == "Order Completed" and event["userId"] == "u-1"
    assert event["properties"] == {
        "order_id": "o-1",
        "total": 42.5,
        "currency": "EUR",
        "products": [{"sku": "b-1"}],
    }
    assert event["context"] == {"traits": {"email": "ada@example.com"}}
    assert event["timestamp"] == "2026-10-01T09:05:00.000Z"
    assert results[1].event is None
    assert results[1].problems[0].field == "user_id"
    assert results[2].event is None
    assert results[2].problems[0].field == "timestamp"
    assert "'not a time' is not an ISO 8601 time" in results[2].problems[0].reason


def test_receipt_preset_groups_rows_of_a_receipt_wherever_they_are() -> None:
    csv_file = read_csv_bytes(RECEIPTS)
    mapping = fit_preset("pos_receipts", csv_file.header)
    results = list(map_rows(csv_file.rows, mapping))
    assert [r.lines for r in results] == [(2, 4), (3,), (5,)]
    receipt = results[0].event
    assert receipt is not None
    assert receipt["event"] == "Order Completed"
    assert receipt["properties"] == {
        "order_id": "S1-R1",
        "receipt_id": "R1",
        "store_id": "S1",
        "loyalty_card": "L-77",
        "products": [
            {"sku": "a", "name": "Apple", "quantity": 2, "price": 1.5},
            {"sku": "b", "name": "Bread", "quantity": 1, "price": 2.0},
        ],
        "total": 5.0,
        "currency": "EUR",
    }
    assert receipt["timestamp"] == "2026-10-01T08:00:00.000Z"
    # A loyalty card links a person's receipts; a receipt without one stands alone.
    assert receipt["anonymousId"].startswith("import-")
    assert results[1].event is not None
    assert results[1].event["anonymousId"] != receipt["anonymousId"]
    assert results[2].event is None
    assert results[2].problems[0].field == "receipt.receipt_id"


def test_receipt_items_from_a_json_column() -> None:
    raw = b'store,receipt,items,amount\nS,9,"[{""sku"": ""k"", ""price"": 3}]",3\nS,10,not json,1\n'
    mapping = parse_mapping(
        {
            "call": "track",
            "event": "Order Completed",
            "receipt": {
                "receipt_id": "receipt",
                "store_id": "store",
                "items": "items",
                "amount": "amount",
                "default_currency": "GBP",
            },
        }
    )
    results = mapped_of(raw, mapping)
    assert results[0].event["properties"]["products"] == [{"sku": "k", "price": 3}]
    assert results[0].event["properties"]["currency"] == "GBP"
    assert results[1].problems[0].field == "receipt.items"


def test_problems_of_a_mapping_name_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_mapping({"call": "track", "email": "mail", "timestamp_format": "dd/mm"})
    assert {p.field for p in caught.value.problems} == {"event", "timestamp_format"}
    with pytest.raises(InvalidInput) as caught:
        parse_mapping({"call": "identify", "user_id": "id", "colour": "x"})
    assert caught.value.problems[0].field == "colour"
    with pytest.raises(InvalidInput) as caught:
        check_columns(parse_mapping({"call": "identify", "email": "Mail"}), ["E-mail"])
    assert caught.value.problems[0].field == "email"
    assert "no column 'Mail'" in caught.value.problems[0].reason


def test_times_in_their_format_and_zone() -> None:
    rome = __import__("zoneinfo").ZoneInfo("Europe/Rome")
    assert parse_time("01/10/2026 10:00", "%d/%m/%Y %H:%M", rome) == datetime(
        2026, 10, 1, 8, tzinfo=UTC
    )
    assert parse_time("1790000000000", "unix_ms", UTC) == datetime.fromtimestamp(1790000000, UTC)
    with pytest.raises(ValueError, match="is not %d/%m/%Y"):
        parse_time("2026-10-01", "%d/%m/%Y", UTC)


def test_amounts_in_either_decimal_style() -> None:
    assert parse_amount("1,234.50") == parse_amount("1.234,50") == parse_amount("1234.5")
    assert parse_amount("12,5") == 12.5
    with pytest.raises(ValueError):
        parse_amount("12 EUR")


# Properties ---------------------------------------------------------------------------

cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
rows = st.lists(
    st.fixed_dictionaries({"id": cells, "email": cells, "plan": cells, "when": cells}),
    max_size=12,
)
IDENTIFY = parse_mapping(
    {
        "call": "identify",
        "user_id": "id",
        "email": "email",
        "traits": {"plan": "plan"},
        "timestamp": "when",
    }
)


@given(rows)
def test_every_row_is_an_event_or_named_problems_and_ids_are_deterministic(
    records: list[dict[str, str]],
) -> None:
    numbered = list(enumerate(records, start=2))
    first = list(map_rows(numbered, IDENTIFY))
    again = list(map_rows(numbered, IDENTIFY))
    assert [m.line for m in first] == [n for n, _ in numbered]
    for result, repeat in zip(first, again, strict=True):
        assert (result.event is None) == bool(result.problems)
        assert result.event == repeat.event
        if result.event is not None:
            assert result.event["messageId"].startswith("import-")
            assert result.event.get("userId") or result.event.get("anonymousId")
        for problem in result.problems:
            assert problem.field in ("user_id", "timestamp") and problem.reason
    ids = [m.event["messageId"] for m in first if m.event]
    events = [orjson_key(m.event) for m in first if m.event]
    # Equal events share an id; different events never do.
    assert len(set(ids)) == len(set(events))


def orjson_key(event: dict[str, Any]) -> str:
    import orjson

    rest = {k: v for k, v in event.items() if k != "messageId"}
    return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS).decode()


@given(st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2100, 1, 1)))
def test_iso_and_unix_times_read_back_the_same_instant(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC, microsecond=0)
    assert parse_time(aware.isoformat(), "iso", UTC) == aware
    assert parse_time(str(int(aware.timestamp())), "unix", UTC) == aware
    assert parse_time(aware.strftime("%Y%m%d%H%M%S"), "%Y%m%d%H%M%S", UTC) == aware
    assert parse_time(moment.replace(microsecond=0).isoformat(), "iso", UTC) - aware == timedelta(0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_form_round_trips_every_preset(name: str) -> None:
    mapping = PRESETS[name]
    assert mapping_from_fields(fields_of(mapping)) == mapping


def test_the_form_names_its_own_fields_in_problems() -> None:
    with pytest.raises(InvalidInput) as caught:
        mapping_from_fields({"call": "track", "event": "X", "email": "e", "traits": "oops"})
    assert caught.value.problems[0].field == "traits"
    with pytest.raises(InvalidInput) as caught:
        mapping_from_fields(
            {"call": "track", "event": "X", "receipt_id": "r", "default_currency": "euro"}
        )
    assert caught.value.problems[0].field == "default_currency"
