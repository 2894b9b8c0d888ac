"""Businesses, assets, access checks, write keys and the audit log: what other contexts call.

Other contexts reach accounts only through this module: `audit` to record a change,
`register_asset` to make a new kind of asset (lead form, audience, journey, ...)
subject to the same permissions, and `check_asset` (through `Caller.require_asset`)
to act on one asset.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from accord.accounts import origins, permissions
from accord.accounts.models import (
    AccountEmail,
    Actor,
    AuditEntry,
    Bootstrap,
    BusinessIn,
    BusinessView,
    SourceRef,
    api_tokens,
    asset_grants,
    assets,
    audit_log,
    businesses,
    campaigns,
    invitations,
    login_attempts,
    memberships,
    partner_shares,
    sources,
    ui_sessions,
)
from accord.core.clock import utcnow
from accord.core.csvfile import csv_text
from accord.core.errors import (
    FieldProblem,
    InvalidInput,
    NotFound,
    OriginNotAllowed,
    UnknownWriteKey,
)
from accord.core.ids import hash_token, new_id, new_secret
from accord.core.signing import Signer
from accord.store.db import Store

DEFAULT_SOURCE_NAME = "Website"
BUSINESS_KINDS = ("advertiser", "agency")
TWO_FACTOR_POLICIES = ("none", "admins", "everyone")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "business"


def valid_email(value: str) -> bool:
    return len(value) <= 254 and EMAIL_PATTERN.match(value) is not None


# -- audit log -------------------------------------------------------------------------


def as_json(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, sort_keys=True)


def audit(
    conn: Connection,
    *,
    business_id: str,
    actor: Actor,
    action: str,
    asset: tuple[str, str] | None = None,
    before: object = None,
    after: object = None,
    ip: str | None = None,
) -> None:
    """Append one change to the business's audit log (in the caller's transaction)."""
    conn.execute(
        audit_log.insert().values(
            business_id=business_id,
            at=utcnow(),
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=actor.label,
            action=action,
            asset_kind=asset[0] if asset else None,
            asset_id=asset[1] if asset else None,
            before=as_json(before),
            after=as_json(after),
            ip=ip,
        )
    )


def audit_entries(
    conn: Connection,
    *,
    business_id: str,
    action: str | None = None,
    actor_id: str | None = None,
    asset_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    query = select(audit_log).where(audit_log.c.business_id == business_id)
    if action:
        query = query.where(audit_log.c.action.startswith(action))
    if actor_id:
        query = query.where(audit_log.c.actor_id == actor_id)
    if asset_id:
        query = query.where(audit_log.c.asset_id == asset_id)
    if since:
        query = query.where(audit_log.c.at >= since)
    if until:
        query = query.where(audit_log.c.at < until)
    rows = conn.execute(query.order_by(audit_log.c.id.desc()).limit(limit)).all()
    return [
        AuditEntry(
            id=r.id,
            at=r.at,
            actor_kind=r.actor_kind,
            actor_id=r.actor_id,
            actor_label=r.actor_label,
            action=r.action,
            asset_kind=r.asset_kind,
            asset_id=r.asset_id,
            before=json.loads(r.before) if r.before else None,
            after=json.loads(r.after) if r.after else None,
            ip=r.ip,
        )
        for r in rows
    ]


AUDIT_CSV_COLUMNS = (
    "id",
    "at",
    "actor_kind",
    "actor_id",
    "actor",
    "action",
    "asset_kind",
    "asset_id",
    "before",
    "after",
    "ip",
)


def audit_csv(entries: list[AuditEntry]) -> str:
    """The audit log as CSV, `before` and `after` as JSON text."""
    return csv_text(
        AUDIT_CSV_COLUMNS,
        (
            [
                e.id,
                e.at.isoformat(),
                e.actor_kind,
                e.actor_id or "",
                e.actor_label,
                e.action,
                e.asset_kind or "",
                e.asset_id or "",
                "" if e.before is None else as_json(e.before),
                "" if e.after is None else as_json(e.after),
                e.ip or "",
            ]
            for e in entries
        ),
    )


# -- businesses ------------------------------------------------------------------------


def create_business(
    conn: Connection, *, name: str, slug: str, details: BusinessIn | None = None
) -> str:
    business_id = new_id("biz")
    values: dict[str, Any] = {"id": business_id, "name": name, "slug": slug, "created_at": utcnow()}
    if details is not None:
        values.update(
            contact_email=details.contact_email,
            address=details.address,
            phone=details.phone,
            website=details.website,
            kind=details.kind,
        )
    conn.execute(businesses.insert().values(**values))
    return business_id


def check_business(details: BusinessIn) -> None:
    problems: list[FieldProblem] = []
    if not details.name.strip():
        problems.append(FieldProblem("name", "give the business a name"))
    if not valid_email(details.contact_email):
        problems.append(FieldProblem("contact_email", "not an email address"))
    if details.kind not in BUSINESS_KINDS:
        problems.append(FieldProblem("kind", "must be advertiser or agency"))
    if details.website and not details.website.startswith(("http://", "https://")):
        problems.append(FieldProblem("website", "must start with http:// or https://"))
    if problems:
        raise InvalidInput(problems)


def new_business(
    conn: Connection, *, details: BusinessIn, person_id: str, actor: Actor, ip: str | None
) -> str:
    """A business made by a person, who becomes its first admin."""
    check_business(details)
    slug = f"{slugify(details.name)[:80]}-{new_secret('', 4)[1:].lower()}"
    business_id = create_business(conn, name=details.name.strip(), slug=slug, details=details)
    conn.execute(
        memberships.insert().values(
            business_id=business_id, person_id=person_id, role="admin", created_at=utcnow()
        )
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="business.create",
        asset=("business", business_id),
        after=details.model_dump(),
        ip=ip,
    )
    return business_id


def _business_view(row: Any) -> BusinessView:
    return BusinessView(
        id=row.id,
        name=row.name,
        contact_email=row.contact_email,
        address=row.address,
        phone=row.phone,
        website=row.website,
        kind=row.kind,
        email_verified=row.email_verified_at is not None,
        two_factor_policy=row.two_factor_policy,
        created_at=row.created_at,
    )


def get_business(conn: Connection, *, business_id: str) -> BusinessView:
    row = conn.execute(select(businesses).where(businesses.c.id == business_id)).first()
    if row is None:
        raise NotFound("business")
    return _business_view(row)


def update_business(
    conn: Connection, *, business_id: str, details: BusinessIn, actor: Actor, ip: str | None
) -> BusinessView:
    check_business(details)
    before = get_business(conn, business_id=business_id)
    changes: dict[str, Any] = details.model_dump()
    if before.contact_email != details.contact_email:
        # A new address has to be confirmed again.
        changes["email_verified_at"] = None
    conn.execute(update(businesses).where(businesses.c.id == business_id).values(**changes))
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="business.update",
        asset=("business", business_id),
        before=before.model_dump(mode="json"),
        after=details.model_dump(),
        ip=ip,
    )
    return get_business(conn, business_id=business_id)


def set_postal_address(
    conn: Connection, *, business_id: str, address: str, actor: Actor, ip: str | None = None
) -> None:
    """Set only the business's postal address (the footer of its marketing email)."""
    before = get_business(conn, business_id=business_id)
    conn.execute(update(businesses).where(businesses.c.id == business_id).values(address=address))
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="business.update",
        asset=("business", business_id),
        before={"address": before.address},
        after={"address": address},
        ip=ip,
    )


