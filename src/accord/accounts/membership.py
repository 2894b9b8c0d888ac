"""Adding a person to a business without an invitation: `accord people create`, and the
demo business's administrator."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from accord.accounts import permissions
from accord.accounts.models import Actor, MemberView, memberships
from accord.accounts.people import new_password, normal_email, person_by_email, sign_up
from accord.accounts.service import audit, get_business
from accord.accounts.team import members
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput


def _check_role(role: str) -> None:
    if role not in permissions.ROLES:
        raise InvalidInput([FieldProblem("role", f"one of {', '.join(permissions.ROLES)}")])


def add_member(
    conn: Connection,
    *,
    business_id: str,
    person_id: str,
    role: str,
    actor: Actor,
    ip: str | None = None,
) -> MemberView:
    """Make an existing person a member of the business with `role` (no invitation)."""
    get_business(conn, business_id=business_id)
    _check_role(role)
    already = conn.execute(
        select(memberships.c.role).where(
            memberships.c.business_id == business_id, memberships.c.person_id == person_id
        )
    ).scalar()
    if already is not None:
        raise InvalidInput(
            [FieldProblem("email", f"is already a member of this business ({already})")]
        )
    conn.execute(
        memberships.insert().values(
            business_id=business_id, person_id=person_id, role=role, created_at=utcnow()
        )
    )
    [member] = [m for m in members(conn, business_id=business_id) if m.person_id == person_id]
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="person.add",
        asset=("person", person_id),
        after={"email": member.email, "role": role},
        ip=ip,
    )
    return member


@dataclass(frozen=True)
class Added:
    """A person made a member; `password` is set only when it was generated here."""

    member: MemberView
    created: bool
    password: str | None


def add_person(
    conn: Connection,
    *,
    business_id: str,
    email: str,
    role: str,
    actor: Actor,
    name: str | None = None,
    password: str | None = None,
) -> Added:
    """Make the person with `email` a member of the business, creating their account if
    there is none (with `password`, or a generated one returned once).

    An existing account keeps its password: giving one for it is refused, as is a person
    who is already a member.
    """
    _check_role(role)
    person = person_by_email(conn, email=email)
    created = person is None
    generated: str | None = None
    if person is None:
        if password is None:
            password = generated = new_password()
        person = sign_up(
            conn, email=email, name=name or normal_email(email).split("@")[0], password=password
        )
    elif password is not None:
        raise InvalidInput(
            [FieldProblem("password", "this person already has an account and keeps its password")]
        )
    member = add_member(conn, business_id=business_id, person_id=person.id, role=role, actor=actor)
    return Added(member=member, created=created, password=generated)
