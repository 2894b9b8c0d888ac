"""People of a business: roles, asset tasks, invitations, partners and the security centre.
Changes that give or take access are checked by `ceiling`: nobody grants more than they hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from accord.accounts import ceiling, permissions
from accord.accounts.models import (
    AccountEmail,
    Actor,
    InvitationIn,
    InvitationView,
    MemberView,
    PartnerShareIn,
    PartnerShareView,
    asset_grants,
    assets,
    businesses,
    invitations,
    memberships,
    partner_shares,
    people,
)
from accord.accounts.people import normal_email, revoke_everything_of
from accord.accounts.service import (
    TWO_FACTOR_POLICIES,
    Access,
    audit,
    get_business,
    valid_email,
)
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import hash_token, new_id, new_secret


def _tasks_problems(tasks: list[str], field: str) -> list[FieldProblem]:
    return [FieldProblem(field, f"unknown task {t!r}") for t in tasks if t not in permissions.TASKS]


def _check_role(role: str) -> list[FieldProblem]:
    if role not in permissions.ROLES:
        return [FieldProblem("role", f"one of {', '.join(permissions.ROLES)}")]
    return []


def _own_assets(conn: Connection, *, business_id: str, asset_ids: list[str]) -> list[FieldProblem]:
    """Grants may name the business's own assets and those partners share with it."""
    shared = select(partner_shares.c.asset_id).where(
        partner_shares.c.partner_business_id == business_id,
        partner_shares.c.revoked_at.is_(None),
    )
    found = set(
        conn.execute(
            select(assets.c.id).where(
                assets.c.id.in_(asset_ids),
                (assets.c.business_id == business_id) | assets.c.id.in_(shared),
            )
        ).scalars()
    )
    return [
        FieldProblem("grants", f"no asset {a!r} in this business")
        for a in asset_ids
        if a not in found
    ]


def count_admins(conn: Connection, *, business_id: str) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                memberships.c.business_id == business_id, memberships.c.role == "admin"
            )
        ).scalar_one()
    )


# -- members and grants ----------------------------------------------------------------


def members(conn: Connection, *, business_id: str) -> list[MemberView]:
    rows = conn.execute(
        select(people, memberships.c.role)
        .join(memberships, memberships.c.person_id == people.c.id)
        .where(memberships.c.business_id == business_id)
        .order_by(people.c.email)
    ).all()
    grants: dict[str, dict[str, list[str]]] = {}
    for g in conn.execute(
        select(asset_grants).where(asset_grants.c.business_id == business_id)
    ).all():
        grants.setdefault(g.person_id, {})[g.asset_id] = g.tasks.split()
    return [
        MemberView(
            person_id=r.id,
            email=r.email,
            name=r.name,
            role=r.role,
            two_factor=r.totp_enabled_at is not None,
            grants=grants.get(r.id, {}),
        )
        for r in rows
    ]


def _member(conn: Connection, *, business_id: str, person_id: str) -> MemberView:
    for member in members(conn, business_id=business_id):
        if member.person_id == person_id:
            return member
    raise NotFound("person")


def set_role(
    conn: Connection,
    *,
    business_id: str,
    person_id: str,
    role: str,
    by: Access,
    actor: Actor,
    ip: str | None,
) -> MemberView:
    before = _member(conn, business_id=business_id, person_id=person_id)
    if problems := _check_role(role):
        raise InvalidInput(problems)
    ceiling.check_role(conn, by=by, role=before.role)
    ceiling.check_role(conn, by=by, role=role)
    if (
        before.role == "admin"
        and role != "admin"
        and count_admins(conn, business_id=business_id) <= 1
    ):
        raise InvalidInput([FieldProblem("role", "a business keeps at least one admin")])
    conn.execute(
        update(memberships)
        .where(memberships.c.business_id == business_id, memberships.c.person_id == person_id)
        .values(role=role)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="person.role",
        asset=("person", person_id),
        before={"role": before.role},
        after={"role": role},
        ip=ip,
    )
    return _member(conn, business_id=business_id, person_id=person_id)


