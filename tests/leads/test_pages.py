"""Lead pages of the admin UI over HTTP: the form builder, form detail, leads, funnel,
coupons and imports; bad input is explained and saves nothing; businesses stay apart."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.store.db import Store
from tests.charts import chart

FIXTURES = Path(__file__).parent / "fixtures"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "text/html"}


def _builder_form(**changes: list[str]) -> dict[str, list[str]]:
    """What the builder posts for a two-language form with every kind of field."""
    form: dict[str, list[str]] = {
        "slug": ["spring-guide"],
        "languages": ["en, it"],
        "title_en": ["Get the spring guide"],
        "title_it": ["Ricevi la guida di primavera"],
        "welcome_en": ["Twelve walks for April."],
        "thank_you_en": ["Thanks! Check your inbox."],
        "privacy_policy_url": ["https://shop.example/privacy"],
        "next_url": ["https://shop.example/"],
        "from_address": ["hello@shop.example"],
        "double_opt_in": ["on"],
        "field_key": ["email", "name", "phone", "company", "level", "likes", "note", "utm_source"],
        "field_kind": [
            "email",
            "name",
            "phone",
            "company",
            "choice",
            "checkboxes",
            "text",
            "hidden",
        ],
        "field_label_en": ["Email", "Name", "Phone", "Company", "Level", "Likes", "Anything?", ""],
        "field_label_it": ["Email", "Nome", "Telefono", "Azienda", "Livello", "Ama", "Altro?", ""],
        "field_options": ["", "", "", "", "easy\nhard", "hills\nlakes", "", ""],
        "field_required": ["name", "level"],
        "consent_purpose": ["marketing"],
        "consent_start": ["unticked"],
        "consent_label_en": ["Email me walks and offers"],
        "consent_label_it": ["Inviatemi passeggiate e offerte"],
        "action": ["save"],
    }
    form.update(changes)
    return form


def _create(client: TestClient, keys: Bootstrap) -> str:
    response = client.post(
        "/leads/forms/new",
        data=_builder_form(),
        headers=_auth(keys.admin_token),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    found = re.match(r"/leads/forms/(frm[^?]+)\?", response.headers["location"])
    assert found
    return found.group(1)


def test_the_builder_saves_a_form_with_every_kind_of_field(
    client: TestClient, keys: Bootstrap
) -> None:
    form_id = _create(client, keys)
    detail = client.get(f"/leads/forms/{form_id}", headers=_auth(keys.admin_token))
    assert detail.status_code == 200
    assert "/l/spring-guide</a>" in detail.text
    assert "&lt;iframe src=" in detail.text and "/l/spring-guide?embed=1" in detail.text
    assert "version 1" in detail.text
    spec = client.get(f"/api/leads/forms/{form_id}/snippet", headers=_auth(keys.admin_token))
    assert spec.status_code == 200
    # The hosted page shows what the builder made, consent box unticked, in Italian too.
    page = client.get("/l/spring-guide", headers={"Accept-Language": "it"})
    assert "Ricevi la guida di primavera" in page.text and "Livello" in page.text
    box = re.search(r"<input[^>]*name=\"consent_marketing\"[^>]*>", page.text)
    assert box and "checked" not in box.group(0)
    assert 'name="utm_source"' in page.text and 'type="hidden"' in page.text


def test_saving_again_makes_a_new_version(client: TestClient, keys: Bootstrap) -> None:
    form_id = _create(client, keys)
    builder = client.get(f"/leads/forms/{form_id}/edit", headers=_auth(keys.admin_token))
    assert builder.status_code == 200 and "Save as version 2" in builder.text
    assert 'value="Ricevi la guida di primavera"' in builder.text
    saved = client.post(
        f"/leads/forms/{form_id}/edit",
        data=_builder_form(title_en=["The spring guide, new edition"]),
        headers=_auth(keys.admin_token),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    detail = client.get(saved.headers["location"], headers=_auth(keys.admin_token))
    assert "Saved as version 2" in detail.text and "The spring guide, new edition" in detail.text


def test_a_field_is_added_and_removed_without_saving(client: TestClient, keys: Bootstrap) -> None:
    added = client.post(
        "/leads/forms/new",
        data=_builder_form(
            new_field_key=["utm_campaign"], new_field_kind=["hidden"], remove_field=["note"]
        ),
        headers=_auth(keys.admin_token),
    )
    assert added.status_code == 200
    assert 'data-field="utm_campaign"' in added.text and 'data-field="note"' not in added.text
    listing = client.get("/leads/forms", headers=_auth(keys.admin_token))
    assert "No forms yet" in listing.text


def test_a_form_without_privacy_link_is_refused_and_nothing_saved(
    client: TestClient, keys: Bootstrap
) -> None:
    response = client.post(
        "/leads/forms/new",
        data=_builder_form(privacy_policy_url=[""]),
        headers=_auth(keys.admin_token),
    )
    assert response.status_code == 400
    assert "Nothing was saved" in response.text
    assert "a link to the privacy policy is required" in response.text
    # What was typed stays in the builder.
    assert 'value="Get the spring guide"' in response.text
    listing = client.get("/leads/forms", headers=_auth(keys.admin_token))
    assert "No forms yet" in listing.text


def test_a_pre_ticked_consent_box_is_refused(client: TestClient, keys: Bootstrap) -> None:
    response = client.post(
        "/leads/forms/new",
        data=_builder_form(consent_start=["ticked"]),
        headers=_auth(keys.admin_token),
    )
    assert response.status_code == 400
    assert "a consent box must start unticked" in response.text
    assert "consents.marketing" in response.text
    assert client.get("/l/spring-guide").status_code == 404


def test_model_rules_are_shown_next_to_the_field(client: TestClient, keys: Bootstrap) -> None:
    kinds = ["email", "email", "phone", "company", "choice", "checkboxes", "text", "hidden"]
    two_emails = client.post(
        "/leads/forms/new", data=_builder_form(field_kind=kinds), headers=_auth(keys.admin_token)
    )
    assert two_emails.status_code == 400
    assert "exactly one field of kind email" in two_emails.text
    bad_link = client.post(
        "/leads/forms/new",
        data=_builder_form(privacy_policy_url=["not a link"], field_key=["Email!"] + ["x"] * 7),
        headers=_auth(keys.admin_token),
    )
    assert bad_link.status_code == 400
    assert 'id="p-privacy_policy_url"' in bad_link.text
    # A field's problem is shown next to it, named by its key.
    assert 'id="p-fields-Email!"' in bad_link.text
    assert "No forms yet" in client.get("/leads/forms", headers=_auth(keys.admin_token)).text


def test_import_report_lead_list_and_funnel(client: TestClient, keys: Bootstrap) -> None:
    csv = (
        b"E-mail,Full name,Tel,Budget\n"
        b"ada@people.example,Ada,+39 333 123 4567,high\n"
        b"not-an-address,Bob,,low\n"
        b"cy@people.example,Cy,12,low\n"
    )
    response = client.post(
        "/leads/import",
        data={
            "kind": "csv",
            "name": "fair 2026",
            "spend": "30",
            "map_email": "E-mail",
            "map_name": "Full name",
            "map_phone": "Tel",
        },
        files={"file": ("fair.csv", csv, "text/csv")},
        headers=_auth(keys.admin_token),
    )
    assert response.status_code == 200, response.text
    report = response.text.split('id="report"')[1].split("</section>")[0]
    assert "3 rows read · 1 leads added" in report
    assert "<td>3</td><td>email</td>" in report and "<td>4</td><td>phone</td>" in report
    people = client.get("/leads/people", headers=_auth(keys.admin_token))
    assert "ada@people.example" in people.text and "awareness" in people.text
    per_day = chart(people.text, "New leads per day by source, last 30 days (UTC)")
    assert per_day.trace("CSV imports")["y"][-1] == 1
    funnel = client.get("/leads/funnel?by=import", headers=_auth(keys.admin_token))
    row = funnel.text.split("<td>fair 2026</td>")[1].split("</tr>")[0]
    assert "<td>1</td>" in row and "30.00" in row  # one lead, 30 spent: 30 per lead


def test_an_import_with_a_bad_mapping_adds_nothing(client: TestClient, keys: Bootstrap) -> None:
    response = client.post(
        "/leads/import",
        data={"kind": "csv", "name": "oops", "map_email": "Mail"},
        files={"file": ("x.csv", b"E-mail\nada@people.example\n", "text/csv")},
        headers=_auth(keys.admin_token),
    )
    assert response.status_code == 400
    assert "columns not in the file: [&#39;Mail&#39;]" in response.text
    assert "No imports yet" in response.text


def test_lead_ads_export_is_imported(client: TestClient, keys: Bootstrap) -> None:
    raw = (FIXTURES / "lead_ads_utf16.csv").read_bytes()
    response = client.post(
        "/leads/import",
        data={"kind": "lead_ads", "name": "spring ads"},
        files={"file": ("ads.csv", raw, "text/csv")},
        headers=_auth(keys.admin_token),
    )
    assert response.status_code == 200
    assert "leads added" in response.text and "spring ads" in response.text


def test_coupon_pools_and_downloads(client: TestClient, keys: Bootstrap) -> None:
    made = client.post(
        "/leads/magnets/pools",
        data={"name": "welcome", "codes": "W-1 W-2\nW-3"},
        headers=_auth(keys.admin_token),
    )
    assert made.status_code == 200 and "Pool welcome made with 3 codes" in made.text
    uploaded = client.post(
        "/leads/magnets/files",
        data={"name": "guide.pdf"},
        files={"file": ("g.pdf", b"%PDF-1.4 guide", "application/pdf")},
        headers=_auth(keys.admin_token),
    )
    assert uploaded.status_code == 200 and "guide.pdf uploaded" in uploaded.text
    assert "<td><code>guide.pdf</code></td><td>14</td>" in uploaded.text
    duplicate = client.post(
        "/leads/magnets/pools",
        data={"name": "dupes", "codes": "X X"},
        headers=_auth(keys.admin_token),
    )
    assert (
        "codes must be unique" in duplicate.text
        and "dupes" not in duplicate.text.split("<table>")[1].split("</table>")[0]
    )


def test_another_business_sees_none_of_it(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    form_id = _create(client, keys)
    client.post(
        "/leads/magnets/pools",
        data={"name": "secret-pool", "codes": "S-1"},
        headers=_auth(keys.admin_token),
    )
    other = bootstrap(store, name="Other Shop")
    headers = _auth(other.admin_token)
    assert "No forms yet" in client.get("/leads/forms", headers=headers).text
    assert client.get(f"/leads/forms/{form_id}", headers=headers).status_code == 404
    assert client.get(f"/leads/forms/{form_id}/edit", headers=headers).status_code == 404
    assert "secret-pool" not in client.get("/leads/magnets", headers=headers).text
    changed = client.post(f"/leads/forms/{form_id}/edit", data=_builder_form(), headers=headers)
    assert changed.status_code == 404
    assert (
        "version 1" in client.get(f"/leads/forms/{form_id}", headers=_auth(keys.admin_token)).text
    )


def test_reading_needs_a_token(client: TestClient) -> None:
    response = client.get("/leads/forms", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code in (302, 303, 401)