def verification_email(
    secret: str, *, business_id: str, email: str, name: str, base_url: str, hours: int
) -> AccountEmail:
    """The email asking to confirm a business's contact address, with its signed link."""
    token = Signer(secret).dumps_timed("verify-email", f"{business_id}|{email}")
    link = f"{base_url}/confirm-email?token={token}"
    return AccountEmail(
        to=email,
        subject=f"Confirm the email address of {name} on Accord",
        text=(
            f"Someone asked to use this address as the contact email of {name} "
            f"on Accord.\n\nConfirm it by opening this link within {hours} hours:\n{link}\n"
        ),
        link=link,
    )


def confirm_email(conn: Connection, *, secret: str, token: str, hours: int) -> bool:
    """Mark the contact email verified if the link is genuine, unexpired and still current."""
    payload = Signer(secret).loads_timed_or_none(
        "verify-email", token, max_age_seconds=hours * 3600
    )
    if not isinstance(payload, str) or "|" not in payload:
        return False
    business_id, email = payload.split("|", 1)
    return mark_email_verified(conn, business_id=business_id, email=email)


def mark_email_verified(conn: Connection, *, business_id: str, email: str) -> bool:
    """Confirm the contact email if it is still the one the link was sent for."""
    result = conn.execute(
        update(businesses)
        .where(businesses.c.id == business_id, businesses.c.contact_email == email)
        .values(email_verified_at=utcnow())
    )
    if result.rowcount:
        audit(
            conn,
            business_id=business_id,
            actor=Actor(kind="system", label="email confirmation link"),
            action="business.email_verified",
            asset=("business", business_id),
            after={"contact_email": email},
        )
    return bool(result.rowcount)