def set_grants(
    conn: Connection,
    *,
    business_id: str,
    person_id: str,
    grants: dict[str, list[str]],
    by: Access,
    actor: Actor,
    ip: str | None,
) -> MemberView:
    """Replace the tasks a person holds on assets (an empty list removes the asset)."""
    before = _member(conn, business_id=business_id, person_id=person_id)
    problems = _own_assets(conn, business_id=business_id, asset_ids=list(grants))
    for tasks in grants.values():
        problems += _tasks_problems(tasks, "grants")
    if problems:
        raise InvalidInput(problems)
    changed = {
        asset_id: set(before.grants.get(asset_id, [])) ^ set(grants.get(asset_id, []))
        for asset_id in set(before.grants) | set(grants)
    }
    ceiling.check_tasks(conn, by=by, grants=changed)
    conn.execute(
        delete(asset_grants).where(
            asset_grants.c.business_id == business_id, asset_grants.c.person_id == person_id
        )
    )
    rows = [
        {
            "business_id": business_id,
            "person_id": person_id,
            "asset_id": a,
            "tasks": " ".join(sorted(set(t))),
        }
        for a, t in grants.items()
        if t
    ]
    if rows:
        conn.execute(asset_grants.insert(), rows)
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="person.grants",
        asset=("person", person_id),
        before=before.grants,
        after={a: sorted(set(t)) for a, t in grants.items() if t},
        ip=ip,
    )
    return _member(conn, business_id=business_id, person_id=person_id)


def remove_person(
    conn: Connection,
    *,
    business_id: str,
    person_id: str,
    by: Access,
    actor: Actor,
    ip: str | None,
) -> None:
    """Take a person out of the business; their sessions end and their tokens stop working."""
    before = _member(conn, business_id=business_id, person_id=person_id)
    ceiling.check_role(conn, by=by, role=before.role)
    if before.role == "admin" and count_admins(conn, business_id=business_id) <= 1:
        raise InvalidInput([FieldProblem("person", "a business keeps at least one admin")])
    conn.execute(
        delete(asset_grants).where(
            asset_grants.c.business_id == business_id, asset_grants.c.person_id == person_id
        )
    )
    conn.execute(
        delete(memberships).where(
            memberships.c.business_id == business_id, memberships.c.person_id == person_id
        )
    )
    revoke_everything_of(conn, person_id=person_id, business_id=business_id)
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="person.remove",
        asset=("person", person_id),
        before=before.model_dump(),
        ip=ip,
    )


# -- invitations -----------------------------------------------------------------------


def _invitation_status(row: Any) -> str:
    if row.accepted_at is not None:
        return "accepted"
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at <= utcnow():
        return "expired"
    return "pending"


def _invitation_view(row: Any) -> InvitationView:
    return InvitationView(
        id=row.id,
        email=row.email,
        role=row.role,
        grants=json.loads(row.grants),
        created_at=row.created_at,
        expires_at=row.expires_at,
        sent_at=row.sent_at,
        accepted_at=row.accepted_at,
        revoked_at=row.revoked_at,
        status=_invitation_status(row),
    )


@dataclass(frozen=True)
class NewInvitation:
    invitation: InvitationView
    token: str  # goes into the emailed link; only its hash is kept
    business_name: str


def invitation_email(invitation: NewInvitation, *, base_url: str) -> AccountEmail:
    """The email carrying an invitation's link (its token exists only in this link)."""
    view, business_name = invitation.invitation, invitation.business_name
    link = f"{base_url}/invitations/accept?token={invitation.token}"
    return AccountEmail(
        to=view.email,
        subject=f"You are invited to {business_name} on Accord",
        text=(
            f"You are invited to join {business_name} on Accord as {view.role}.\n\n"
            f"Accept by opening this link before {view.expires_at:%Y-%m-%d %H:%M} UTC:\n"
            f"{link}\n"
        ),
        link=link,
    )


