"""Lead Ads exports in every encoding and delimiter, generic CSV, and the import report."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.collect.consent_gate import KeepEverything
from accord.collect.models import inbox
from accord.collect.service import limits_from
from accord.core.errors import InvalidInput
from accord.core.settings import Settings
from accord.leads import imports
from accord.leads.lead_ads import decode, read_lead_ads, read_mapped_csv
from accord.leads.models import lead_imports, leads
from accord.store.db import Store

FIXTURES = Path(__file__).parent / "fixtures"
EXPORTS = sorted(FIXTURES.glob("lead_ads_*"))


def test_there_is_an_export_per_encoding_and_delimiter() -> None:
    assert {p.name for p in EXPORTS} == {
        f"lead_ads_{enc}.{ext}" for enc in ("utf8", "utf8_bom", "utf16") for ext in ("csv", "tsv")
    }


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.name)
def test_every_export_reads_the_same(path: Path) -> None:
    rows = list(read_lead_ads(path.read_bytes()))
    assert len(rows) == 5
    first = rows[0]
    assert first.line == 2
    assert first.fields == {
        "email": "giulia.rossi@example.it",
        "name": "Giulia Rossi",
        "phone": "+393471234567",
        "company": "Rossi Sport",
    }
    assert first.ad["lead_id"] == "3001001"
    assert first.ad["campaign_id"] == "120220001" and first.ad["form_id"] == "880001"
    assert first.ad["ad_id"] == "120200001" and first.ad["adset_id"] == "120210001"
    assert first.ad["is_organic"] is False and first.ad["platform"] == "fb"
    assert first.answers == {
        "which_product_interests_you?": "Hiking boots",
        "when_do_you_plan_to_buy?": "Within a month",
    }
    assert rows[1].answers["which_product_interests_you?"] == "Tents, sleeping bags"
    assert rows[2].ad["is_organic"] is True and "campaign_id" not in rows[2].ad
    assert rows[3].fields["name"] == 'Anna Neri, "la scalatrice"'
    assert rows[4].fields["name"] == "Sofía Gallò" and rows[4].ad["platform"] == "ig"


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200))
def test_decode_reads_back_text_in_each_encoding(text: str) -> None:
    for raw in (
        text.encode("utf-8"),
        codecs.BOM_UTF8 + text.encode("utf-8"),
        text.encode("utf-16"),
        text.encode("utf-16-be") if not text else codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    ):
        assert decode(raw) == text


@given(
    st.lists(
        st.tuples(
            st.emails(),
            st.text(alphabet=st.characters(categories=("L", "Zs", "P")), max_size=30),
        ),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([",", "\t"]),
)
def test_mapped_csv_keeps_every_value(records: list[tuple[str, str]], delimiter: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["E-mail", "Notes"])
    writer.writerows(records)
    rows = list(read_mapped_csv(out.getvalue().encode("utf-16"), {"email": "E-mail"}))
    assert [r.fields.get("email") for r in rows] == [e for e, _ in records]
    assert [r.answers.get("Notes", "") for r in rows] == [n.strip() for _, n in records]


def test_a_file_that_is_not_an_export_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidInput) as caught:
        list(read_lead_ads(b"name,phone\nAda,123\n"))
    assert "no email column" in str(caught.value)
    with pytest.raises(InvalidInput):
        list(read_lead_ads(b"email\n\xff\xfe\xfd"))
    with pytest.raises(InvalidInput) as caught:
        list(read_mapped_csv(b"Mail\nx@example.com\n", {"email": "E-mail"}))
    assert "columns not in the file" in str(caught.value)


def test_import_adds_leads_reports_rejects_and_joins_the_identity_graph(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    rows = list(read_lead_ads((FIXTURES / "lead_ads_utf16.tsv").read_bytes()))
    report = imports.import_leads(
        store,
        business_id=keys.business_id,
        rows=rows,
        kind="lead_ads",
        name="Autumn leads",
        spend=250.0,
        gate=KeepEverything(),
        limits=limits_from(settings),
    )
    assert (report.read, report.added, report.updated) == (5, 3, 0)
    assert [(r["line"], r["field"]) for r in report.rejected] == [(4, "email"), (5, "phone")]
    with store.read() as conn:
        found = conn.execute(
            select(leads.c.email, leads.c.phone, leads.c.status, leads.c.answers).order_by(
                leads.c.email
            )
        ).all()
        events = [orjson.loads(p) for p in conn.execute(select(inbox.c.payload)).scalars()]
        saved = conn.execute(select(lead_imports)).one()
    assert [(f.email, f.phone, f.status) for f in found] == [
        ("giulia.rossi@example.it", "+393471234567", "imported"),
        ("marco.bianchi@example.it", "+390212345678", "imported"),
        ("sofia.gallo@example.com", "+447911123456", "imported"),
    ]
    assert orjson.loads(found[0].answers)["platform"] == "fb"
    assert sorted(e["traits"]["email"] for e in events) == [f.email for f in found]
    assert {e["type"] for e in events} == {"identify"}
    assert {e["messageId"] for e in events} >= {"lead_ads-3001001"}
    assert saved.spend == 250.0 and saved.rows_read == 5 and saved.leads_added == 3

    again = imports.import_leads(
        store,
        business_id=keys.business_id,
        rows=rows,
        kind="lead_ads",
        name="Autumn leads again",
        spend=None,
        gate=KeepEverything(),
        limits=limits_from(settings),
    )
    assert (again.added, again.updated) == (0, 3)
    with store.read() as conn:
        # The same Lead Ads ids make the same events: collection keeps them once.
        assert conn.execute(select(inbox.c.seq)).all().__len__() == 3
