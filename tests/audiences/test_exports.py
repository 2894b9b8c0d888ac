"""Normalisation and hashing as Meta and Google Ads document them; interest groups; signing."""

from __future__ import annotations

import csv
import io

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.audiences import exports
from accord.audiences.exports import InterestGroupOptions, Person, sha256
from accord.audiences.webhook import Delivery, deliver, settle


def test_published_hash_of_a_normalised_email() -> None:
    # The example the ad platforms give: Person@Example.com -> person@example.com.
    assert exports.email_for_meta("  Person@Example.com ") == "person@example.com"
    assert (
        sha256("person@example.com")
        == "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"
    )


@pytest.mark.parametrize(
    ("raw", "google", "meta"),
    [
        ("Jane.Doe@Gmail.com", "janedoe@gmail.com", "jane.doe@gmail.com"),
        (" j.d.o.e@googlemail.com", "jdoe@googlemail.com", "j.d.o.e@googlemail.com"),
        ("jane.doe@example.com", "jane.doe@example.com", "jane.doe@example.com"),
        ("not an email", None, None),
    ],
)
def test_gmail_dots_only_for_google(raw: str, google: str | None, meta: str | None) -> None:
    assert exports.email_for_google(raw) == google
    assert exports.email_for_meta(raw) == meta


@pytest.mark.parametrize(
    ("raw", "google", "meta"),
    [
        ("+44 844 412 4653", "+448444124653", "448444124653"),
        ("0044 (844) 412-4653", "+448444124653", "448444124653"),
        ("+1 650-555-1212", "+16505551212", "16505551212"),
        ("06 12 34 56 78", None, None),  # national: no country, not guessed
        ("+12", None, None),
    ],
)
def test_phone_numbers(raw: str, google: str | None, meta: str | None) -> None:
    assert exports.phone_for_google(raw) == google
    assert exports.phone_for_meta(raw) == meta


def test_names_zip_and_country() -> None:
    assert exports.name_for_meta(" Mary-Ann O'Neil ") == "maryannoneil"
    assert exports.name_for_meta("Émile") == "émile"
    assert exports.name_for_google(" Mary-Ann ") == "maryann"
    assert exports.zip_for_meta("94025-1234", "us") == "94025"
    assert exports.zip_for_meta("SW1A 1AA", "gb") == "sw1a1aa"
    assert exports.country_code("FR") == "fr"
    assert exports.country_code("France") is None


ANN = Person(
    profile_id="prof_1",
    user_ids=("u1",),
    anonymous_ids=("a1", "a2"),
    emails=("ann.lee@gmail.com",),
    traits={
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": "+33 6 12 34 56 78",
        "country": "FR",
        "zip": "75011",
    },
)
NOBODY = Person(profile_id="prof_2", anonymous_ids=("a3",))


def test_item_12_google_names_lose_punctuation_and_extra_spaces() -> None:
    # Google Ads: names lower-cased, punctuation removed, no extra spaces before, after
    # or in between (OfflineUserAddressInfo.hashed_first_name / hashed_last_name).
    assert exports.name_for_google("  Mary-Ann   O'Neil. ") == "maryann oneil"
    assert exports.name_for_google("JEAN  PIERRE") == "jean pierre"
    assert exports.name_for_google("Émile") == "émile"
    assert exports.name_for_google(" .-' ") is None
    person = Person(profile_id="p", emails=("a@example.com",), traits={"first_name": "Ann-Marie"})
    assert exports.google_row(person)["First Name"] == sha256("annmarie")  # type: ignore[index]