def invite(
    conn: Connection,
    *,
    business_id: str,
    data: InvitationIn,
    invited_by: str | None,
    days: int,
    by: Access,
    actor: Actor,
    ip: str | None,
) -> NewInvitation:
    email = normal_email(data.email)
    problems = _check_role(data.role)
    if not valid_email(email):
        problems.append(FieldProblem("email", "not an email address"))
    problems += _own_assets(conn, business_id=business_id, asset_ids=list(data.grants))
    for tasks in data.grants.values():
        problems += _tasks_problems(tasks, "grants")
    already = conn.execute(
        select(memberships.c.person_id)
        .join(people, people.c.id == memberships.c.person_id)
        .where(memberships.c.business_id == business_id, people.c.email == email)
    ).first()
    if already is not None:
        problems.append(FieldProblem("email", "this person is already in the business"))
    if problems:
        raise InvalidInput(problems)
    ceiling.check_role(conn, by=by, role=data.role)
    ceiling.check_tasks(conn, by=by, grants=data.grants)
    token = new_secret("inv", 24)
    invitation_id = new_id("inv")
    now = utcnow()
    conn.execute(
        invitations.insert().values(
            id=invitation_id,
            business_id=business_id,
            email=email,
            role=data.role,
            grants=json.dumps({a: sorted(set(t)) for a, t in data.grants.items() if t}),
            token_hash=hash_token(token),
            invited_by=invited_by,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="invitation.create",
        asset=("invitation", invitation_id),
        after={"email": email, "role": data.role, "grants": data.grants},
        ip=ip,
    )
    return NewInvitation(
        invitation=get_invitation(conn, business_id=business_id, invitation_id=invitation_id),
        token=token,
        business_name=get_business(conn, business_id=business_id).name,
    )


def get_invitation(conn: Connection, *, business_id: str, invitation_id: str) -> InvitationView:
    row = conn.execute(
        select(invitations).where(
            invitations.c.id == invitation_id, invitations.c.business_id == business_id
        )
    ).first()
    if row is None:
        raise NotFound("invitation")
    return _invitation_view(row)


def list_invitations(conn: Connection, *, business_id: str) -> list[InvitationView]:
    rows = conn.execute(
        select(invitations)
        .where(invitations.c.business_id == business_id)
        .order_by(invitations.c.created_at.desc())
    ).all()
    return [_invitation_view(r) for r in rows]


def mark_sent(conn: Connection, *, invitation_id: str) -> None:
    conn.execute(
        update(invitations).where(invitations.c.id == invitation_id).values(sent_at=utcnow())
    )


def renew_invitation(
    conn: Connection,
    *,
    business_id: str,
    invitation_id: str,
    days: int,
    by: Access,
    actor: Actor,
    ip: str | None,
) -> NewInvitation:
    """A fresh link and expiry for a pending or expired invitation (to send again)."""
    current = get_invitation(conn, business_id=business_id, invitation_id=invitation_id)
    if current.status not in ("pending", "expired"):
        raise InvalidInput([FieldProblem("invitation", f"this invitation is {current.status}")])
    ceiling.check_role(conn, by=by, role=current.role)
    ceiling.check_tasks(conn, by=by, grants=current.grants)
    token = new_secret("inv", 24)
    conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id)
        .values(token_hash=hash_token(token), expires_at=utcnow() + timedelta(days=days))
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="invitation.resend",
        asset=("invitation", invitation_id),
        ip=ip,
    )
    return NewInvitation(
        invitation=get_invitation(conn, business_id=business_id, invitation_id=invitation_id),
        token=token,
        business_name=get_business(conn, business_id=business_id).name,
    )


def revoke_invitation(
    conn: Connection, *, business_id: str, invitation_id: str, actor: Actor, ip: str | None
) -> InvitationView:
    current = get_invitation(conn, business_id=business_id, invitation_id=invitation_id)
    if current.status != "pending":
        raise InvalidInput([FieldProblem("invitation", f"this invitation is {current.status}")])
    conn.execute(
        update(invitations).where(invitations.c.id == invitation_id).values(revoked_at=utcnow())
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="invitation.revoke",
        asset=("invitation", invitation_id),
        ip=ip,
    )
    return get_invitation(conn, business_id=business_id, invitation_id=invitation_id)


