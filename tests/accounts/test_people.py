"""People: passwords, throttled sign-in, sessions, two-factor and recovery codes."""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import select, update

from accord.accounts import people
from accord.accounts.models import people as people_table
from accord.core.errors import InvalidInput, TooManyAttempts
from accord.store.db import Store

LIMITS = people.LoginLimits(
    window_seconds=900, max_failures_per_account=3, max_failures_per_ip=5, lockout_seconds=600
)
PASSWORD = "correct horse battery"


def _person(store: Store, email: str = "ann@acme.test") -> people.Person:
    with store.write() as conn:
        return people.sign_up(conn, email=email, name="Ann", password=PASSWORD)


def _sign_in(store: Store, email: str, password: str, ip: str) -> people.Person | None:
    with store.write() as conn:
        return people.sign_in(conn, email=email, password=password, ip=ip, limits=LIMITS)


def _second_factor(store: Store, person: people.Person, code: str) -> str | None:
    with store.write() as conn:
        return people.pass_second_factor(
            conn, person=person, code=code, ip="1.1.1.1", limits=LIMITS
        )


def test_passwords_are_stored_as_argon2_hashes(store: Store) -> None:
    person = _person(store)
    with store.read() as conn:
        stored = conn.execute(
            select(people_table.c.password_hash).where(people_table.c.id == person.id)
        ).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    signed_in = _sign_in(store, "ANN@acme.test", PASSWORD, "1.1.1.1")
    assert signed_in is not None and signed_in.id == person.id


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [("not-an-email", PASSWORD, "email"), ("a@b.test", "short", "password")],
)
def test_bad_sign_ups_are_refused(store: Store, email: str, password: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught, store.write() as conn:
        people.sign_up(conn, email=email, name="X", password=password)
    assert caught.value.problems[0].field == field


def test_duplicate_email_is_refused(store: Store) -> None:
    _person(store)
    with pytest.raises(InvalidInput, match="already exists"):
        _person(store, "Ann@Acme.test")


def test_account_locks_after_the_configured_failures_even_for_the_right_password(
    store: Store,
) -> None:
    _person(store)
    for _ in range(LIMITS.max_failures_per_account):
        assert _sign_in(store, "ann@acme.test", "wrong one!", "1.1.1.1") is None
    with pytest.raises(TooManyAttempts, match="locked after 3 failed sign-ins") as caught:
        _sign_in(store, "ann@acme.test", PASSWORD, "1.1.1.1")
    assert 0 < caught.value.retry_after_seconds <= LIMITS.lockout_seconds


def test_one_address_is_throttled_across_accounts(store: Store) -> None:
    for n in range(LIMITS.max_failures_per_ip):
        assert _sign_in(store, f"p{n}@acme.test", "x" * 12, "9.9.9.9") is None
    with pytest.raises(TooManyAttempts, match="from your address"):
        _sign_in(store, "other@acme.test", "x" * 12, "9.9.9.9")
    _person(store, "fresh@acme.test")
    assert _sign_in(store, "fresh@acme.test", PASSWORD, "2.2.2.2")


def test_sessions_are_server_side_and_revocable(store: Store) -> None:
    person = _person(store)
    with store.write() as conn:
        token = people.start_session(conn, person_id=person.id, stage="full", ip=None, hours=1)
    with store.read() as conn:
        session = people.session_for(conn, token=token)
    assert session is not None and session.person.id == person.id and len(session.csrf_token) > 30
    with store.write() as conn:
        people.end_session(conn, session_id=session.id)
    with store.read() as conn:
        assert people.session_for(conn, token=token) is None
        assert people.session_for(conn, token="ses_forged") is None


def _enrol(store: Store, person: people.Person) -> tuple[str, list[str]]:
    with store.write() as conn:
        secret = people.begin_enrolment(conn, person_id=person.id)
    with store.write() as conn:
        codes = people.confirm_enrolment(conn, person_id=person.id, code=pyotp.TOTP(secret).now())
    return secret, codes


def test_enrolment_needs_a_right_code_and_changes_nothing_on_a_wrong_one(store: Store) -> None:
    person = _person(store)
    with store.write() as conn:
        secret = people.begin_enrolment(conn, person_id=person.id)
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}"
    with pytest.raises(InvalidInput, match="wrong code"), store.write() as conn:
        people.confirm_enrolment(conn, person_id=person.id, code=wrong)
    with store.read() as conn:
        assert not people.get_person(conn, person_id=person.id).two_factor
    _, codes = _enrol(store, person)
    assert len(codes) == 10 and len(set(codes)) == 10
    with store.read() as conn:
        assert people.get_person(conn, person_id=person.id).two_factor
    assert "<svg" in people.qr_svg(people.provisioning_uri(secret=secret, email=person.email))


def test_wrong_totp_is_refused_and_counts_as_a_failed_sign_in(store: Store) -> None:
    person = _person(store)
    secret, _ = _enrol(store, person)
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}"
    for _ in range(LIMITS.max_failures_per_account):
        assert _second_factor(store, person, wrong) is None
    with pytest.raises(TooManyAttempts):
        _second_factor(store, person, pyotp.TOTP(secret).now())


def test_recovery_codes_work_once(store: Store) -> None:
    person = _person(store)
    _, codes = _enrol(store, person)
    used = _second_factor(store, person, codes[0])
    assert used == "recovery_code"
    assert _second_factor(store, person, codes[0]) is None
    with store.read() as conn:
        assert people.remaining_recovery_codes(conn, person_id=person.id) == 9


def test_two_factor_policy_applies_by_role(store: Store) -> None:
    from accord.accounts import service
    from accord.accounts.models import Actor, BusinessIn, businesses

    admin = _person(store)
    with store.write() as conn:
        business_id = service.new_business(
            conn,
            details=BusinessIn(name="Acme", contact_email="a@acme.test"),
            person_id=admin.id,
            actor=Actor(kind="person", id=admin.id, label=admin.email),
            ip=None,
        )
        assert not people.two_factor_required(conn, person_id=admin.id, business_id=business_id)
        conn.execute(update(businesses).values(two_factor_policy="admins"))
        assert people.two_factor_required(conn, person_id=admin.id, business_id=business_id)


def test_a_totp_code_works_once(store: Store) -> None:
    person = _person(store)
    secret, _ = _enrol(store, person)
    totp = pyotp.TOTP(secret)
    # The code that turned two-factor on cannot sign in again.
    assert _second_factor(store, person, totp.now()) is None
    following = totp.at(time.time() + totp.interval)
    assert _second_factor(store, person, following) == "totp"
    assert _second_factor(store, person, following) is None