@pytest.mark.parametrize(
    ("raw", "country", "default", "e164"),
    [
        # Meta's own example: a country code written without '+' or '00'.
        ("1-650-253-0000", None, None, "+16502530000"),
        ("1 (650) 253-0000", "GB", None, "+16502530000"),
        ("1-650-253-0000", "US", None, "+16502530000"),
        # a national number, read in the person's country, else the business default
        ("06 12 34 56 78", "FR", None, "+33612345678"),
        ("06 12 34 56 78", None, "FR", "+33612345678"),
        ("(650) 253-0000", "us", "FR", "+16502530000"),
        # a national trunk prefix written (0) after the country code is dropped
        ("+44 (0)20 7946 0958", None, None, "+442079460958"),
        ("0049 (0)151 23456789", "FR", None, "+4915123456789"),
        ("44 (0)20 7946 0958", None, None, "+442079460958"),
    ],
)
def test_item_12_customer_list_phones_use_the_persons_country(
    raw: str, country: str | None, default: str | None, e164: str
) -> None:
    traits = {"phone": raw, **({"country": country} if country else {})}
    person = Person(profile_id="p", traits=traits)
    google = exports.google_row(person, default)
    meta = exports.meta_row(person, default)
    assert google is not None and meta is not None
    assert google["Phone"] == sha256(e164)
    assert meta["phone"] == sha256(e164[1:])


def test_item_12_national_number_without_any_country_is_left_out() -> None:
    person = Person(profile_id="p", traits={"phone": "06 12 34 56 78"})
    assert exports.google_row(person) is None
    rendered = exports.render("meta", [person], audience="vip", default_region="FR")
    assert rendered.rows == 1 and sha256("33612345678") in rendered.body.decode()


