"""The Imports page on SQLite and PostgreSQL: upload, preview, import with CSRF, the report
and its CSV, idempotent re-imports, consent from files in the ledger marked as imported,
saved mappings, permissions, the upload limit and bad mappings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accord.accounts import people, team
from accord.accounts.models import Actor, Bootstrap, InvitationIn
from accord.accounts.service import Access
from accord.collect.mapped import read_csv_bytes
from accord.collect.mapping import fit_preset
from accord.collect.mapping_form import fields_of
from accord.collect.models import import_uploads, inbox
from accord.consent.models import consent_records
from accord.core.settings import Settings
from accord.store.db import Store
from accord.web.app import create_app
from accord.web.auth import SESSION_COOKIE
from tests.accounts.ui import create_business, csrf_of, sign_up
from tests.conftest import opt_out_where_unknown

ORDERS = (
    b"order_id,customer_id,email,total,currency,created_at\n"
    b"o-1,u-1,ada@example.com,42.50,EUR,2026-10-01T09:05:00Z\n"
    b"o-2,u-2,bob@example.com,10,EUR,2026-10-02T09:05:00Z\n"
    b"o-3,u-3,,7,EUR,yesterday\n"
)
CRM = (
    b"contact_id,email,first_name,email_opt_in,opt_in_date,opt_in_source\n"
    b"c-1,ada@example.com,Ada,yes,2025-03-01,newsletter form\n"
    b"c-2,bob@example.com,Bob,no,2025-04-02,fair stand\n"
    b"c-3,cy@example.com,Cy,yes,,\n"
)
CMP = (
    b"subject,purposes,time,notice\n"
    b"anon-1,marketing=yes; statistics=no,2024-05-01T10:00:00Z,cookie banner v3\n"
    b"anon-2,statistics,2024-06-01T10:00:00Z,\n"
    b"anon-3,telepathy=yes,2024-06-01T10:00:00Z,\n"
    b"anon-4,marketing=yes,tomorrow,\n"
)
HTML = {"accept": "text/html"}


def _auth(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}", "Accept": "text/html"}


def _upload_id(html: str) -> str:
    found = re.search(r'name="upload_id" value="(upl_[0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def _inbox_count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def _preview(
    client: TestClient, headers: dict[str, str], raw: bytes, choice: str, **data: str
) -> httpx.Response:
    return client.post(
        "/imports/preview",
        data={"choice": choice, **data},
        files={"file": ("data.csv", raw, "text/csv")},
        headers=headers,
    )


def _run(
    client: TestClient, headers: dict[str, str], raw: bytes, preset: str, **data: str
) -> httpx.Response:
    """Upload, preview with a preset, then import with the fields the preview shows."""
    preview = _preview(client, headers, raw, f"preset:{preset}", **data)
    assert preview.status_code == 200, preview.text
    fields = fields_of(fit_preset(preset, read_csv_bytes(raw).header))
    return client.post(
        "/imports/run",
        data={**fields, **data, "upload_id": _upload_id(preview.text), "mapping_label": preset},
        headers=headers,
        follow_redirects=True,
    )


def test_preview_then_import_through_the_ui_with_csrf(client: TestClient, store: Store) -> None:
    browser = sign_up(client, "ann@shop.test")
    create_business(browser)
    page = browser.get("/imports")
    assert page.status_code == 200
    assert 'href="/imports"' in page.text  # in the navigation
    token = csrf_of(page.text)
    with_csrf = {"csrf_token": token}

    refused = _preview(client, HTML, ORDERS, "preset:ecommerce_orders")
    assert refused.status_code == 403  # no CSRF token, nothing staged
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(import_uploads)).scalar_one() == 0

    preview = _preview(client, HTML, ORDERS, "preset:ecommerce_orders", **with_csrf)
    assert preview.status_code == 200, preview.text
    table = preview.text.split('id="preview"')[1]
    assert table.count('class="badge ok">imported') == 2
    assert "<strong>timestamp</strong>: &#39;yesterday&#39; is not an ISO 8601 time" in table
    assert "Order Completed" in table and "ada@example.com" in table
    assert _inbox_count(store) == 0  # a preview stores nothing

    done = _run(client, HTML, ORDERS, "ecommerce_orders", **with_csrf)
    assert done.status_code == 200, done.text
    counts = done.text.split('id="counts"')[1].split("</div>\n<section")[0]
    assert re.search(
        r'<span class="value">2</span><span class="label">events accepted \(2 stored', counts
    )
    assert re.search(r'<span class="value">1</span><span class="label">rows rejected', counts)
    assert "<td>4</td><td>timestamp</td>" in done.text
    assert "data-chart=" in done.text  # the chart, with its table
    assert _inbox_count(store) == 2
    report_id = re.search(r'href="/imports/(imp_[0-9a-f]+)/rejected.csv"', done.text)
    assert report_id
    download = client.get(f"/imports/{report_id.group(1)}/rejected.csv")
    assert download.headers["content-type"].startswith("text/csv")
    assert download.text.splitlines() == [
        "row,field,reason",
        "4,timestamp,'yesterday' is not an ISO 8601 time",
    ]

    again = _run(client, HTML, ORDERS, "ecommerce_orders", **with_csrf)
    assert "2 already stored" in again.text
    assert _inbox_count(store) == 2  # re-importing is idempotent
    listing = browser.get("/imports")
    assert listing.text.count('href="/imports/imp_') == 2


def test_crm_opt_in_becomes_ledger_records_marked_imported(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    # The contacts' identify events carry no location; this business keeps them under the
    # opt-out regime, as its rule for unknown locations ("XX") says (item 19: the default
    # there is the strictest regime, where Ada's marketing opt-in alone would not keep them).
    opt_out_where_unknown(store, keys.business_id)
    done = _run(client, _auth(keys), CRM, "crm_contacts")
    assert done.status_code == 200, done.text
    assert re.search(r'<span class="value">2</span><span class="label">consent records', done.text)
    # Row 4 states a decision without its date: rejected whole, nothing of it stored.
    assert "<td>4</td><td>consent.date</td>" in done.text
    with store.read() as conn:
        records = conn.execute(
            select(consent_records).where(consent_records.c.business_id == keys.business_id)
        ).all()
        stored = [orjson.loads(p) for p in conn.execute(select(inbox.c.payload)).scalars()]
    assert {r.user_id for r in records} == {"c-1", "c-2"}
    assert {e["userId"] for e in stored} == {"c-1", "c-2"}
    ada = next(r for r in records if r.user_id == "c-1")
    assert ada.source == "import"
    assert orjson.loads(ada.purposes)["marketing"] is True
    assert ada.recorded_at.isoformat().startswith("2025-03-01T00:00:00")
    assert orjson.loads(ada.imported)["from"] == "newsletter form (data.csv)"
    again = _run(client, _auth(keys), CRM, "crm_contacts")
    assert re.search(r'<span class="value">0</span><span class="label">consent records', again.text)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(consent_records)).scalar_one() == 2


def test_prior_cmp_records_are_recorded_as_imported_once(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    def post() -> httpx.Response:
        return client.post(
            "/imports/consent-records",
            data={"origin": "OldCMP", "subject_kind": "anonymous_id"},
            files={"file": ("records.csv", CMP, "text/csv")},
            headers=_auth(keys),
        )

    first = post()
    assert first.status_code == 200, first.text
    report = first.text.split('id="prior-report"')[1]
    assert re.search(r'<span class="value">2</span><span class="label">records added', report)
    assert "<td>4</td><td>purposes.telepathy</td><td>unknown purpose</td>" in first.text
    assert "<td>5</td><td>time</td>" in first.text
    with store.read() as conn:
        rows = conn.execute(select(consent_records).order_by(consent_records.c.position)).all()
    assert [r.anonymous_id for r in rows] == ["anon-1", "anon-2"]
    assert all(r.source == "import" for r in rows)
    marker = orjson.loads(rows[0].imported)
    assert marker["from"] == "OldCMP" and marker["notice"] == "cookie banner v3"
    assert orjson.loads(rows[0].purposes) == {
        "marketing": True,
        "statistics": False,
        "necessary": True,
    }

    from accord.consent import ledger, proof

    with store.read() as conn:
        assert ledger.verify(conn, business_id=keys.business_id).ok
        built = proof.build(conn, business_id=keys.business_id, subject="anon-1")
    assert built["records"][0]["record"]["imported"]["from"] == "OldCMP"
    html = proof.render_html(built)
    assert "<strong>imported</strong> from\n OldCMP" in html and "cookie banner v3" in html

    second = post()
    assert re.search(r'<span class="value">2</span><span class="label">already', second.text)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(consent_records)).scalar_one() == 2


def test_a_saved_mapping_is_reused_and_a_bad_mapping_is_refused_by_field(
    client: TestClient, keys: Bootstrap
) -> None:
    preview = _preview(client, _auth(keys), ORDERS, "custom")
    assert preview.status_code == 200  # a fresh file: the empty form, no problems yet
    upload_id = _upload_id(preview.text)
    bad = client.post(
        "/imports/preview",
        data={"upload_id": upload_id, "call": "track", "user_id": "customer_id"},
        headers=_auth(keys),
    )
    assert bad.status_code == 400
    assert 'id="p-event"' in bad.text and 'value="customer_id"' in bad.text  # kept as typed
    missing = client.post(
        "/imports/preview",
        data={"upload_id": upload_id, "call": "identify", "email": "Mail"},
        headers=_auth(keys),
    )
    assert missing.status_code == 400
    assert "the file has no column &#39;Mail&#39;" in missing.text.split('id="p-email"')[1][:80]
    refused = client.post(
        "/imports/run",
        data={"upload_id": upload_id, "call": "identify", "email": "Mail"},
        headers=_auth(keys),
    )
    assert refused.status_code == 400

    fields = {"call": "identify", "user_id": "customer_id", "email": "email"}
    saved = client.post(
        "/imports/mappings",
        data={**fields, "upload_id": upload_id, "mapping_name": "shop customers"},
        headers=_auth(keys),
    )
    assert saved.status_code == 200, saved.text
    assert "Mapping &#39;shop customers&#39; saved" in saved.text
    reused = _preview(client, _auth(keys), ORDERS, "saved:shop customers")
    assert reused.status_code == 200
    assert reused.text.count('class="badge ok">imported') == 3
    assert "shop customers" in client.get("/imports", headers=_auth(keys)).text


def test_an_employee_without_the_task_is_refused_and_nothing_changes(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    actor = Actor(kind="system", label="test")
    with store.write() as conn:
        person = people.sign_up(conn, email="emp@shop.test", name="Emp", password="p" * 12)
        invite = team.invite(
            conn,
            business_id=keys.business_id,
            data=InvitationIn(email=person.email, role="employee"),
            invited_by=None,
            days=7,
            by=Access(business_id=keys.business_id, role="admin"),
            actor=actor,
            ip=None,
        )
        team.accept_invitation(conn, token=invite.token, person_id=person.id, ip=None)
        token = people.start_session(conn, person_id=person.id, stage="full", ip=None, hours=1)
        session = people.session_for(conn, token=token)
    assert session is not None
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/imports", headers=HTML).status_code == 403
    posted = client.post(
        "/imports/preview",
        data={"choice": "preset:ecommerce_orders", "csrf_token": session.csrf_token},
        files={"file": ("o.csv", ORDERS, "text/csv")},
        headers=HTML,
    )
    assert posted.status_code == 403
    cmp = client.post(
        "/imports/consent-records",
        data={"origin": "X", "csrf_token": session.csrf_token},
        files={"file": ("c.csv", CMP, "text/csv")},
        headers=HTML,
    )
    assert cmp.status_code == 403
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(import_uploads)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(consent_records)).scalar_one() == 0
    assert _inbox_count(store) == 0


@pytest.fixture
def small_limit(settings: Settings, keys: Bootstrap) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"max_import_bytes": 600})
    with TestClient(create_app(limited)) as test_client:
        yield test_client


def test_an_oversize_upload_is_refused_with_413_before_anything_is_kept(
    small_limit: TestClient, keys: Bootstrap, store: Store
) -> None:
    big = ORDERS + b"o-9,u-9,x@example.com,1,EUR,2026-10-01T09:05:00Z\n" * 20
    response = _preview(small_limit, _auth(keys), big, "preset:ecommerce_orders")
    assert response.status_code == 413
    assert "ACCORD_MAX_IMPORT_BYTES" in response.text
    fits = _preview(small_limit, _auth(keys), ORDERS, "preset:ecommerce_orders")
    assert fits.status_code == 200
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(import_uploads)).scalar_one() == 1


def _rows(html: str) -> list[Any]:
    return re.findall(r'<tr data-row="(\d+)">', html)


def test_a_receipt_file_previews_one_event_per_receipt(client: TestClient, keys: Bootstrap) -> None:
    raw = (
        b"store_id,receipt_id,sku,quantity,unit_price,total,currency,time\n"
        b"S1,R1,a,2,1.50,5.00,EUR,2026-10-01T10:00:00Z\n"
        b"S1,R1,b,1,2,,,\n"
        b"S1,R2,c,1,4,4,EUR,2026-10-01T11:00:00Z\n"
    )
    preview = _preview(client, _auth(keys), raw, "preset:pos_receipts")
    assert preview.status_code == 200, preview.text
    assert _rows(preview.text) == ["2", "4"]
    assert "<td>2, 3</td>" in preview.text