def businesses_of(conn: Connection, *, person_id: str) -> list[tuple[BusinessView, str]]:
    rows = conn.execute(
        select(businesses, memberships.c.role)
        .join(memberships, memberships.c.business_id == businesses.c.id)
        .where(memberships.c.person_id == person_id)
        .order_by(businesses.c.name)
    ).all()
    return [(_business_view(r), r.role) for r in rows]


def role_of(conn: Connection, *, business_id: str, person_id: str) -> str | None:
    return conn.execute(
        select(memberships.c.role).where(
            memberships.c.business_id == business_id, memberships.c.person_id == person_id
        )
    ).scalar()


# -- assets (every kind) ---------------------------------------------------------------


def register_asset(
    conn: Connection, *, business_id: str, kind: str, name: str, asset_id: str | None = None
) -> str:
    """Make an asset of any kind known to permissions, partner shares and the audit log.

    A context that owns a new kind of asset (a lead form, an audience, a journey, ...)
    calls this in the transaction that creates it, with the id of its own row, and
    keeps its details in its own table keyed by that id.
    """
    asset_id = asset_id or new_id(kind[:8])
    conn.execute(
        assets.insert().values(
            id=asset_id, business_id=business_id, kind=kind, name=name, created_at=utcnow()
        )
    )
    return asset_id


def close_asset(conn: Connection, *, business_id: str, asset_id: str) -> None:
    conn.execute(
        update(assets)
        .where(
            assets.c.id == asset_id,
            assets.c.business_id == business_id,
            assets.c.closed_at.is_(None),
        )
        .values(closed_at=utcnow())
    )


@dataclass(frozen=True)
class Access:
    """Who acts, for which business, with which role: what access checks need."""

    business_id: str
    role: str
    person_id: str | None = None
    token_id: str | None = None
    # A token may be limited to fewer permissions than its role grants.
    scope: frozenset[str] | None = None


def _grants_of(conn: Connection, *, access: Access) -> dict[str, set[str]]:
    if access.person_id is None:
        return {}
    rows = conn.execute(
        select(asset_grants.c.asset_id, asset_grants.c.tasks).where(
            asset_grants.c.business_id == access.business_id,
            asset_grants.c.person_id == access.person_id,
        )
    ).all()
    return {r.asset_id: set(r.tasks.split()) for r in rows}


def permitted(conn: Connection, *, access: Access, permission: str) -> bool:
    """The one permission check: role, tasks held on any asset, and the token's scope."""
    if access.scope is not None and permission not in access.scope:
        return False
    tasks: set[str] = set()
    if not permissions.role_grants(access.role, permission):
        for held in _grants_of(conn, access=access).values():
            tasks |= held
    return permissions.allowed(access.role, tasks, permission)


def granted_permissions(conn: Connection, *, access: Access) -> frozenset[str]:
    """Every permission `permitted` grants this access, read with one query."""
    tasks: set[str] = set()
    for held in _grants_of(conn, access=access).values():
        tasks |= held
    return frozenset(
        p
        for p in permissions.PERMISSIONS
        if (access.scope is None or p in access.scope)
        and permissions.allowed(access.role, tasks, p)
    )