@given(st.sampled_from(["US", "GB", "FR", "DE", "IT", "JP", "BR", "IN"]), st.data())
def test_item_12_every_written_form_of_a_number_hashes_the_same(
    region: str, data: st.DataObject
) -> None:
    import phonenumbers

    example = phonenumbers.example_number_for_type(
        region,
        data.draw(st.sampled_from([0, 1])),  # FIXED_LINE, MOBILE
    )
    assert example is not None
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(
        example, phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    other = data.draw(st.sampled_from(["US", "GB", "FR", "DE", "IT", "JP", "BR", "IN", None]))
    written = [
        (e164, other),
        (international, other),
        ("00" + e164[1:], None),
        (international[1:], None),  # the country code without '+'
        (national, region),
    ]
    for raw, country in written:
        assert exports.phone_for_google(raw, country) == e164, (raw, country)
        assert exports.phone_for_meta(raw, country) == e164[1:], (raw, country)


def test_meta_and_google_rows() -> None:
    meta = exports.meta_row(ANN)
    assert meta == {
        "email": sha256("ann.lee@gmail.com"),
        "phone": sha256("33612345678"),
        "fn": sha256("ann"),
        "ln": sha256("lee"),
        "zip": sha256("75011"),
        "country": sha256("fr"),
    }
    google = exports.google_row(ANN)
    assert google == {
        "Email": sha256("annlee@gmail.com"),
        "Phone": sha256("+33612345678"),
        "First Name": sha256("ann"),
        "Last Name": sha256("lee"),
        "Country": "FR",
        "Zip": "75011",
    }
    assert exports.meta_row(NOBODY) is None and exports.google_row(NOBODY) is None


def test_rendered_files_count_the_unmatchable() -> None:
    rendered = exports.render("google", [ANN, NOBODY], audience="vip")
    rows = list(csv.DictReader(io.StringIO(rendered.body.decode())))
    assert list(rows[0]) == exports.GOOGLE_COLUMNS
    assert (rendered.rows, rendered.unmatchable) == (1, 1)
    plain = exports.render("csv", [ANN, NOBODY], audience="vip")
    assert plain.body.decode().splitlines() == [
        "profile_id,email,user_id,anonymous_id,first_name,last_name",
        "prof_1,ann.lee@gmail.com,u1,a1,Ann,Lee",
        "prof_2,,,a3,,",
    ]


def test_interest_group_has_the_protected_audience_fields() -> None:
    options = InterestGroupOptions(
        owner="https://dsp.example",
        bidding_logic_url="https://dsp.example/bid.js",
        trusted_bidding_signals_url="https://dsp.example/signals",
        update_url="https://dsp.example/update",
        ads=("https://dsp.example/ad?1",),
        lifetime_days=7,
    )
    rendered = exports.render(
        "interest_groups", [ANN, NOBODY], audience="vip", interest_groups=options
    )
    body = orjson.loads(rendered.body)
    assert body["anonymousIds"] == ["a1", "a2", "a3"]
    assert body["interestGroup"] == {
        "owner": "https://dsp.example",
        "name": "vip",
        "lifetimeMs": 7 * 86_400_000,
        "biddingLogicURL": "https://dsp.example/bid.js",
        "trustedBiddingSignalsURL": "https://dsp.example/signals",
        "trustedBiddingSignalsKeys": ["vip"],
        "updateURL": "https://dsp.example/update",
        "ads": [{"renderURL": "https://dsp.example/ad?1", "metadata": {"audience": "vip"}}],
    }
    with pytest.raises(ValueError, match="owner"):
        exports.render("interest_groups", [ANN], audience="vip")


@given(email=st.emails())
def test_google_email_normalisation_is_idempotent(email: str) -> None:
    once = exports.email_for_google(email)
    assert once is not None and exports.email_for_google(once) == once
    assert once == once.strip().lower()


# Webhook signing and retries ------------------------------------------------------------


def test_delivery_stops_on_a_refusal_and_gives_up_after_retries() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def answer(status: int) -> httpx.Client:
        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(status)
            return httpx.Response(status)

        return httpx.Client(transport=httpx.MockTransport(handler))

    refused = deliver(
        answer(400),
        url="https://x.example",
        secret="s",
        message_id="m",
        body=b"{}",
        sleep=waits.append,
    )
    assert (refused.delivered, refused.attempts, refused.status) == (False, 1, 400)
    failing = deliver(
        answer(503),
        url="https://x.example",
        secret="s",
        message_id="m",
        body=b"{}",
        attempts=4,
        sleep=waits.append,
    )
    assert (failing.delivered, failing.attempts) == (False, 4)
    assert waits == [0.5, 1.0, 2.0]

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    down = deliver(
        httpx.Client(transport=httpx.MockTransport(broken)),
        url="https://x.example",
        secret="s",
        message_id="m",
        body=b"{}",
        attempts=2,
        sleep=waits.append,
    )
    assert not down.delivered and down.error is not None and "ConnectError" in down.error


# What becomes of a batch after a delivery run -------------------------------------------


@pytest.mark.parametrize(
    ("delivery", "failures", "expected"),
    [
        (Delivery(True, 1, 200), 0, "delivered"),
        (Delivery(True, 3, 204), 0, "delivered"),
        # Refused for good: parked on the first run.
        (Delivery(False, 1, 400, "refused with HTTP 400"), 1, "park"),
        (Delivery(False, 1, 401, "refused with HTTP 401"), 1, "park"),
        (Delivery(False, 1, 404, "refused with HTTP 404"), 1, "park"),
        (Delivery(False, 1, 410, "refused with HTTP 410"), 1, "park"),
        (Delivery(False, 1, 422, "refused with HTTP 422"), 1, "park"),
        # "Later", not "never": retried until the runs are spent.
        (Delivery(False, 5, 408, "HTTP 408 after 5 attempts"), 1, "retry"),
        (Delivery(False, 5, 425, "HTTP 425 after 5 attempts"), 1, "retry"),
        (Delivery(False, 5, 429, "HTTP 429 after 5 attempts"), 9, "retry"),
        (Delivery(False, 5, 429, "HTTP 429 after 5 attempts"), 10, "park"),
        (Delivery(False, 5, 503, "HTTP 503 after 5 attempts"), 9, "retry"),
        (Delivery(False, 5, 503, "HTTP 503 after 5 attempts"), 11, "park"),
        (Delivery(False, 1, 501, "refused with HTTP 501"), 1, "retry"),
        (Delivery(False, 1, 302, "refused with HTTP 302"), 1, "retry"),
        (Delivery(False, 5, None, "ConnectError: refused"), 1, "retry"),
        (Delivery(False, 5, None, "ConnectError: refused"), 10, "park"),
    ],
)
def test_a_batch_is_parked_when_refused_or_after_enough_failed_runs(
    delivery: Delivery, failures: int, expected: str
) -> None:
    assert settle(delivery, failures=failures, dead_letter_after=10) == expected
