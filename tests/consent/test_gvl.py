"""Global Vendor List parsing: typed vendors, v2 and v3 lists, every problem named."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent.gvl import InvalidGlobalVendorList, parse

SAMPLE = (Path(__file__).parent / "vectors" / "gvl-v3-sample.json").read_bytes()


def test_parses_a_v3_list() -> None:
    gvl = parse(SAMPLE)
    assert (gvl.gvl_specification_version, gvl.vendor_list_version, gvl.tcf_policy_version) == (
        3,
        120,
        5,
    )
    assert gvl.last_updated == datetime(2026, 11, 19, 16, 5, 27, tzinfo=UTC)
    assert sorted(gvl.purposes) == list(range(1, 12))
    assert gvl.special_features[1].name == "Special feature 1"
    exchange = gvl.vendors[28]
    assert exchange.name == "Example Ad Exchange"
    assert exchange.purposes == {1, 3, 4}
    assert exchange.leg_int_purposes == {2, 7, 10}
    assert exchange.flexible_purposes == {2, 7}
    assert exchange.special_purposes == {1, 2}
    assert exchange.features == {1, 3}
    assert exchange.special_features == {1}
    assert exchange.cookie_max_age_seconds == 31536000
    assert exchange.uses_cookies and exchange.cookie_refresh and not exchange.uses_non_cookie_access
    assert exchange.data_retention is not None
    assert exchange.data_retention.standard_days == 365
    assert exchange.data_retention.purposes == {3: 180}
    assert exchange.data_retention.special_purposes == {1: 30}
    assert exchange.urls[0].privacy == "https://ads.example/privacy"
    assert exchange.urls[0].legitimate_interest_claim == "https://ads.example/li"
    assert exchange.data_declaration == {1, 4, 6}
    retired = gvl.vendors[91]
    assert retired.deleted_date == datetime(2025, 6, 30, tzinfo=UTC)
    assert retired.cookie_max_age_seconds is None


def test_active_vendors_leave_out_deleted_ones() -> None:
    gvl = parse(SAMPLE)
    assert [v.id for v in gvl.active_vendors(datetime(2026, 1, 1, tzinfo=UTC))] == [28, 755]
    assert [v.id for v in gvl.active_vendors(datetime(2025, 1, 1, tzinfo=UTC))] == [28, 91, 755]


def test_parses_a_v2_list_with_policy_url() -> None:
    document = {
        "gvlSpecificationVersion": 2,
        "vendorListVersion": 15,
        "tcfPolicyVersion": 2,
        "lastUpdated": "2020-03-05T16:05:29Z",
        "purposes": {"1": {"id": 1, "name": "Store and/or access information on a device"}},
        "vendors": {
            "8": {
                "id": 8,
                "name": "Emerse",
                "purposes": [1],
                "legIntPurposes": [],
                "flexiblePurposes": [],
                "specialPurposes": [],
                "features": [],
                "specialFeatures": [],
                "policyUrl": "https://www.emerse.com/privacy-policy/",
            }
        },
    }
    gvl = parse(json.dumps(document))
    assert gvl.vendors[8].policy_url == "https://www.emerse.com/privacy-policy/"
    assert gvl.vendors[8].urls == ()


def _broken(change: Any) -> dict[str, Any]:
    document = json.loads(SAMPLE)
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("vendorListVersion"), "vendorListVersion"),
        (lambda d: d.update(gvlSpecificationVersion=9), "gvlSpecificationVersion"),
        (lambda d: d.update(vendors=[]), "vendors"),
        (lambda d: d["vendors"]["28"].update(id=29), "vendors.28.id"),
        (lambda d: d["vendors"]["28"].update(name=""), "vendors.28.name"),
        (lambda d: d["vendors"]["28"].update(purposes=[1, 30]), "vendors.28.purposes[1]"),
        (lambda d: d["vendors"]["28"].update(purposes=["1"]), "vendors.28.purposes[0]"),
        (lambda d: d["vendors"]["28"].update(legIntPurposes=[1, 2]), "vendors.28.legIntPurposes"),
        (lambda d: d["vendors"]["28"].update(legIntPurposes=[3]), "vendors.28.legIntPurposes"),
        (lambda d: d["vendors"]["28"].update(flexiblePurposes=[9]), "vendors.28.flexiblePurposes"),
        (lambda d: d["vendors"]["28"].update(usesCookies="yes"), "vendors.28.usesCookies"),
        (lambda d: d["vendors"]["28"].update(deletedDate="soon"), "vendors.28.deletedDate"),
        (lambda d: d["vendors"]["28"].update(urls=[{"privacy": "x"}]), "vendors.28.urls[0].langId"),
        (
            lambda d: d["vendors"]["28"]["dataRetention"].update(stdRetention="a year"),
            "vendors.28.dataRetention.stdRetention",
        ),
        (lambda d: d["vendors"]["28"].update(specialFeatures=[7]), "vendors.28.specialFeatures[0]"),
    ],
)
def test_problems_name_the_field(change: Any, field: str) -> None:
    with pytest.raises(InvalidGlobalVendorList) as raised:
        parse(_broken(change))
    assert field in [p.field for p in raised.value.problems]


def test_every_problem_is_reported_at_once() -> None:
    def change(d: dict[str, Any]) -> None:
        d["vendors"]["28"]["name"] = 5
        d["vendors"]["755"]["features"] = [99]

    with pytest.raises(InvalidGlobalVendorList) as raised:
        parse(_broken(change))
    fields = {p.field for p in raised.value.problems}
    assert {"vendors.28.name", "vendors.755.features[0]"} <= fields


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b"\xff\xfe"])
def test_not_a_vendor_list(data: bytes) -> None:
    with pytest.raises(InvalidGlobalVendorList):
        parse(data)


def test_size_limit() -> None:
    with pytest.raises(InvalidGlobalVendorList, match="larger"):
        parse(SAMPLE, max_bytes=100)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["vendors", "purposes", "features", "vendorListVersion", "tcfPolicyVersion"]
        ),
        _json,
    )
)
def test_arbitrary_json_parses_or_raises_invalid(document: dict[str, Any]) -> None:
    try:
        parse(document)
    except InvalidGlobalVendorList as exc:
        assert exc.problems


@given(
    st.sampled_from(["28", "755", "91"]),
    st.sampled_from(["purposes", "features", "urls", "dataRetention", "id"]),
    _json,
)
def test_any_vendor_field_value_parses_or_raises_invalid(vendor: str, key: str, value: Any) -> None:
    document = copy.deepcopy(json.loads(SAMPLE))
    document["vendors"][vendor][key] = value
    try:
        parse(document)
    except InvalidGlobalVendorList as exc:
        assert exc.problems
