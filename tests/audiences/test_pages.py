"""The audience pages: list, builder (check, live estimate's API, save), detail with size
history, members, overlap and exports, suppression lists, and another business's view."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.audiences import destinations, erasure, membership
from accord.audiences.models import AudienceView, SizePoint
from accord.audiences.pages import size_chart, sizes_chart
from accord.core.settings import Settings
from accord.store.db import Store
from tests.accounts.ui import create_business, sign_up
from tests.audiences.test_api import collect_two_people
from tests.audiences.test_service import Grants
from tests.charts import chart
from tests.webhook_receiver import running_receiver

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The webhook receivers listen on loopback: the operator allows it here."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


def _html(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "text/html"}


def _form(**fields: str) -> dict[str, list[str]]:
    base = {"name": "Pros", "slug": "pros", "description": "", "source": "text", "text": ""}
    return {name: [value] for name, value in {**base, **fields}.items()}


def _save_pros(client: TestClient, keys: Bootstrap) -> None:
    saved = client.post(
        "/audiences/new",
        data=_form(text='trait plan = "pro"'),
        headers=_html(keys.admin_token),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/audiences/pros?notice=")


@pytest.fixture
def shop(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> Bootstrap:
    collect_two_people(client, keys, store, settings)
    return keys


def test_list_shows_predefined_audiences_with_size_and_refresh(
    client: TestClient, shop: Bootstrap
) -> None:
    listing = client.get("/audiences", headers=_html(shop.admin_token))
    assert listing.status_code == 200
    assert 'href="/audiences/purchased-30d"' in listing.text
    assert '<span class="badge">predefined</span>' in listing.text
    assert "not computed" in listing.text and "never" in listing.text
    refreshed = client.post(
        "/audiences/refresh", headers=_html(shop.admin_token), follow_redirects=False
    )
    assert refreshed.status_code == 303
    listing = client.get("/audiences", headers=_html(shop.admin_token))
    assert "not computed" not in listing.text and " UTC" in listing.text


def test_check_shows_both_forms_and_the_estimate_with_a_sample(
    client: TestClient, shop: Bootstrap
) -> None:
    page = client.get("/audiences/new", headers=_html(shop.admin_token))
    assert page.status_code == 200
    assert 'src="/static/audience-builder.js"' in page.text
    assert 'data-preview="/api/audiences/preview"' in page.text
    checked = client.post(
        "/audiences/new/check",
        data=_form(text='trait  plan = "pro"   or did "Product Viewed"'),
        headers=_html(shop.admin_token),
    )
    assert checked.status_code == 200, checked.text
    assert '<strong id="estimate-size">2</strong> people match now' in checked.text
    # The text form is rendered back in its canonical shape, the JSON form filled in.
    assert "trait plan = &#34;pro&#34; or did &#34;Product Viewed&#34;</textarea>" in checked.text
    assert "&#34;kind&#34;: &#34;or&#34;" in checked.text
    assert "email=two@example.com" in checked.text
    # Checking saves nothing.
    api = client.get("/api/audiences/pros", headers={"Authorization": f"Bearer {shop.admin_token}"})
    assert api.status_code == 404
    # The JSON form is checked the same way.
    json_form = client.post(
        "/audiences/new/check",
        data=_form(
            source="json",
            definition='{"kind": "trait", "trait": "plan", "op": "=", "value": "free"}',
        ),
        headers=_html(shop.admin_token),
    )
    assert json_form.status_code == 200
    assert '<strong id="estimate-size">1</strong>' in json_form.text
    assert "trait plan = &#34;free&#34;</textarea>" in json_form.text


def test_the_static_script_is_served_by_accord(client: TestClient) -> None:
    script = client.get("/static/audience-builder.js")
    assert script.status_code == 200
    assert "/api/audiences/preview" not in script.text  # read from the page's data attribute
    assert "X-CSRF-Token" in script.text and "http" not in script.text.replace("https", "")


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        (
            {"text": 'trait plan > "a"'},
            "definition.condition.op",
            "&#39;&gt;&#39; cannot order a string (trait &#39;plan&#39;)",
        ),
        (
            {"text": "did"},
            "text",
            "line 1, column 4: expected an event name, found the end of the text",
        ),
        (
            {"text": "trait shoe_size = 3"},
            "definition.condition.trait",
            "unknown trait &#39;shoe_size&#39;",
        ),
        ({"source": "json", "definition": "{nope"}, "definition", "not valid JSON: Expecting"),
        (
            {"source": "json", "definition": '{"kind": "trait", "trait": "plan", "op": "~"}'},
            "definition.condition.trait.op",
            "Input should be &#39;=&#39;, &#39;!=&#39;",
        ),
        (
            {"slug": "Not A Slug", "text": 'trait plan = "pro"'},
            "slug",
            "String should match pattern",
        ),
    ],
)
def test_an_invalid_definition_shows_the_error_and_saves_nothing(
    client: TestClient, shop: Bootstrap, fields: dict[str, str], field: str, reason: str
) -> None:
    for action in ("/audiences/new/check", "/audiences/new"):
        if action.endswith("check") and "slug" in fields:
            continue  # checking looks at the definition only
        response = client.post(
            action, data=_form(**fields), headers=_html(shop.admin_token), follow_redirects=False
        )
        assert response.status_code == 400, (action, response.text)
        assert "nothing was saved" in response.text
        assert f"<li><code>{field}</code>: {reason}" in response.text
    listed = client.get("/api/audiences", headers={"Authorization": f"Bearer {shop.admin_token}"})
    assert not [a for a in listed.json() if not a["predefined"]]


def test_detail_shows_history_members_overlap_and_exports(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    admin = _html(shop.admin_token)
    _save_pros(client, shop)
    before = client.get("/audiences/pros", headers=admin)
    assert before.status_code == 200
    assert "trait plan = &#34;pro&#34;" in before.text and "refresh the audience" in before.text
    for _ in range(2):
        refreshed = client.post("/audiences/pros/refresh", headers=admin, follow_redirects=False)
        assert refreshed.status_code == 303
    client.post("/audiences/purchased-7d/refresh", headers=admin)
    detail = client.get("/audiences/pros?with=purchased-7d", headers=admin)
    assert detail.status_code == 200
    sizes = chart(detail.text, "Size after each refresh")
    assert sizes.trace("Size")["y"] == [1, 1] and sizes.traces[0]["type"] == "scatter"
    assert detail.text.count("<td>1</td>") == 2  # the size after each refresh, in its table
    listed = client.get("/audiences", headers=admin)
    all_sizes = chart(listed.text, "Audience sizes")
    assert all_sizes.traces[0]["orientation"] == "h"
    assert all_sizes.rows["Pros"] == ["1"]
    assert "one@example.com" in detail.text and "two@example.com" not in detail.text
    assert "1 people are in both <code>pros</code> (1)" in detail.text
    assert "Page 1 of 1" in detail.text
    beyond = client.get("/audiences/pros?page=9&with=nope", headers=admin)
    assert beyond.status_code == 200
    assert "Page 1 of 1" in beyond.text and "one@example.com" in beyond.text
    assert "audience &#39;nope&#39; not found" in beyond.text

    # Nobody has a marketing decision in the ledger: the export says who was left out.
    export = client.get("/audiences/pros/export?destination=meta", headers=admin)
    assert export.status_code == 200
    assert '<strong id="export-included">0</strong>' in export.text
    assert "<td>no consent for marketing</td><td>1</td>" in export.text
    assert 'href="/api/audiences/pros/export/meta"' in export.text

    Grants({"u1": {"marketing"}}).record(store, shop.business_id)
    export = client.get("/audiences/pros/export?destination=csv", headers=admin)
    assert '<strong id="export-included">1</strong>' in export.text
    assert "No member was left out" in export.text
    groups = client.get(
        "/audiences/pros/export?destination=interest_groups&owner=https://dsp.example"
        "&bidding_logic_url=https://dsp.example/b.js",
        headers=admin,
    )
    assert groups.status_code == 200
    assert "owner=https%3A%2F%2Fdsp.example" in groups.text
    missing = client.get(
        "/audiences/pros/export?destination=interest_groups", headers=admin, follow_redirects=False
    )
    assert missing.status_code == 303 and "error=" in missing.headers["location"]

    deleted = client.post("/audiences/pros/delete", headers=admin, follow_redirects=False)
    assert deleted.status_code == 303
    assert client.get("/audiences/pros", headers=admin).status_code == 404
    refused = client.post("/audiences/low-nps/delete", headers=admin, follow_redirects=False)
    assert refused.status_code == 303 and "error=" in refused.headers["location"]


def test_suppression_list_page_adds_and_lifts(client: TestClient, shop: Bootstrap) -> None:
    admin = _html(shop.admin_token)
    page = client.get("/suppressions", headers=admin)
    assert page.status_code == 200
    assert "No identifier is suppressed" in page.text
    assert 'href="/audiences/low-nps"' in page.text  # the predefined suppression audience
    added = client.post(
        "/suppressions",
        data={"kind": ["email"], "value": ["TWO@example.com"], "reason": ["complaint"]},
        headers=admin,
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = client.get("/suppressions", headers=admin)
    assert "<code>two@example.com</code></td><td>complaint</td>" in page.text
    bad = client.post(
        "/suppressions",
        data={"kind": ["shoe"], "value": [""]},
        headers=admin,
        follow_redirects=False,
    )
    assert bad.status_code == 303 and "error=" in bad.headers["location"]
    assert "kind: must be one of" in client.get(bad.headers["location"], headers=admin).text
    lifted = client.post(
        "/suppressions/remove",
        data={"kind": ["email"], "value": ["two@example.com"]},
        headers=admin,
        follow_redirects=False,
    )
    assert lifted.status_code == 303 and "notice=" in lifted.headers["location"]
    assert "No identifier is suppressed" in client.get("/suppressions", headers=admin).text


def test_another_business_sees_none_of_the_pages_data(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    _save_pros(client, shop)
    admin = _html(shop.admin_token)
    client.post("/audiences/pros/refresh", headers=admin)
    client.post(
        "/suppressions",
        data={"kind": ["email"], "value": ["one@example.com"]},
        headers=admin,
    )
    other = _html(bootstrap(store, name="Other Business").admin_token)
    listing = client.get("/audiences", headers=other)
    assert listing.status_code == 200 and "/audiences/pros" not in listing.text
    for path in ("/audiences/pros", "/audiences/pros/export?destination=csv"):
        assert client.get(path, headers=other).status_code == 404, path
    client.get("/audiences", headers=other)  # the other business's predefined audiences
    compared = client.get("/audiences/purchased-30d?with=pros", headers=other)
    assert "audience &#39;pros&#39; not found" in compared.text
    assert 'id="overlap"' not in compared.text
    assert "one@example.com" not in client.get("/suppressions", headers=other).text
    assert client.post("/audiences/pros/refresh", headers=other).status_code == 404
    assert client.post("/audiences/pros/delete", headers=other).status_code == 404
    # The other business's estimate counts its own (empty) base only.
    checked = client.post(
        "/audiences/new/check", data=_form(text='did "Order Completed"'), headers=other
    )
    assert '<strong id="estimate-size">0</strong>' in checked.text
    assert client.get("/audiences/pros", headers=admin).status_code == 200


def test_pages_need_a_caller(client: TestClient) -> None:
    for path in ("/audiences", "/audiences/new", "/suppressions"):
        response = client.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
        assert response.status_code in (303, 401), path


def test_the_size_charts_follow_the_refreshes_and_rank_the_audiences() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    points = [SizePoint(at=start + timedelta(days=i), size=s) for i, s in enumerate([10, 30, 20])]
    history = size_chart(points)
    assert history.x == ["2026-11-01 00:00:00", "2026-11-02 00:00:00", "2026-11-03 00:00:00"]
    assert list(history.series[0].values) == [10, 30, 20]
    assert size_chart([]).is_empty()

    def view(slug: str, name: str, size: int | None) -> AudienceView:
        return AudienceView(
            id=slug,
            slug=slug,
            name=name,
            description="",
            definition={},
            text="",
            predefined=False,
            suppression=False,
            realtime=False,
            size=size,
            refreshed_at=None,
        )

    ranked = sizes_chart(
        [
            view("a", "Buyers", 5),
            view("b", "New", None),
            view("c", "Buyers", 9),
            view("d", "VIP", 7),
        ]
    )
    assert ranked.x == ["Buyers (c)", "VIP", "Buyers (a)"]
    assert list(ranked.series[0].values) == [9, 7, 5]


def test_a_signed_in_person_uses_the_forms_with_their_csrf_token(client: TestClient) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    checked = browser.submit("/audiences/new", "/audiences/new/check", _form(text='did "x"'))
    assert checked.status_code == 200
    assert '<strong id="estimate-size">0</strong>' in checked.text  # a new, empty business
    assert 'data-csrf="' in checked.text  # what the live estimate sends as X-CSRF-Token
    forged = client.post(
        "/audiences/new", data=_form(text='did "x"'), headers={"accept": "text/html"}
    )
    assert forged.status_code == 403
    saved = browser.submit("/audiences/new", "/audiences/new", _form(text='did "x"'))
    assert saved.status_code == 200 and "Audience saved" in saved.text
    assert browser.get("/audiences").text.count('href="/audiences/pros"') == 1


def test_detail_shows_webhook_destinations_and_parked_batches_to_replay_or_discard(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    admin = _html(shop.admin_token)
    api = {"Authorization": f"Bearer {shop.admin_token}"}
    _save_pros(client, shop)
    assert "No webhook destination" in client.get("/audiences/pros", headers=admin).text
    Grants({"u1": {"marketing"}}).record(store, shop.business_id)
    with (
        running_receiver() as refusing,
        running_receiver() as down,
        httpx.Client(timeout=5) as http,
    ):
        refusing.status, down.status = 410, 503
        for receiver in (refusing, down):
            added = client.post(
                "/api/audiences/pros/webhooks", headers=api, json={"url": receiver.url}
            )
            assert added.status_code == 201

        def deliver() -> None:
            destinations.deliver_webhooks(
                store,
                business_id=shop.business_id,
                client=http,
                sleep=lambda _seconds: None,
            )

        client.post("/audiences/pros/refresh", headers=admin)
        deliver()
        with store.write() as conn:
            [entry] = membership.changes(conn, business_id=shop.business_id, audience="pros")
            erasure.forget_profile(conn, business_id=shop.business_id, profile_id=entry.profile_id)
        deliver()

        page = client.get("/audiences/pros", headers=admin).text
        assert "failing 2 times" in page and "HTTP 503 after 5 attempts" in page
        assert "2 parked batches" in page and '<span class="badge ok">ok</span>' not in page
        assert 'id="parked-erasures">1 erasure notice parked' in page
        forms = re.findall(
            r'action="/audiences/pros/webhooks/dead-letters/(dlt_\w+)/(replay|discard)"'
            r'[^>]*><input type="hidden" name="csrf_token" value="[^"]+">',
            page,
        )
        ids = list(dict.fromkeys(found for found, _ in forms))
        assert len(ids) == 2 and len(forms) == 4
        entered, erased = ids
        assert "1 erasure notice in it will never reach them" in page

        still = client.post(
            f"/audiences/pros/webhooks/dead-letters/{entered}/replay",
            headers=admin,
            follow_redirects=False,
        )
        assert still.status_code == 303 and "error=" in still.headers["location"]
        shown = client.get(still.headers["location"], headers=admin).text
        assert "did not accept the message: refused with HTTP 410" in shown
        assert "2 parked batches" in shown

        refusing.status = 204
        other = _html(bootstrap(store, name="Other Business").admin_token)
        path = f"/audiences/pros/webhooks/dead-letters/{entered}/replay"
        assert client.post(path, headers=other).status_code == 404
        replayed = client.post(path, headers=admin, follow_redirects=False)
        assert replayed.status_code == 303 and "notice=" in replayed.headers["location"]
        assert "Replayed changes" in client.get(replayed.headers["location"], headers=admin).text
        # The same message; its body lost the erased person's entry meanwhile.
        [again] = refusing.accepted()
        assert again.headers["webhook-id"] == refusing.received[0].headers["webhook-id"]
        assert again.json()["changes"] == []
        discarded = client.post(
            f"/audiences/pros/webhooks/dead-letters/{erased}/discard",
            headers=admin,
            follow_redirects=False,
        )
        assert discarded.status_code == 303 and "notice=" in discarded.headers["location"]
    page = client.get("/audiences/pros", headers=admin).text
    assert 'id="dead-letters"' not in page and 'id="parked-erasures"' not in page
    assert "failing 2 times" in page
