"""Parse an IAB Global Vendor List (GVL v2 or v3 JSON) into typed, validated, immutable models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from accord.core.errors import FieldProblem, InvalidInput

__all__ = [
    "MAX_GVL_BYTES",
    "Declaration",
    "GlobalVendorList",
    "InvalidGlobalVendorList",
    "Vendor",
    "VendorUrl",
    "parse",
]

# The published GVL is a few megabytes; anything far beyond is not a vendor list.
MAX_GVL_BYTES = 32 * 1024 * 1024
# Problems reported at most, so a wrong file yields a readable answer.
MAX_PROBLEMS = 50
# From TCF v2.2 (policy version 4) on, legitimate interest is not allowed for these purposes.
NO_LEGITIMATE_INTEREST = frozenset({1, 3, 4, 5, 6})


class InvalidGlobalVendorList(InvalidInput):
    """A vendor list that is not valid GVL JSON; lists every problem found (up to a limit)."""


@dataclass(frozen=True, slots=True)
class Declaration:
    """A purpose, special purpose, feature or special feature of the list."""

    id: int
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class VendorUrl:
    language: str
    privacy: str | None = None
    legitimate_interest_claim: str | None = None


@dataclass(frozen=True, slots=True)
class DataRetention:
    standard_days: int | None = None
    purposes: Mapping[int, int] = field(default_factory=dict)
    special_purposes: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Vendor:
    id: int
    name: str
    purposes: frozenset[int] = frozenset()
    leg_int_purposes: frozenset[int] = frozenset()
    flexible_purposes: frozenset[int] = frozenset()
    special_purposes: frozenset[int] = frozenset()
    features: frozenset[int] = frozenset()
    special_features: frozenset[int] = frozenset()
    cookie_max_age_seconds: int | None = None
    uses_cookies: bool = False
    cookie_refresh: bool = False
    uses_non_cookie_access: bool = False
    device_storage_disclosure_url: str | None = None
    data_retention: DataRetention | None = None
    urls: tuple[VendorUrl, ...] = ()
    data_declaration: frozenset[int] = frozenset()
    # GVL v2 carried one policy URL; v3 carries per-language `urls`.
    policy_url: str | None = None
    deleted_date: datetime | None = None

    def is_deleted(self, at: datetime) -> bool:
        return self.deleted_date is not None and self.deleted_date <= at


@dataclass(frozen=True, slots=True)
class GlobalVendorList:
    gvl_specification_version: int
    vendor_list_version: int
    tcf_policy_version: int
    last_updated: datetime | None
    purposes: Mapping[int, Declaration]
    special_purposes: Mapping[int, Declaration]
    features: Mapping[int, Declaration]
    special_features: Mapping[int, Declaration]
    vendors: Mapping[int, Vendor]

    def active_vendors(self, at: datetime | None = None) -> list[Vendor]:
        """Vendors not deleted at `at` (now by default), by id."""
        moment = at or datetime.now(UTC)
        return [v for _, v in sorted(self.vendors.items()) if not v.is_deleted(moment)]


class _Problems:
    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, where: str, reason: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(FieldProblem(field=where, reason=reason))


def _int(
    value: Any, where: str, problems: _Problems, *, low: int = 0, high: int | None = None
) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(where, "must be an integer")
        return None
    if value < low or (high is not None and value > high):
        problems.add(
            where, f"must be between {low} and {high}" if high is not None else f"must be ≥ {low}"
        )
        return None
    return value


def _text(value: Any, where: str, problems: _Problems, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        problems.add(where, "must be a non-empty string" if required else "must be a string")
        return None
    return value


def _bool(value: Any, where: str, problems: _Problems) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.add(where, "must be true or false")
        return False
    return value


def _instant(value: Any, where: str, problems: _Problems) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    problems.add(where, "must be an ISO-8601 date-time")
    return None


def _ids(
    value: Any, where: str, problems: _Problems, known: Mapping[int, Declaration]
) -> frozenset[int]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        problems.add(where, "must be a list of ids")
        return frozenset()
    out = set()
    for i, item in enumerate(value):
        number = _int(item, f"{where}[{i}]", problems, low=1)
        if number is None:
            continue
        if known and number not in known:
            problems.add(f"{where}[{i}]", f"{number} is not declared in the list")
        out.add(number)
    return frozenset(out)


def _declarations(value: Any, where: str, problems: _Problems) -> dict[int, Declaration]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where, "must be an object keyed by id")
        return {}
    out = {}
    for key, item in value.items():
        at = f"{where}.{key}"
        if not isinstance(item, dict):
            problems.add(at, "must be an object")
            continue
        number = _int(item.get("id"), f"{at}.id", problems, low=1)
        if number is not None and str(number) != key:
            problems.add(f"{at}.id", f"id {number} does not match its key {key!r}")
        name = _text(item.get("name"), f"{at}.name", problems)
        if number is not None and name is not None:
            description = item.get("description")
            out[number] = Declaration(
                id=number,
                name=name,
                description=description if isinstance(description, str) else "",
            )
    return out


def _retention(value: Any, where: str, problems: _Problems) -> DataRetention | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(where, "must be an object")
        return None

    def days(mapping: Any, at: str) -> dict[int, int]:
        if mapping is None:
            return {}
        if not isinstance(mapping, dict):
            problems.add(at, "must be an object of id to days")
            return {}
        out = {}
        for key, item in mapping.items():
            if not key.isdigit():
                problems.add(f"{at}.{key}", "keys are ids")
                continue
            number = _int(item, f"{at}.{key}", problems)
            if number is not None:
                out[int(key)] = number
        return out

    standard = value.get("stdRetention")
    return DataRetention(
        standard_days=None
        if standard is None
        else _int(standard, f"{where}.stdRetention", problems),
        purposes=days(value.get("purposes"), f"{where}.purposes"),
        special_purposes=days(value.get("specialPurposes"), f"{where}.specialPurposes"),
    )


def _urls(value: Any, where: str, problems: _Problems) -> tuple[VendorUrl, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(where, "must be a list")
        return ()
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            problems.add(at, "must be an object")
            continue
        language = _text(item.get("langId"), f"{at}.langId", problems)
        if language is not None:
            out.append(
                VendorUrl(
                    language=language,
                    privacy=_text(item.get("privacy"), f"{at}.privacy", problems, required=False),
                    legitimate_interest_claim=_text(
                        item.get("legIntClaim"), f"{at}.legIntClaim", problems, required=False
                    ),
                )
            )
    return tuple(out)


def _vendor(
    key: str,
    item: Any,
    problems: _Problems,
    declared: dict[str, dict[int, Declaration]],
    policy: int,
) -> Vendor | None:
    at = f"vendors.{key}"
    if not isinstance(item, dict):
        problems.add(at, "must be an object")
        return None
    number = _int(item.get("id"), f"{at}.id", problems, low=1, high=65535)
    if number is not None and str(number) != key:
        problems.add(f"{at}.id", f"id {number} does not match its key {key!r}")
    name = _text(item.get("name"), f"{at}.name", problems)
    purposes = _ids(item.get("purposes"), f"{at}.purposes", problems, declared["purposes"])
    leg_int = _ids(
        item.get("legIntPurposes"), f"{at}.legIntPurposes", problems, declared["purposes"]
    )
    flexible = _ids(
        item.get("flexiblePurposes"), f"{at}.flexiblePurposes", problems, declared["purposes"]
    )
    if purposes & leg_int:
        problems.add(
            f"{at}.legIntPurposes",
            f"purposes {sorted(purposes & leg_int)} are also consent purposes",
        )
    if not flexible <= purposes | leg_int:
        problems.add(
            f"{at}.flexiblePurposes",
            "a flexible purpose must be a consent or legitimate interest purpose",
        )
    if policy >= 4 and leg_int & NO_LEGITIMATE_INTEREST:
        problems.add(
            f"{at}.legIntPurposes",
            f"purposes {sorted(leg_int & NO_LEGITIMATE_INTEREST)} cannot use legitimate interest",
        )
    max_age = item.get("cookieMaxAgeSeconds")
    vendor = Vendor(
        id=number or 0,
        name=name or "",
        purposes=purposes,
        leg_int_purposes=leg_int,
        flexible_purposes=flexible,
        special_purposes=_ids(
            item.get("specialPurposes"),
            f"{at}.specialPurposes",
            problems,
            declared["specialPurposes"],
        ),
        features=_ids(item.get("features"), f"{at}.features", problems, declared["features"]),
        special_features=_ids(
            item.get("specialFeatures"),
            f"{at}.specialFeatures",
            problems,
            declared["specialFeatures"],
        ),
        # A negative or null age means no persistent cookie; keep what the list says.
        cookie_max_age_seconds=None
        if max_age is None
        else _int(max_age, f"{at}.cookieMaxAgeSeconds", problems, low=-(2**62)),
        uses_cookies=_bool(item.get("usesCookies"), f"{at}.usesCookies", problems),
        cookie_refresh=_bool(item.get("cookieRefresh"), f"{at}.cookieRefresh", problems),
        uses_non_cookie_access=_bool(
            item.get("usesNonCookieAccess"), f"{at}.usesNonCookieAccess", problems
        ),
        device_storage_disclosure_url=_text(
            item.get("deviceStorageDisclosureUrl"),
            f"{at}.deviceStorageDisclosureUrl",
            problems,
            required=False,
        ),
        data_retention=_retention(item.get("dataRetention"), f"{at}.dataRetention", problems),
        urls=_urls(item.get("urls"), f"{at}.urls", problems),
        data_declaration=_ids(item.get("dataDeclaration"), f"{at}.dataDeclaration", problems, {}),
        policy_url=_text(item.get("policyUrl"), f"{at}.policyUrl", problems, required=False),
        deleted_date=_instant(item.get("deletedDate"), f"{at}.deletedDate", problems),
    )
    return vendor if number is not None and name is not None else None


def parse(
    data: bytes | str | Mapping[str, Any], *, max_bytes: int = MAX_GVL_BYTES
) -> GlobalVendorList:
    """Parse GVL JSON (bytes, text or an already loaded object); raises
    `InvalidGlobalVendorList` naming every problem found (at most `MAX_PROBLEMS`)."""
    problems = _Problems()
    if isinstance(data, bytes | str):
        if len(data) > max_bytes:
            raise InvalidGlobalVendorList([FieldProblem("gvl", f"larger than {max_bytes} bytes")])
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidGlobalVendorList([FieldProblem("gvl", f"not JSON: {exc}")]) from exc
    else:
        document = data
    if not isinstance(document, Mapping):
        raise InvalidGlobalVendorList([FieldProblem("gvl", "must be a JSON object")])

    spec = document.get("gvlSpecificationVersion", 2)
    if spec not in (2, 3):
        problems.add("gvlSpecificationVersion", f"{spec!r} is not 2 or 3")
    version = _int(
        document.get("vendorListVersion"), "vendorListVersion", problems, low=1, high=4095
    )
    policy = _int(document.get("tcfPolicyVersion"), "tcfPolicyVersion", problems, low=1, high=63)
    declared = {
        name: _declarations(document.get(name), name, problems)
        for name in ("purposes", "specialPurposes", "features", "specialFeatures")
    }
    raw_vendors = document.get("vendors")
    vendors: dict[int, Vendor] = {}
    if not isinstance(raw_vendors, dict):
        problems.add("vendors", "must be an object keyed by vendor id")
    else:
        for key, item in raw_vendors.items():
            vendor = _vendor(key, item, problems, declared, policy or 0)
            if vendor is not None:
                vendors[vendor.id] = vendor
    last_updated = _instant(document.get("lastUpdated"), "lastUpdated", problems)
    if problems.items:
        raise InvalidGlobalVendorList(problems.items)
    assert version is not None and policy is not None
    return GlobalVendorList(
        gvl_specification_version=int(spec),
        vendor_list_version=version,
        tcf_policy_version=policy,
        last_updated=last_updated,
        purposes=declared["purposes"],
        special_purposes=declared["specialPurposes"],
        features=declared["features"],
        special_features=declared["specialFeatures"],
        vendors=vendors,
    )