@dataclass(frozen=True)
class PendingInvitation:
    id: str
    business_id: str
    business_name: str
    email: str
    role: str


def invitation_for_token(conn: Connection, *, token: str) -> PendingInvitation:
    """The invitation a link points at, if it can still be accepted (clear reasons if not)."""
    row = conn.execute(
        select(invitations, businesses.c.name.label("business_name"))
        .join(businesses, businesses.c.id == invitations.c.business_id)
        .where(invitations.c.token_hash == hash_token(token))
    ).first()
    if row is None:
        raise InvalidInput([FieldProblem("invitation", "this invitation link is not valid")])
    status = _invitation_status(row)
    if status != "pending":
        reasons = {
            "expired": "this invitation has expired; ask for a new one",
            "revoked": "this invitation was withdrawn",
            "accepted": "this invitation was already accepted",
        }
        raise InvalidInput([FieldProblem("invitation", reasons[status])])
    return PendingInvitation(
        id=row.id,
        business_id=row.business_id,
        business_name=row.business_name,
        email=row.email,
        role=row.role,
    )


def accept_invitation(conn: Connection, *, token: str, person_id: str, ip: str | None) -> str:
    """Join the business with the invitation's role and tasks; returns the business id."""
    pending = invitation_for_token(conn, token=token)
    email = conn.execute(select(people.c.email).where(people.c.id == person_id)).scalar_one()
    if email != pending.email:
        raise InvalidInput(
            [
                FieldProblem(
                    "invitation", f"this invitation is for {pending.email}; sign in as that person"
                )
            ]
        )
    row = conn.execute(select(invitations).where(invitations.c.id == pending.id)).one()
    conn.execute(
        memberships.insert().values(
            business_id=pending.business_id,
            person_id=person_id,
            role=pending.role,
            created_at=utcnow(),
        )
    )
    grants: dict[str, list[str]] = json.loads(row.grants)
    live = set(conn.execute(select(assets.c.id).where(assets.c.id.in_(list(grants)))).scalars())
    rows = [
        {
            "business_id": pending.business_id,
            "person_id": person_id,
            "asset_id": a,
            "tasks": " ".join(t),
        }
        for a, t in grants.items()
        if a in live
    ]
    if rows:
        conn.execute(asset_grants.insert(), rows)
    conn.execute(
        update(invitations).where(invitations.c.id == pending.id).values(accepted_at=utcnow())
    )
    audit(
        conn,
        business_id=pending.business_id,
        actor=Actor(kind="person", id=person_id, label=email),
        action="invitation.accept",
        asset=("invitation", pending.id),
        after={"role": pending.role, "grants": grants},
        ip=ip,
    )
    return pending.business_id


# -- partners --------------------------------------------------------------------------


