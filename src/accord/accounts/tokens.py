"""API tokens: made for machines, scoped, kept as hashes, and the one check of a bearer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from accord.accounts import permissions
from accord.accounts.models import Actor, NewToken, TokenView, api_tokens
from accord.accounts.people import get_person, two_factor_required
from accord.accounts.service import Access, audit, permitted, role_of
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, Forbidden, InvalidInput, InvalidToken, NotFound
from accord.core.ids import hash_token, new_id, new_secret
from accord.store.db import Store


def _two_factor_ok(conn: Connection, *, access: Access) -> bool:
    if access.person_id is None:
        return True
    if not two_factor_required(conn, person_id=access.person_id, business_id=access.business_id):
        return True
    return get_person(conn, person_id=access.person_id).two_factor


def _token_view(row: Any) -> TokenView:
    return TokenView(
        id=row.id,
        name=row.name,
        role=row.role,
        permissions=sorted(row.permissions.split()) or sorted(permissions.ROLES[row.role]),
        person_id=row.person_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def create_token(
    conn: Connection,
    *,
    access: Access,
    name: str,
    scope: Iterable[str],
    actor: Actor,
    ip: str | None,
) -> NewToken:
    """A token for machines, limited to permissions its creator holds; shown once.

    A person whose business requires two-factor must have it on to make one: a token
    would otherwise be a way around the second factor.
    """
    wanted = sorted(set(scope))
    problems = [
        FieldProblem("permissions", f"unknown permission {p!r}")
        for p in wanted
        if not permissions.known(p)
    ]
    if not name.strip() or len(name) > 100:
        problems.append(FieldProblem("name", "give the token a name of 1 to 100 characters"))
    if not wanted:
        problems.append(FieldProblem("permissions", "choose at least one permission"))
    if problems:
        raise InvalidInput(problems)
    beyond = [p for p in wanted if not permitted(conn, access=access, permission=p)]
    if beyond:
        raise Forbidden(f"you cannot give a token permissions you do not hold: {', '.join(beyond)}")
    if not _two_factor_ok(conn, access=access):
        raise Forbidden(
            "this business requires two-factor authentication: turn it on before making tokens"
        )
    token = new_secret("tok", 24)
    token_id = new_id("tok")
    conn.execute(
        api_tokens.insert().values(
            id=token_id,
            business_id=access.business_id,
            name=name.strip(),
            token_hash=hash_token(token),
            created_at=utcnow(),
            person_id=access.person_id,
            role=access.role,
            permissions=" ".join(wanted),
        )
    )
    audit(
        conn,
        business_id=access.business_id,
        actor=actor,
        action="token.create",
        asset=("token", token_id),
        after={"name": name, "permissions": wanted},
        ip=ip,
    )
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).one()
    return NewToken(**_token_view(row).model_dump(), token=token)


def list_tokens(conn: Connection, *, business_id: str) -> list[TokenView]:
    rows = conn.execute(
        select(api_tokens)
        .where(api_tokens.c.business_id == business_id)
        .order_by(api_tokens.c.created_at.desc())
    ).all()
    return [_token_view(r) for r in rows]


def revoke_token(
    conn: Connection, *, business_id: str, token_id: str, actor: Actor, ip: str | None
) -> None:
    result = conn.execute(
        update(api_tokens)
        .where(
            api_tokens.c.id == token_id,
            api_tokens.c.business_id == business_id,
            api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    if not result.rowcount:
        raise NotFound("token")
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="token.revoke",
        asset=("token", token_id),
        ip=ip,
    )


@dataclass(frozen=True)
class TokenAccess:
    access: Access
    label: str


def access_for_token(store: Store, authorization: str | None) -> TokenAccess:
    """Who an `Authorization: Bearer <token>` header is, for which business and role."""
    if not authorization or authorization[:7].lower() != "bearer ":
        raise InvalidToken()
    token_hash = hash_token(authorization[7:].strip())
    with store.read() as conn:
        row = conn.execute(
            select(api_tokens).where(
                api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
            )
        ).first()
        role = row.role if row is not None else None
        if row is not None and row.person_id is not None:
            # A person's token acts with the person's current role, never more.
            role = role_of(conn, business_id=row.business_id, person_id=row.person_id)
    if row is None or role is None:
        raise InvalidToken()
    with store.write() as conn:
        conn.execute(
            update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=utcnow())
        )
    scope = frozenset(row.permissions.split()) if row.permissions else None
    return TokenAccess(
        access=Access(
            business_id=row.business_id,
            role=role,
            person_id=row.person_id,
            token_id=row.id,
            scope=scope,
        ),
        label=f"token {row.name}",
    )
