"""Email pages of the admin UI over HTTP: templates with a sandboxed preview, lists,
campaigns with KPIs and A/B settings, KPIs over time, suppressions; bad input saves
nothing; businesses stay apart."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.store.db import Store
from accord.web.app import create_app
from tests.charts import chart
from tests.leads.test_landing_pages import FORM, admin
from tests.smtp_sink import SmtpSink, body_text, mail_settings


@pytest.fixture
def mail_client(settings: Settings, keys: Bootstrap, sink: SmtpSink) -> Iterator[TestClient]:
    configured = mail_settings(settings, sink, email_min_human_seconds=0)
    with TestClient(create_app(configured)) as test_client:
        yield test_client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "text/html"}


TEMPLATE = {
    "name": "spring news",
    "subject": "Spring for {{ contact.first_name | default('you') }}",
    "html": '<p>Hi {{ contact.first_name }}</p><a href="https://shop.example/new">New</a>',
    "text": "Hi {{ contact.first_name }}",
    "sample": '{"first_name": "Grace"}',
}


def _template(client: TestClient, keys: Bootstrap) -> str:
    saved = client.post(
        "/email/templates",
        data={**TEMPLATE, "action": "save"},
        headers=_auth(keys.admin_token),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    return str(saved.headers["location"]).split("?")[0].rsplit("/", 1)[1]


def _list(client: TestClient, keys: Bootstrap, name: str = "news") -> str:
    made = client.post(
        "/email/lists", data={"name": name}, headers=_auth(keys.admin_token), follow_redirects=False
    )
    assert made.status_code == 303
    return str(made.headers["location"]).split("?")[0].rsplit("/", 1)[1]


def _campaign_form(template_id: str, list_id: str, **changes: str) -> dict[str, str]:
    return {
        "name": "April news",
        "template_id": template_id,
        "from_address": "news@shop.example",
        "target": "list",
        "list_id": list_id,
        **changes,
    }


def test_preview_renders_through_the_sandbox_and_saves_nothing(
    client: TestClient, keys: Bootstrap
) -> None:
    # A preview needs no name yet.
    response = client.post(
        "/email/templates",
        data={**TEMPLATE, "name": "", "action": "preview"},
        headers=_auth(keys.admin_token),
    )
    assert response.status_code == 200
    assert "<strong>Subject:</strong> Spring for Grace" in response.text
    frame = re.search(r'<iframe title="HTML preview" sandbox="" srcdoc="([^"]*)"', response.text)
    assert frame and "<p>Hi Grace</p>" in html.unescape(frame.group(1))
    assert (
        "No templates yet" in client.get("/email/templates", headers=_auth(keys.admin_token)).text
    )


def test_an_invalid_template_is_explained_and_not_saved(
    client: TestClient, keys: Bootstrap
) -> None:
    for broken in ("<p>{% if contact.vip %}VIP</p>", "{{ contact.name | no_such_filter }}"):
        response = client.post(
            "/email/templates",
            data={**TEMPLATE, "html": broken, "action": "save"},
            headers=_auth(keys.admin_token),
        )
        assert response.status_code == 400
        assert "Nothing was saved" in response.text and "<code>html</code>" in response.text
    sample = client.post(
        "/email/templates",
        data={**TEMPLATE, "sample": "[1, 2]", "action": "save"},
        headers=_auth(keys.admin_token),
    )
    assert sample.status_code == 400 and "must be a JSON object" in sample.text
    assert (
        "No templates yet" in client.get("/email/templates", headers=_auth(keys.admin_token)).text
    )


def test_a_template_saved_as_a_new_one_keeps_the_first(client: TestClient, keys: Bootstrap) -> None:
    first = _template(client, keys)
    editor = client.get(f"/email/templates/{first}", headers=_auth(keys.admin_token))
    assert editor.status_code == 200 and "Save as a new template" in editor.text
    second = client.post(
        f"/email/templates/{first}",
        data={**TEMPLATE, "subject": "Changed", "action": "copy"},
        headers=_auth(keys.admin_token),
        follow_redirects=False,
    )
    assert second.status_code == 303 and first not in second.headers["location"]
    listing = client.get("/email/templates", headers=_auth(keys.admin_token)).text
    assert listing.count("spring news") == 2 and "Changed" in listing


def test_lists_members_and_suppressions(client: TestClient, keys: Bootstrap) -> None:
    list_id = _list(client, keys)
    added = client.post(
        f"/email/lists/{list_id}/members",
        data={"email": "Ada@People.example"},
        headers=_auth(keys.admin_token),
    )
    assert added.status_code == 200 and "<td>ada@people.example</td>" in added.text
    bad = client.post(
        f"/email/lists/{list_id}/members", data={"email": "ada@"}, headers=_auth(keys.admin_token)
    )
    assert "is not an email address" in bad.text
    suppressed = client.post(
        "/email/suppressions",
        data={"address": "ada@people.example"},
        headers=_auth(keys.admin_token),
    )
    assert "<td>ada@people.example</td><td>manual</td>" in suppressed.text
    members = client.get(f"/email/lists/{list_id}", headers=_auth(keys.admin_token)).text
    assert "<td>ada@people.example</td><td>manual</td>" in members
    lists = client.get("/email/lists", headers=_auth(keys.admin_token)).text
    assert f"<code>{list_id}</code></td><td>1</td>" in lists


def test_a_bad_campaign_is_explained_and_not_saved(client: TestClient, keys: Bootstrap) -> None:
    template_id = _template(client, keys)
    list_id = _list(client, keys)
    cases = [
        (_campaign_form(template_id, list_id, from_address="nobody"), "from_address"),
        (_campaign_form(template_id, list_id, target="audience", audience_id=""), "list_id"),
        (_campaign_form(template_id, list_id, due_at="tomorrow"), "due_at"),
        (_campaign_form(template_id, list_id, ab_enabled="on"), "variant B needs"),
        (_campaign_form("tpl_missing", list_id), "template tpl_missing"),
    ]
    for form, expected in cases:
        response = client.post("/email/campaigns", data=form, headers=_auth(keys.admin_token))
        assert response.status_code == 400, expected
        assert "Nothing was saved" in response.text and expected in response.text
    listing = client.get("/email/campaigns", headers=_auth(keys.admin_token))
    assert "No campaigns yet" in listing.text


def test_campaign_scheduled_with_an_ab_test(client: TestClient, keys: Bootstrap) -> None:
    template_id = _template(client, keys)
    list_id = _list(client, keys)
    created = client.post(
        "/email/campaigns",
        data=_campaign_form(
            template_id,
            list_id,
            due_at="2030-05-01T09:30",
            ab_enabled="on",
            ab_subject="Spring is here",
            ab_sample_share="0.3",
            ab_metric="human_opens",
        ),
        headers=_auth(keys.admin_token),
        follow_redirects=False,
    )
    assert created.status_code == 303
    detail = client.get(created.headers["location"], headers=_auth(keys.admin_token)).text
    assert "scheduled" in detail and "due 2030-05-01 09:30 UTC" in detail
    assert "subject “Spring is here”" in detail and "sample 30 %" in detail
    assert "each variant needs at least 100 deliveries" in detail
    where = created.headers["location"].split("?")[0]
    moved = client.post(
        f"{where}/schedule", data={"due_at": "2030-06-01T08:00"}, headers=_auth(keys.admin_token)
    )
    assert "Scheduled for 2030-06-01 08:00 UTC" in moved.text


def test_sent_campaign_shows_kpis_with_intervals_and_bands(
    mail_client: TestClient, keys: Bootstrap, sink: SmtpSink
) -> None:
    client = mail_client
    list_id = _list(client, keys)
    form = {**FORM, "list_id": list_id}
    assert client.post("/api/leads/forms", json=form, headers=admin(keys)).status_code == 201
    data = {"email": "yes@people.example", "name": "Yes", "size": "S"}
    submitted = client.post("/l/autumn-catalogue", data={**data, "consent_marketing": "yes"})
    assert submitted.status_code == 200
    link = re.search(r"http://testserver(/l/confirm/\S+)", body_text(sink.wait_for(data["email"])))
    assert link and client.get(link.group(1)).status_code == 200
    template_id = _template(client, keys)
    created = client.post(
        "/email/campaigns",
        data=_campaign_form(template_id, list_id),
        headers=_auth(keys.admin_token),
        follow_redirects=False,
    )
    where = created.headers["location"].split("?")[0]
    sink.messages.clear()
    tested = client.post(
        f"{where}/test", data={"to": "me@shop.example"}, headers=_auth(keys.admin_token)
    )
    assert "1 test messages sent" in tested.text
    assert sink.to("me@shop.example")[0]["Subject"].startswith("[Test A]")
    sent = client.post(f"{where}/send", headers=_auth(keys.admin_token))
    assert "1 sent, 0 failed" in sent.text
    delivery = sent.text.split('data-rate="delivery_rate"')[1].split("</tr>")[0]
    # 1 of 1 delivered: 100 %, Wilson interval 20.65–100 %, above the 90–95 % band.
    assert "100.00 %" in delivery and "20.65 % – 100.00 %" in delivery
    assert "90.00 % – 95.00 %" in delivery and "above" in delivery
    assert "Click-to-open" in sent.text and "Complaint" in sent.text
    counts = chart(sent.text, "Delivered, opened, clicked, bounced")
    assert counts.traces[0]["type"] == "bar"
    assert counts.traces[0]["x"][:2] == ["Sent", "Delivered"]
    assert counts.rows["Sent"] == ["1"] and counts.rows["Delivered"] == ["1"]
    assert counts.rows["Bounced"] == ["0"]
    over_time = client.get("/email/performance", headers=_auth(keys.admin_token))
    assert over_time.status_code == 200
    rates = chart(over_time.text, "Rates per day (UTC)")
    today = utcnow().date().isoformat()
    assert [t["name"] for t in rates.traces] == [
        "Human open",
        "Click-through",
        "Unsubscribe",
        "Bounce",
    ]
    assert rates.trace("Bounce")["y"] == [0.0] and rates.trace("Bounce")["x"] == [today]
    assert rates.trace("Bounce")["error_y"]["arrayminus"] == [0.0]
    assert rates.rows[today][3].startswith("0.0 % [0.0 % – ")
    # Nothing is fetched from elsewhere: no script, style or image from another site.
    assert not re.search(r'(src|href)="(https?:)?//', over_time.text)


def test_another_business_sees_none_of_it(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    template_id = _template(client, keys)
    list_id = _list(client, keys, "private list")
    created = client.post(
        "/email/campaigns",
        data=_campaign_form(template_id, list_id),
        headers=_auth(keys.admin_token),
        follow_redirects=False,
    )
    where = created.headers["location"].split("?")[0]
    other = _auth(bootstrap(store, name="Other Shop").admin_token)
    assert "No templates yet" in client.get("/email/templates", headers=other).text
    assert "No lists yet" in client.get("/email/lists", headers=other).text
    assert "No campaigns yet" in client.get("/email/campaigns", headers=other).text
    assert client.get(f"/email/templates/{template_id}", headers=other).status_code == 404
    assert client.get(f"/email/lists/{list_id}", headers=other).status_code == 404
    assert client.get(where, headers=other).status_code == 404
    # Nor can they act on our campaign or list, whatever they post.
    for action, form in (("test", {"to": "x"}), ("schedule", {"due_at": "x"}), ("send", {})):
        acted = client.post(f"{where}/{action}", data=form, headers=other, follow_redirects=False)
        assert acted.status_code == 404, action
    joined = client.post(f"/email/lists/{list_id}/members", data={"email": "x"}, headers=other)
    assert joined.status_code == 404
    # Their form cannot use our template or list either.
    theirs = client.post(
        "/email/campaigns", data=_campaign_form(template_id, list_id), headers=other
    )
    assert theirs.status_code == 400 and f"template {template_id}" in theirs.text