def check_asset(
    conn: Connection, *, access: Access, asset_id: str, kind: str | None, task: str
) -> str:
    """The owner business of an asset the caller may do `task` on; NotFound otherwise.

    An asset is reachable when the caller's business owns it or a partner share gives
    the caller's business that task on it; then the caller needs the task from their
    role (admins: all) or from a grant. Not reachable and not allowed look the same,
    so nobody learns that another business's asset exists.
    """
    row = conn.execute(select(assets).where(assets.c.id == asset_id)).first()
    if row is None or (kind is not None and row.kind != kind):
        raise NotFound(kind or "asset")
    accepted = permissions.accepted_tasks(row.kind, task)
    if row.business_id != access.business_id:
        shared = conn.execute(
            select(partner_shares.c.tasks).where(
                partner_shares.c.business_id == row.business_id,
                partner_shares.c.partner_business_id == access.business_id,
                partner_shares.c.asset_id == asset_id,
                partner_shares.c.revoked_at.is_(None),
            )
        ).scalar()
        if shared is None or not any(permissions.holds(shared.split(), t) for t in accepted):
            raise NotFound(row.kind if kind else "asset")
    if any(permissions.role_task_on(access.role, row.kind, t) for t in accepted):
        return str(row.business_id)
    grant = _grants_of(conn, access=access).get(asset_id, set())
    if any(permissions.holds(grant, t) for t in accepted):
        return str(row.business_id)
    raise NotFound(row.kind if kind else "asset")


def visible_assets(
    conn: Connection, *, access: Access, kind: str | None = None, task: str = "analyse"
) -> list[dict[str, Any]]:
    """Assets of (or shared with) the caller's business that the caller holds `task` on."""
    shared = select(partner_shares.c.asset_id).where(
        partner_shares.c.partner_business_id == access.business_id,
        partner_shares.c.revoked_at.is_(None),
    )
    query = select(assets).where(
        or_(assets.c.business_id == access.business_id, assets.c.id.in_(shared))
    )
    if kind:
        query = query.where(assets.c.kind == kind)
    rows = conn.execute(query.order_by(assets.c.kind, assets.c.name)).all()
    found = []
    for row in rows:
        try:
            check_asset(conn, access=access, asset_id=row.id, kind=row.kind, task=task)
        except NotFound:
            continue
        found.append(dict(row._mapping))
    return found


# -- pixels (tracking sources with write keys) -----------------------------------------


# Kinds of source that are pixels: installed on a site, an app or a server.
PIXEL_KINDS = ("web", "app", "server")


def create_source(conn: Connection, *, business_id: str, name: str, kind: str = "web") -> SourceRef:
    source_id = new_id("src")
    conn.execute(
        sources.insert().values(
            id=source_id,
            business_id=business_id,
            name=name,
            kind=kind,
            write_key=new_secret("wk", 18),
            enabled=True,
            created_at=utcnow(),
        )
    )
    # Sources that Accord itself writes through (forms, imports, journeys) are not
    # pixels: they need no install, grant no access and count against no limit.
    if kind in PIXEL_KINDS:
        register_asset(conn, business_id=business_id, kind="pixel", name=name, asset_id=source_id)
    return SourceRef(business_id=business_id, source_id=source_id)


def internal_source(conn: Connection, *, business_id: str, kind: str, name: str) -> SourceRef:
    """The business's one source of an internal kind (`journeys`, `import`, ...), created
    on first use."""
    found = conn.execute(
        select(sources.c.id).where(
            sources.c.business_id == business_id, sources.c.kind == kind, sources.c.name == name
        )
    ).scalar()
    if found is not None:
        return SourceRef(business_id=business_id, source_id=str(found))
    return create_source(conn, business_id=business_id, name=name, kind=kind)


def source_names(conn: Connection, *, business_id: str) -> dict[str, str]:
    """Source id → name, for every source of the business (pixels and internal ones)."""
    rows = conn.execute(
        select(sources.c.id, sources.c.name).where(sources.c.business_id == business_id)
    ).all()
    return {row.id: row.name for row in rows}


def campaign_names(conn: Connection, *, business_id: str) -> dict[str, str]:
    """Campaign id → name, for every ad-account campaign of the business."""
    rows = conn.execute(
        select(campaigns.c.id, campaigns.c.name).where(campaigns.c.business_id == business_id)
    ).all()
    return {row.id: row.name for row in rows}


# -- bootstrap and write keys ------------------------------------------------------------


def issue_admin_token(conn: Connection, *, business_id: str, name: str) -> str:
    """A new admin token; only its hash is kept, so this is the one time it is seen."""
    token = new_secret("adm", 24)
    conn.execute(
        api_tokens.insert().values(
            id=new_id("tok"),
            business_id=business_id,
            name=name,
            token_hash=hash_token(token),
            created_at=utcnow(),
            role="admin",
            permissions="",
        )
    )
    return token


