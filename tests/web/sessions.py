"""Signed-in people for page tests: a session cookie and the CSRF token its forms carry."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fastapi.testclient import TestClient

from accord.accounts import people
from accord.accounts.service import memberships
from accord.core.clock import utcnow
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE


@dataclass
class Session:
    client: TestClient
    token: str
    csrf: str

    def get(self, path: str) -> httpx.Response:
        self.client.cookies.set(SESSION_COOKIE, self.token)
        return self.client.get(path, headers={"Accept": "text/html"})

    def post(self, path: str, data: dict[str, str], *, follow: bool = False) -> httpx.Response:
        """A browser's form post: the session cookie and the form's CSRF field."""
        self.client.cookies.set(SESSION_COOKIE, self.token)
        return self.client.post(
            path,
            data={**data, "csrf_token": self.csrf},
            headers={"Accept": "text/html"},
            follow_redirects=follow,
        )


def admin_session(client: TestClient, store: Store, business_id: str) -> Session:
    """An administrator of the business, signed in with a password."""
    with store.write() as conn:
        admin = people.sign_up(conn, email="admin@gaps.test", name="Admin", password="p" * 12)
        conn.execute(
            memberships.insert().values(
                business_id=business_id, person_id=admin.id, role="admin", created_at=utcnow()
            )
        )
        token = people.start_session(conn, person_id=admin.id, stage="full", ip=None, hours=1)
        session = people.session_for(conn, token=token)
    assert session is not None
    return Session(client=client, token=token, csrf=session.csrf_token)
