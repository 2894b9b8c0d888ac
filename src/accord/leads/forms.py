"""Lead forms: versions, public addresses, references to lists and coupon pools, embedding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from accord.accounts.models import SourceRef
from accord.accounts.service import create_source
from accord.consent.config import DEFAULT_PURPOSES, purpose_keys
from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.leads.i18n import localised
from accord.leads.models import (
    FormIn,
    coupon_pools,
    lead_forms,
)
from accord.messaging.lists import list_recipients


@dataclass(frozen=True)
class Form:
    id: str
    business_id: str
    version: int
    source: SourceRef
    spec: FormIn


def create_form(conn: Connection, *, business_id: str, data: FormIn) -> Form:
    _check_references(conn, business_id=business_id, data=data)
    if conn.execute(select(lead_forms.c.id).where(lead_forms.c.slug == data.slug)).first():
        raise Conflict(f"a form with the address {data.slug!r} exists")
    form_id = new_id("frm")
    source = create_source(conn, business_id=business_id, name=f"form {data.slug}", kind="form")
    now = utcnow()
    conn.execute(
        lead_forms.insert().values(
            id=form_id,
            business_id=business_id,
            slug=data.slug,
            source_id=source.source_id,
            version=1,
            definition=data.model_dump_json(),
            created_at=now,
            updated_at=now,
        )
    )
    return Form(form_id, business_id, 1, source, data)


def update_form(conn: Connection, *, business_id: str, form_id: str, data: FormIn) -> Form:
    """A changed form is a new version: consents given before keep the version they saw."""
    form = get_form(conn, business_id=business_id, form_id=form_id)
    _check_references(conn, business_id=business_id, data=data)
    if data.slug != form.spec.slug:
        raise InvalidInput([FieldProblem("slug", "a form's address cannot change")])
    conn.execute(
        update(lead_forms)
        .where(lead_forms.c.id == form_id)
        .values(version=form.version + 1, definition=data.model_dump_json(), updated_at=utcnow())
    )
    return Form(form.id, business_id, form.version + 1, form.source, data)


def _check_references(conn: Connection, *, business_id: str, data: FormIn) -> None:
    # A consent names one of the business's purposes (the standard four until it has its own).
    known = purpose_keys(conn, business_id=business_id) | {p.key for p in DEFAULT_PURPOSES}
    unknown = [
        FieldProblem(f"consents.{index}.purpose", f"{c.purpose!r} is not a consent purpose")
        for index, c in enumerate(data.consents)
        if c.purpose not in known
    ]
    if unknown:
        raise InvalidInput(unknown)
    if data.coupon_pool_id is not None:
        found = conn.execute(
            select(coupon_pools.c.id).where(
                coupon_pools.c.id == data.coupon_pool_id,
                coupon_pools.c.business_id == business_id,
            )
        ).first()
        if found is None:
            raise NotFound(f"coupon pool {data.coupon_pool_id}")
    if data.list_id is not None:
        list_recipients(conn, business_id=business_id, list_id=data.list_id)


def _form(row: Any) -> Form:
    return Form(
        id=row.id,
        business_id=row.business_id,
        version=row.version,
        source=SourceRef(business_id=row.business_id, source_id=row.source_id),
        spec=FormIn.model_validate_json(row.definition),
    )


def get_form(conn: Connection, *, business_id: str, form_id: str) -> Form:
    row = conn.execute(
        select(lead_forms).where(
            lead_forms.c.id == form_id, lead_forms.c.business_id == business_id
        )
    ).first()
    if row is None:
        raise NotFound(f"form {form_id}")
    return _form(row)


def form_by_slug(conn: Connection, *, slug: str) -> Form:
    """A public form by its address (the business comes from the form)."""
    row = conn.execute(select(lead_forms).where(lead_forms.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"form {slug}")
    return _form(row)


def embed_snippet(form: Form, *, base_url: str) -> str:
    title = localised(form.spec.title, "en").replace('"', "&quot;")
    return (
        f'<iframe src="{base_url}/l/{form.spec.slug}?embed=1" title="{title}" '
        'style="width:100%;min-height:640px;border:0" loading="lazy"></iframe>'
    )


def list_forms(conn: Connection, *, business_id: str) -> list[Form]:
    rows = conn.execute(
        select(lead_forms)
        .where(lead_forms.c.business_id == business_id)
        .order_by(lead_forms.c.created_at.desc())
    ).all()
    return [get_form(conn, business_id=business_id, form_id=row.id) for row in rows]