def bootstrap(store: Store, *, name: str) -> Bootstrap:
    """Create, or find again, the business called `name` with its first source.

    Running it again returns the same business, source and write key; a new admin
    token is issued each time because the old one's plain text was never stored.
    """
    slug = slugify(name)
    with store.write() as conn:
        business_id = conn.execute(
            select(businesses.c.id).where(businesses.c.slug == slug)
        ).scalar()
        if business_id is None:
            business_id = create_business(conn, name=name, slug=slug)
        row = conn.execute(
            select(sources.c.id, sources.c.write_key)
            .where(sources.c.business_id == business_id)
            .order_by(sources.c.created_at, sources.c.id)
            .limit(1)
        ).first()
        if row is None:
            create_source(conn, business_id=business_id, name=DEFAULT_SOURCE_NAME)
            row = conn.execute(
                select(sources.c.id, sources.c.write_key).where(
                    sources.c.business_id == business_id
                )
            ).one()
        token = issue_admin_token(conn, business_id=business_id, name="bootstrap")
    return Bootstrap(
        business_id=business_id, source_id=row.id, write_key=row.write_key, admin_token=token
    )


def source_for_write_key(store: Store, write_key: str) -> SourceRef:
    with store.read() as conn:
        row = conn.execute(
            select(sources.c.business_id, sources.c.id, sources.c.allowed_origins).where(
                sources.c.write_key == write_key, sources.c.enabled.is_(True)
            )
        ).first()
    if row is None:
        raise UnknownWriteKey()
    return SourceRef(
        business_id=row.business_id,
        source_id=row.id,
        allowed_origins=origins.loaded(row.allowed_origins),
    )


def origin_allowed_anywhere(store: Store, origin: str) -> bool:
    """Whether some enabled pixel accepts browsers from `origin` (a CORS preflight carries
    no write key, so it can only be refused when no pixel at all would take it)."""
    with store.read() as conn:
        rows = conn.execute(
            select(sources.c.allowed_origins).where(sources.c.enabled.is_(True)).distinct()
        ).all()
    return any(origins.origin_allowed(origins.loaded(r.allowed_origins), origin) for r in rows)


@dataclass
class WriteKeyCache:
    """Remembers write-key lookups for a short time so collection skips a query per call."""

    store: Store
    ttl_seconds: float
    _entries: dict[str, tuple[float, SourceRef]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, write_key: str | None, *, origin: str | None = None) -> SourceRef:
        """The write key's source; a browser's `origin` (its Origin header) must be one
        the source allows. Every public route passes the request's Origin."""
        if not write_key:
            raise UnknownWriteKey()
        now = time.monotonic()
        hit = self._entries.get(write_key)
        if hit is not None and hit[0] > now:
            source = hit[1]
        else:
            source = source_for_write_key(self.store, write_key)
            with self._lock:
                self._entries[write_key] = (now + self.ttl_seconds, source)
        if not origins.origin_allowed(source.allowed_origins, origin):
            raise OriginNotAllowed(str(origin)[:200])
        return source

    def forget(self, write_key: str) -> None:
        """Drop a remembered key, so a pixel disabled through this process stops at once
        (other processes stop when their entry expires, within `ttl_seconds`)."""
        with self._lock:
            self._entries.pop(write_key, None)


@dataclass
class Purged:
    sessions: int
    invitations: int
    login_attempts: int


def purge_expired(conn: Connection, *, now: datetime, keep: timedelta) -> Purged:
    """Forget sign-in sessions and invitations that ended more than `keep` ago, and
    failed sign-ins older than that (the throttle only counts a short window)."""
    cutoff = now - keep
    sessions = conn.execute(
        delete(ui_sessions).where(
            or_(ui_sessions.c.expires_at < cutoff, ui_sessions.c.revoked_at < cutoff)
        )
    ).rowcount
    invited = conn.execute(
        delete(invitations).where(
            invitations.c.accepted_at.is_(None),
            or_(invitations.c.expires_at < cutoff, invitations.c.revoked_at < cutoff),
        )
    ).rowcount
    attempts = conn.execute(delete(login_attempts).where(login_attempts.c.at < cutoff)).rowcount
    return Purged(max(sessions, 0), max(invited, 0), max(attempts, 0))