def _share_view(row: Any) -> PartnerShareView:
    return PartnerShareView(
        id=row.id,
        business_id=row.business_id,
        partner_business_id=row.partner_business_id,
        asset_id=row.asset_id,
        tasks=row.tasks.split(),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def share_with_partner(
    conn: Connection,
    *,
    business_id: str,
    data: PartnerShareIn,
    by: Access,
    actor: Actor,
    ip: str | None,
) -> PartnerShareView:
    problems = _tasks_problems(data.tasks, "tasks")
    if not data.tasks:
        problems.append(FieldProblem("tasks", "choose at least one task"))
    if data.partner_business_id == business_id:
        problems.append(FieldProblem("partner_business_id", "a business cannot be its own partner"))
    elif (
        conn.execute(
            select(businesses.c.id).where(businesses.c.id == data.partner_business_id)
        ).first()
        is None
    ):
        problems.append(FieldProblem("partner_business_id", "no business has this id"))
    owned = conn.execute(
        select(assets.c.id).where(assets.c.id == data.asset_id, assets.c.business_id == business_id)
    ).first()
    if owned is None:
        problems.append(FieldProblem("asset_id", "only the business's own assets can be shared"))
    if problems:
        raise InvalidInput(problems)
    ceiling.check_tasks(conn, by=by, grants={data.asset_id: data.tasks})
    conn.execute(
        update(partner_shares)
        .where(
            partner_shares.c.business_id == business_id,
            partner_shares.c.partner_business_id == data.partner_business_id,
            partner_shares.c.asset_id == data.asset_id,
            partner_shares.c.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    share_id = new_id("shr")
    conn.execute(
        partner_shares.insert().values(
            id=share_id,
            business_id=business_id,
            partner_business_id=data.partner_business_id,
            asset_id=data.asset_id,
            tasks=" ".join(sorted(set(data.tasks))),
            created_at=utcnow(),
        )
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="partner.share",
        asset=("asset", data.asset_id),
        after=data.model_dump(),
        ip=ip,
    )
    row = conn.execute(select(partner_shares).where(partner_shares.c.id == share_id)).one()
    return _share_view(row)


def shares(
    conn: Connection, *, business_id: str
) -> tuple[list[PartnerShareView], list[PartnerShareView]]:
    """(shares this business gave, shares it received), the live ones."""
    given = conn.execute(
        select(partner_shares).where(
            partner_shares.c.business_id == business_id, partner_shares.c.revoked_at.is_(None)
        )
    ).all()
    received = conn.execute(
        select(partner_shares).where(
            partner_shares.c.partner_business_id == business_id,
            partner_shares.c.revoked_at.is_(None),
        )
    ).all()
    return [_share_view(r) for r in given], [_share_view(r) for r in received]


def revoke_share(
    conn: Connection, *, business_id: str, share_id: str, actor: Actor, ip: str | None
) -> None:
    row = conn.execute(
        select(partner_shares).where(
            partner_shares.c.id == share_id,
            partner_shares.c.business_id == business_id,
            partner_shares.c.revoked_at.is_(None),
        )
    ).first()
    if row is None:
        raise NotFound("partner share")
    conn.execute(
        update(partner_shares).where(partner_shares.c.id == share_id).values(revoked_at=utcnow())
    )
    # The partner's people lose their tasks on the asset with the share.
    conn.execute(
        delete(asset_grants).where(
            asset_grants.c.business_id == row.partner_business_id,
            asset_grants.c.asset_id == row.asset_id,
        )
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="partner.revoke",
        asset=("asset", row.asset_id),
        before=_share_view(row).model_dump(mode="json"),
        ip=ip,
    )


# -- security centre -------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityReport:
    policy: str
    without_two_factor: list[MemberView]
    admins: int
    max_admins: int

    @property
    def too_many_admins(self) -> bool:
        return self.admins > self.max_admins


def security_report(conn: Connection, *, business_id: str, max_admins: int) -> SecurityReport:
    business = get_business(conn, business_id=business_id)
    everyone = members(conn, business_id=business_id)
    return SecurityReport(
        policy=business.two_factor_policy,
        without_two_factor=[m for m in everyone if not m.two_factor],
        admins=sum(1 for m in everyone if m.role == "admin"),
        max_admins=max_admins,
    )


def set_two_factor_policy(
    conn: Connection, *, business_id: str, policy: str, actor: Actor, ip: str | None
) -> None:
    if policy not in TWO_FACTOR_POLICIES:
        raise InvalidInput([FieldProblem("policy", f"one of {', '.join(TWO_FACTOR_POLICIES)}")])
    before = get_business(conn, business_id=business_id).two_factor_policy
    conn.execute(
        update(businesses).where(businesses.c.id == business_id).values(two_factor_policy=policy)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="security.two_factor_policy",
        asset=("business", business_id),
        before={"policy": before},
        after={"policy": policy},
        ip=ip,
    )
