"""Email templates: sandboxed Jinja2, CSS inlined into the HTML, stored per business."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import css_inline
from jinja2 import ChainableUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import Connection, or_, select, update

from accord.accounts.models import Actor
from accord.accounts.service import audit
from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.messaging.models import TemplateIn, TemplatePatch, email_campaigns, email_templates

# Campaigns in these states have sent with their templates, which then stay as they were.
SENT_STATUSES = ("sending", "testing", "sent")

# A missing trait renders as nothing (or its `default(...)`), never as an error,
# because profiles rarely hold every trait a marketer writes into a template.
_HTML_ENV = SandboxedEnvironment(autoescape=True, undefined=ChainableUndefined)
_TEXT_ENV = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)
_INLINER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledTemplate:
    subject: Template
    html: Template
    text: Template

    def render(self, context: Mapping[str, Any]) -> RenderedEmail:
        try:
            subject = " ".join(self.subject.render(context).split())
            html = _INLINER.inline(self.html.render(context))
            text = self.text.render(context)
        except TemplateError as exc:  # the sandbox refused something, or a filter failed
            raise InvalidInput([FieldProblem("template", f"cannot render: {exc}")]) from exc
        return RenderedEmail(subject=subject, html=html, text=text)


def compile_template(*, subject: str, html: str, text: str) -> CompiledTemplate:
    """Parse once per campaign; errors name the part of the template at fault."""
    problems: list[FieldProblem] = []
    compiled: dict[str, Template] = {}
    for name, source, env in (
        ("subject", subject, _TEXT_ENV),
        ("html", html, _HTML_ENV),
        ("text", text, _TEXT_ENV),
    ):
        try:
            compiled[name] = env.from_string(source)
        except TemplateError as exc:
            problems.append(FieldProblem(name, f"template error: {exc}"))
    if problems:
        raise InvalidInput(problems)
    return CompiledTemplate(**compiled)


def personalisation(traits: Mapping[str, Any], *, email: str) -> dict[str, Any]:
    """The names templates see: `contact` (profile traits) and `email`."""
    contact = {str(k): v for k, v in traits.items()}
    contact.setdefault("email", email)
    return {"contact": contact, "email": email}


def create_template(conn: Connection, *, business_id: str, data: TemplateIn) -> str:
    compile_template(subject=data.subject, html=data.html, text=data.text)
    template_id = new_id("tpl")
    conn.execute(
        email_templates.insert().values(
            id=template_id, business_id=business_id, created_at=utcnow(), **data.model_dump()
        )
    )
    return template_id


def campaigns_sent_with(conn: Connection, *, business_id: str, template_id: str) -> list[str]:
    """Names of the campaigns that sent (or are sending) this template, as A or as B."""
    return list(
        conn.execute(
            select(email_campaigns.c.name)
            .where(
                email_campaigns.c.business_id == business_id,
                email_campaigns.c.status.in_(SENT_STATUSES),
                or_(
                    email_campaigns.c.template_id == template_id,
                    email_campaigns.c.ab_test.contains(f'"{template_id}"'),
                ),
            )
            .order_by(email_campaigns.c.created_at)
        ).scalars()
    )


def update_template(
    conn: Connection,
    *,
    business_id: str,
    template_id: str,
    data: TemplateIn,
    actor: Actor,
    ip: str | None,
) -> None:
    """Change a template in place, after the sandbox's parse check.

    Draft and scheduled campaigns then send the new version. A template a campaign has
    sent with is refused (`Conflict`): what was sent stays on record; save a new
    template instead.
    """
    row = get_template(conn, business_id=business_id, template_id=template_id)
    sent = campaigns_sent_with(conn, business_id=business_id, template_id=template_id)
    if sent:
        raise Conflict(
            f"template {template_id} was sent by {', '.join(sent)}; "
            "save the changes as a new template"
        )
    compile_template(subject=data.subject, html=data.html, text=data.text)
    after = data.model_dump()
    before = {k: getattr(row, k) for k in after}
    changed = {k for k in after if after[k] != before[k]}
    if not changed:
        return
    conn.execute(
        update(email_templates)
        .where(email_templates.c.id == template_id, email_templates.c.business_id == business_id)
        .values(**after)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="email_template.update",
        asset=("email_template", template_id),
        before={k: before[k] for k in sorted(changed)},
        after={k: after[k] for k in sorted(changed)},
        ip=ip,
    )


def patch_template(
    conn: Connection,
    *,
    business_id: str,
    template_id: str,
    patch: TemplatePatch,
    actor: Actor,
    ip: str | None,
) -> TemplateIn:
    """`update_template` with the parts `patch` sets over the stored ones; the result."""
    row = get_template(conn, business_id=business_id, template_id=template_id)
    stored = {k: getattr(row, k) for k in TemplateIn.model_fields}
    given = {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
    data = TemplateIn(**{**stored, **given})
    update_template(
        conn, business_id=business_id, template_id=template_id, data=data, actor=actor, ip=ip
    )
    return data


def get_template(conn: Connection, *, business_id: str, template_id: str) -> Any:
    """The stored template (its row), of this business only."""
    row = conn.execute(
        select(email_templates).where(
            email_templates.c.id == template_id, email_templates.c.business_id == business_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"template {template_id}")
    return row


def load_template(conn: Connection, *, business_id: str, template_id: str) -> CompiledTemplate:
    row = get_template(conn, business_id=business_id, template_id=template_id)
    return compile_template(subject=row.subject, html=row.html, text=row.text)


def list_templates(conn: Connection, *, business_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(email_templates)
            .where(email_templates.c.business_id == business_id)
            .order_by(email_templates.c.created_at.desc())
        ).all()
    )
