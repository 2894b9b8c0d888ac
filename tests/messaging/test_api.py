"""Email over HTTP with the default wiring: leads' confirmed consent gates every send."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.web.app import create_app
from tests.leads.test_landing_pages import FORM, admin
from tests.smtp_sink import SmtpSink, body_text, mail_settings


@pytest.fixture
def app_client(settings: Settings, keys: Bootstrap, sink: SmtpSink) -> Iterator[TestClient]:
    # The test client answers within milliseconds of delivery.
    configured = mail_settings(settings, sink, email_min_human_seconds=0)
    with TestClient(create_app(configured)) as test_client:
        yield test_client


def _lead(client: TestClient, sink: SmtpSink, email: str, *, consent: bool, confirm: bool) -> None:
    data: dict[str, Any] = {"email": email, "name": email.split("@")[0], "size": "S"}
    if consent:
        data["consent_marketing"] = "yes"
    assert client.post("/l/autumn-catalogue", data=data).status_code == 200
    if confirm:
        message = sink.wait_for(email)
        link = re.search(r"http://testserver(/l/confirm/\S+)", body_text(message))
        assert link and client.get(link.group(1)).status_code == 200


def test_campaign_to_a_mixed_list_reaches_only_confirmed_consenting_people(
    app_client: TestClient, keys: Bootstrap, sink: SmtpSink
) -> None:
    headers = admin(keys)
    list_id = app_client.post("/api/email/lists", json={"name": "news"}, headers=headers).json()[
        "id"
    ]
    form = {**FORM, "list_id": list_id}
    assert app_client.post("/api/leads/forms", json=form, headers=headers).status_code == 201
    _lead(app_client, sink, "yes@people.example", consent=True, confirm=True)
    _lead(app_client, sink, "noconsent@people.example", consent=False, confirm=True)
    _lead(app_client, sink, "unconfirmed@people.example", consent=True, confirm=False)
    _lead(app_client, sink, "later@people.example", consent=True, confirm=True)
    # Someone added by hand: being on a list is not consent.
    added = app_client.post(
        f"/api/email/lists/{list_id}/members",
        json={"email": "imported@people.example", "traits": {"name": "Imp"}},
        headers=headers,
    )
    assert added.status_code == 204
    template = app_client.post(
        "/api/email/templates",
        json={
            "name": "news",
            "subject": "News for {{ contact.name | default('you') }}",
            "html": '<p>Hi</p><a href="https://shop.example/new">New in</a>',
        },
        headers=headers,
    ).json()["id"]

    def campaign(name: str) -> str:
        created = app_client.post(
            "/api/email/campaigns",
            json={
                "name": name,
                "template_id": template,
                "list_id": list_id,
                "from_address": "news@shop.example",
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    # Confirmed but bounced since: the SES webhook reports a permanent bounce.
    url = app_client.get("/api/email/webhooks/ses", headers=headers).json()["url"]
    first = campaign("first")
    sink.messages.clear()
    report = app_client.post(f"/api/email/campaigns/{first}/send", headers=headers).json()
    assert report["sent"] == 2 and report["skipped"] == {"no_consent": 2}
    assert sorted(r.envelope_to[0] for r in sink.messages) == [
        "later@people.example",
        "yes@people.example",
    ]
    to_later = sink.to("later@people.example")[0]
    ses = {
        "Type": "Notification",
        "Message": orjson.dumps(
            {
                "notificationType": "Bounce",
                "bounce": {
                    "bounceType": "Permanent",
                    "bouncedRecipients": [
                        {
                            "emailAddress": "later@people.example",
                            "status": "5.1.1",
                            "diagnosticCode": "smtp; 550 5.1.1 unknown",
                        }
                    ],
                },
                "mail": {
                    "headers": [{"name": "X-Accord-Message", "value": to_later["X-Accord-Message"]}]
                },
            }
        ).decode(),
    }
    hook = app_client.post(url.removeprefix("http://testserver"), content=orjson.dumps(ses))
    assert hook.json() == {"reports": 1, "matched": 1}
    assert (
        app_client.post(
            url.removeprefix("http://testserver")[:-3] + "xyz", content=orjson.dumps(ses)
        ).status_code
        == 400
    )

    # One-click unsubscribe exactly as a mailbox provider does it (RFC 8058).
    to_yes = sink.to("yes@people.example")[0]
    target = to_yes["List-Unsubscribe"].strip("<>").removeprefix("http://testserver")
    assert app_client.get(target).status_code == 200  # the preference page
    wrong = app_client.post(target, data={"something": "else"})
    assert wrong.status_code == 400
    done = app_client.post(
        target,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    assert 'id="unsubscribed"' in app_client.get(target).text

    # Opens and clicks through the public links.
    html = body_text(to_yes, "html")
    pixel = re.search(r'http://testserver(/e/o/[^"]+)"', html)
    click = re.search(r'http://testserver(/e/c/[^"]+)"', html)
    assert pixel and click
    human = {"User-Agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605 Safari/605"}
    gif = app_client.get(pixel.group(1), headers=human)
    assert gif.headers["content-type"] == "image/gif" and gif.content.startswith(b"GIF89a")
    redirect = app_client.get(click.group(1), headers=human, follow_redirects=False)
    assert (
        redirect.status_code == 302 and redirect.headers["location"] == "https://shop.example/new"
    )
    tampered = app_client.get(click.group(1)[:-2] + "zz", follow_redirects=False)
    assert tampered.status_code == 400 and tampered.json()["code"] == "invalid_link"

    kpis = app_client.get(f"/api/email/campaigns/{first}/kpis", headers=headers).json()
    assert (kpis["sent"], kpis["delivered"], kpis["bounces"]) == (2, 1, 1)
    assert (kpis["human_openers"], kpis["clickers"], kpis["unsubscribes"]) == (1, 1, 1)
    assert kpis["rates"]["delivery_rate"]["benchmark"] == [0.9, 0.95]
    by_day = app_client.get("/api/email/kpis?days=7", headers=headers).json()
    assert by_day[-1]["sent"] == 2

    second = campaign("second")
    sink.messages.clear()
    report = app_client.post(f"/api/email/campaigns/{second}/send", headers=headers).json()
    assert report["sent"] == 0
    assert report["skipped"] == {"no_consent": 2, "unsubscribed": 1, "bounced": 1}
    assert sink.messages == []
