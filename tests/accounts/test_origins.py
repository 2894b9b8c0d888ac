"""A pixel's allowed origins: parsing what a person types, and matching a browser's Origin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.accounts.origins import (
    loaded,
    normalise,
    origin_allowed,
    parse_origins,
    stored,
)
from accord.core.errors import InvalidInput

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)
ports = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))
schemes = st.sampled_from(["http", "https"])


@st.composite
def origins(draw: st.DrawFn) -> str:
    port = draw(ports)
    return f"{draw(schemes)}://{draw(hosts)}" + ("" if port is None else f":{port}")


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("https://Shop.Example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://shop.example:80", "http://shop.example"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://*.shop.example", "https://*.shop.example"),
    ],
)
def test_entries_are_kept_as_browsers_send_origins(typed: str, kept: str) -> None:
    assert parse_origins([typed]) == (kept,)


@pytest.mark.parametrize(
    "typed",
    ["shop.example", "https://shop.example/path", "ftp://shop.example", "https://", "https://a:0"],
)
def test_bad_entries_are_refused_with_their_position(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_origins(["https://ok.example", typed])
    assert [p.field for p in refused.value.problems] == ["allowed_origins.1"]


def test_nothing_or_a_star_means_any_origin() -> None:
    assert parse_origins([]) is None
    assert parse_origins(["", " * "]) is None
    with pytest.raises(InvalidInput):
        parse_origins(["*", "https://shop.example"])
    assert origin_allowed(None, "https://anything.example")


def test_wildcards_match_subdomains_only() -> None:
    allowed = parse_origins(["https://*.shop.example"])
    assert origin_allowed(allowed, "https://eu.shop.example")
    assert origin_allowed(allowed, "https://a.b.shop.example")
    assert not origin_allowed(allowed, "https://shop.example")
    assert not origin_allowed(allowed, "https://evilshop.example")
    assert not origin_allowed(allowed, "http://eu.shop.example")
    assert not origin_allowed(allowed, "null")


@given(st.lists(origins(), min_size=1, max_size=5), origins())
def test_an_origin_is_allowed_exactly_when_listed(listed: list[str], other: str) -> None:
    allowed = parse_origins(listed)
    assert allowed is not None
    assert loaded(stored(allowed)) == allowed
    for origin in listed:
        assert origin_allowed(allowed, origin)
        assert origin_allowed(allowed, origin.upper())
    assert origin_allowed(allowed, other) == (normalise(other) in allowed)


@given(st.text(max_size=60))
def test_any_text_is_parsed_or_refused_never_crashes(text: str) -> None:
    try:
        parse_origins(text.splitlines())
    except InvalidInput as exc:
        assert all(p.field.startswith("allowed_origins") for p in exc.problems)
    assert isinstance(origin_allowed(("https://shop.example",), text), bool)
