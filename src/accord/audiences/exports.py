"""Export formats: CSV, Meta and Google Ads customer lists, Protected Audience interest groups.

Pure functions from people to bytes. Which people may leave (consent and suppression)
is decided before, in `activation.export_audience`; these only normalise and hash.

Normalisation follows each platform's documentation:
- Meta customer lists: every field lower-case and trimmed, then SHA-256 hex; email as is;
  phone as digits with country code, no '+' or leading zeros; first and last names without
  punctuation; zip without spaces or dashes (US: first five digits); country as ISO 3166-1
  alpha-2, lower-case.
- Google Ads Customer Match: email, phone, first and last name trimmed, lower-case and
  SHA-256 hex; dots before '@' removed for gmail.com and googlemail.com; names without
  punctuation and with inner spaces collapsed to one; phone in E.164 with '+'; country
  (alpha-2) and zip sent in clear.

Phones go through `identity.rules.phone_e164`, the one normaliser every context uses: a
number written without '+' is read in the person's country (their `country` trait, else
the business's default phone region), and a number written with its country code but no
'+' or '00' (`1-650-253-0000`) is read as international.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import phonenumbers

from accord.core.csvfile import csv_text
from accord.identity.rules import normalise

Destination = Literal["csv", "meta", "google", "interest_groups"]


@dataclass(frozen=True)
class Person:
    """Who a member is, as far as exports and suppression need to know."""

    profile_id: str
    user_ids: tuple[str, ...] = ()
    anonymous_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    # Phone identifiers, E.164 as the identity graph holds them.
    phones: tuple[str, ...] = ()
    traits: Mapping[str, Any] = field(default_factory=dict)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def email_for_meta(value: str) -> str | None:
    email = value.strip().lower()
    return email if "@" in email else None


def email_for_google(value: str) -> str | None:
    email = value.strip().lower()
    if "@" not in email:
        return None
    local, _, domain = email.rpartition("@")
    if domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
    return f"{local}@{domain}"


def phone_for_google(value: str, region: str | None = None) -> str | None:
    """E.164 as identity writes it, a number without '+' read in `region` (the person's
    country). A national number with no region names no country: it is left out rather
    than exported wrong (profiles' phone identifiers are already E.164)."""
    return normalise("phone", value, phone_region=region)


def phone_for_meta(value: str, region: str | None = None) -> str | None:
    # Meta's one step on top of E.164: digits only, without the '+'.
    number = normalise("phone", value, phone_region=region)
    return number[1:] if number else None


def _without_punctuation(value: str) -> str:
    # Letters outside a-z stay (UTF-8); punctuation and symbols go.
    text = unicodedata.normalize("NFC", value.strip().lower())
    return "".join(c for c in text if not unicodedata.category(c).startswith(("P", "S")))


def name_for_meta(value: str) -> str | None:
    # Meta asks for lower case without punctuation or spaces.
    cleaned = re.sub(r"\s+", "", _without_punctuation(value))
    return cleaned or None


def name_for_google(value: str) -> str | None:
    # Google: lower case, no punctuation, no extra spaces before, after or in between.
    cleaned = re.sub(r"\s+", " ", _without_punctuation(value)).strip()
    return cleaned or None


def zip_for_meta(value: str, country: str | None) -> str | None:
    text = re.sub(r"[\s\-]", "", value.strip().lower())
    if country == "us":
        text = text[:5]
    return text or None


def country_code(value: Any) -> str | None:
    text = _text(value)
    if text is None or not re.fullmatch(r"[A-Za-z]{2}", text):
        return None
    return text.lower()


def _first(person: Person, *keys: str) -> str | None:
    for key in keys:
        text = _text(person.traits.get(key))
        if text is not None:
            return text
    return None


def _address(person: Person) -> Mapping[str, Any]:
    address = person.traits.get("address")
    return address if isinstance(address, dict) else {}


def _email(person: Person) -> str | None:
    return person.emails[0] if person.emails else _first(person, "email")


def _phone(person: Person) -> str | None:
    return person.phones[0] if person.phones else _first(person, "phone")


def phone_region(country: str | None, default: str | None) -> str | None:
    """The region a person's phone number without '+' is read in: their country when it is
    one phonenumbers knows, else the business's default phone region."""
    if country is not None and country.upper() in phonenumbers.SUPPORTED_REGIONS:
        return country.upper()
    return default


def meta_row(person: Person, default_region: str | None = None) -> dict[str, str] | None:
    """One row of a Meta customer list (columns email, phone, fn, ln, zip, country)."""
    address = _address(person)
    country = country_code(person.traits.get("country") or address.get("country"))
    email = _email(person)
    phone = _phone(person)
    region = phone_region(country, default_region)
    first_name = _first(person, "first_name", "firstName")
    last_name = _first(person, "last_name", "lastName")
    zip_code = _text(
        person.traits.get("zip") or address.get("postal_code") or address.get("postalCode")
    )
    values = {
        "email": email_for_meta(email) if email else None,
        "phone": phone_for_meta(phone, region) if phone else None,
        "fn": name_for_meta(first_name) if first_name else None,
        "ln": name_for_meta(last_name) if last_name else None,
        "zip": zip_for_meta(zip_code, country) if zip_code else None,
        "country": country,
    }
    if values["email"] is None and values["phone"] is None:
        return None
    return {key: sha256(value) if value else "" for key, value in values.items()}


def google_row(person: Person, default_region: str | None = None) -> dict[str, str] | None:
    """One row of a Google Ads Customer Match upload (Email, Phone, First Name, ...)."""
    address = _address(person)
    email = _email(person)
    phone = _phone(person)
    first_name = _first(person, "first_name", "firstName")
    last_name = _first(person, "last_name", "lastName")
    country = country_code(person.traits.get("country") or address.get("country"))
    region = phone_region(country, default_region)
    zip_code = _text(
        person.traits.get("zip") or address.get("postal_code") or address.get("postalCode")
    )
    hashed = {
        "Email": email_for_google(email) if email else None,
        "Phone": phone_for_google(phone, region) if phone else None,
        "First Name": name_for_google(first_name) if first_name else None,
        "Last Name": name_for_google(last_name) if last_name else None,
    }
    if hashed["Email"] is None and hashed["Phone"] is None:
        return None
    row = {key: sha256(value) if value else "" for key, value in hashed.items()}
    # Google takes country and zip in clear; they only help matching with a name.
    row["Country"] = country.upper() if country else ""
    row["Zip"] = zip_code or ""
    return row


META_COLUMNS = ["email", "phone", "fn", "ln", "zip", "country"]
GOOGLE_COLUMNS = ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
CSV_COLUMNS = ["profile_id", "email", "user_id", "anonymous_id", "first_name", "last_name"]


def _csv(columns: list[str], rows: Iterable[Mapping[str, str]]) -> bytes:
    return csv_text(columns, rows).encode()


def csv_row(person: Person) -> dict[str, str]:
    return {
        "profile_id": person.profile_id,
        "email": _email(person) or "",
        "user_id": person.user_ids[0] if person.user_ids else "",
        "anonymous_id": person.anonymous_ids[0] if person.anonymous_ids else "",
        "first_name": _first(person, "first_name", "firstName") or "",
        "last_name": _first(person, "last_name", "lastName") or "",
    }


@dataclass(frozen=True)
class InterestGroupOptions:
    """The buyer's side of a Protected Audience interest group (owner and its URLs)."""

    owner: str
    bidding_logic_url: str
    lifetime_days: int = 30
    trusted_bidding_signals_url: str | None = None
    update_url: str | None = None
    ads: tuple[str, ...] = ()


def interest_group(name: str, options: InterestGroupOptions) -> dict[str, Any]:
    """The `AuctionAdInterestGroup` a member's browser passes to `joinAdInterestGroup`."""
    group: dict[str, Any] = {
        "owner": options.owner,
        "name": name,
        "lifetimeMs": options.lifetime_days * 86_400_000,
        "biddingLogicURL": options.bidding_logic_url,
        "trustedBiddingSignalsKeys": [name],
        "ads": [{"renderURL": url, "metadata": {"audience": name}} for url in options.ads],
    }
    if options.trusted_bidding_signals_url:
        group["trustedBiddingSignalsURL"] = options.trusted_bidding_signals_url
    if options.update_url:
        group["updateURL"] = options.update_url
    return group


@dataclass
class Rendered:
    body: bytes
    media_type: str
    rows: int
    # people with nothing this destination can match on (no email or phone, ...)
    unmatchable: int


def render(
    destination: Destination,
    people: list[Person],
    *,
    audience: str,
    interest_groups: InterestGroupOptions | None = None,
    default_region: str | None = None,
) -> Rendered:
    """`default_region` reads phone numbers without '+' of people with no known country."""
    if destination == "csv":
        return Rendered(_csv(CSV_COLUMNS, map(csv_row, people)), "text/csv", len(people), 0)
    if destination in ("meta", "google"):
        make = meta_row if destination == "meta" else google_row
        columns = META_COLUMNS if destination == "meta" else GOOGLE_COLUMNS
        rows = [row for row in (make(p, default_region) for p in people) if row is not None]
        return Rendered(_csv(columns, rows), "text/csv", len(rows), len(people) - len(rows))
    if interest_groups is None:
        raise ValueError("interest-group exports need the buyer's owner and bidding logic URL")
    # Browsers join interest groups, so members are named by their anonymous ids.
    browsers = sorted({a for person in people for a in person.anonymous_ids})
    body = {
        "interestGroup": interest_group(audience, interest_groups),
        "anonymousIds": browsers,
    }
    joined = sum(1 for person in people if person.anonymous_ids)
    return Rendered(
        orjson.dumps(body, option=orjson.OPT_INDENT_2),
        "application/json",
        len(browsers),
        len(people) - joined,
    )
