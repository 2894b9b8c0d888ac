"""People: sign-up, passwords (argon2), sign-in throttling, UI sessions and two-factor."""

from __future__ import annotations

import functools
import hmac
import io
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pyotp
import qrcode
import qrcode.image.svg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import Connection, delete, func, select, update

from accord.accounts.models import (
    api_tokens,
    businesses,
    login_attempts,
    memberships,
    people,
    recovery_codes,
    ui_sessions,
)
from accord.accounts.service import valid_email
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, SignInFailed, TooManyAttempts
from accord.core.ids import hash_token, new_id, new_secret

MIN_PASSWORD = 10
MAX_PASSWORD = 200
RECOVERY_CODE_COUNT = 10
ISSUER = "Accord"

_hasher = PasswordHasher()


WRONG_CREDENTIALS = "wrong email or password"
WRONG_CODE = "wrong code: give the current 6-digit code or an unused recovery code"


@dataclass(frozen=True)
class LoginLimits:
    window_seconds: int
    max_failures_per_account: int
    max_failures_per_ip: int
    lockout_seconds: int


@dataclass(frozen=True)
class Person:
    id: str
    email: str
    name: str
    two_factor: bool


@dataclass(frozen=True)
class Session:
    id: str
    person: Person
    business_id: str | None
    csrf_token: str
    stage: str


def normal_email(email: str) -> str:
    return email.strip().lower()


def _person(row: Any) -> Person:
    return Person(
        id=row.id, email=row.email, name=row.name, two_factor=row.totp_enabled_at is not None
    )


def get_person(conn: Connection, *, person_id: str) -> Person:
    return _person(conn.execute(select(people).where(people.c.id == person_id)).one())


def person_by_email(conn: Connection, *, email: str) -> Person | None:
    row = conn.execute(select(people).where(people.c.email == normal_email(email))).first()
    return _person(row) if row else None


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords (zxcvbn's list), lower-cased, shipped in the package."""
    text = resources.files("accord.accounts").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def check_password(password: str, *, email: str | None = None) -> list[FieldProblem]:
    """What is wrong with a new password (NIST SP 800-63B: length, breached or common, context)."""
    if len(password) < MIN_PASSWORD:
        return [FieldProblem("password", f"use at least {MIN_PASSWORD} characters")]
    if len(password) > MAX_PASSWORD:
        return [FieldProblem("password", f"use at most {MAX_PASSWORD} characters")]
    folded = password.strip().lower()
    if email is not None and folded in {normal_email(email), normal_email(email).split("@")[0]}:
        return [FieldProblem("password", "do not use your email address as your password")]
    if folded in _common_passwords():
        return [
            FieldProblem("password", "this is one of the most common passwords; choose another")
        ]
    return []


def sign_up(conn: Connection, *, email: str, name: str, password: str) -> Person:
    email = normal_email(email)
    problems = check_password(password, email=email)
    if not valid_email(email):
        problems.append(FieldProblem("email", "not an email address"))
    if not name.strip() or len(name) > 200:
        problems.append(FieldProblem("name", "give your name (at most 200 characters)"))
    if not problems and person_by_email(conn, email=email) is not None:
        problems.append(FieldProblem("email", "an account with this email already exists"))
    if problems:
        raise InvalidInput(problems)
    person_id = new_id("per")
    conn.execute(
        people.insert().values(
            id=person_id,
            email=email,
            name=name.strip(),
            password_hash=_hasher.hash(password),
            created_at=utcnow(),
        )
    )
    return get_person(conn, person_id=person_id)


def new_password() -> str:
    """A strong password for someone who did not choose one (about 144 random bits)."""
    return secrets.token_urlsafe(18)


def set_password(conn: Connection, *, person_id: str, password: str) -> None:
    """Give a person a new password; their open sessions end with the old one."""
    if problems := check_password(password, email=get_person(conn, person_id=person_id).email):
        raise InvalidInput(problems)
    conn.execute(
        update(people).where(people.c.id == person_id).values(password_hash=_hasher.hash(password))
    )
    conn.execute(delete(ui_sessions).where(ui_sessions.c.person_id == person_id))


# -- sign-in and throttling ------------------------------------------------------------


def _failures_since(conn: Connection, column: Any, value: str, since: datetime) -> list[datetime]:
    return list(
        conn.execute(
            select(login_attempts.c.at)
            .where(column == value, login_attempts.c.at >= since)
            .where(login_attempts.c.succeeded.is_(False))
            .order_by(login_attempts.c.at)
        ).scalars()
    )


def _last_success(conn: Connection, email: str) -> datetime | None:
    return conn.execute(
        select(func.max(login_attempts.c.at)).where(
            login_attempts.c.email == email, login_attempts.c.succeeded.is_(True)
        )
    ).scalar()


def check_throttle(conn: Connection, *, email: str, ip: str, limits: LoginLimits) -> None:
    """Refuse a sign-in while the account or the address has failed too often."""
    now = utcnow()
    since = now - timedelta(seconds=limits.window_seconds)
    success = _last_success(conn, email)
    if success is not None and success > since:
        since = success
    account = _failures_since(conn, login_attempts.c.email, email, since)
    if len(account) >= limits.max_failures_per_account:
        until = account[-1] + timedelta(seconds=limits.lockout_seconds)
        if until > now:
            wait = math.ceil((until - now).total_seconds())
            raise TooManyAttempts(
                f"this account is locked after {len(account)} failed sign-ins; "
                f"try again in {math.ceil(wait / 60)} minutes",
                wait,
            )
    by_ip = _failures_since(
        conn, login_attempts.c.ip, ip, now - timedelta(seconds=limits.window_seconds)
    )
    if len(by_ip) >= limits.max_failures_per_ip:
        until = by_ip[-1] + timedelta(seconds=limits.lockout_seconds)
        if until > now:
            wait = math.ceil((until - now).total_seconds())
            raise TooManyAttempts(
                f"too many failed sign-ins from your address ({ip}); "
                f"try again in {math.ceil(wait / 60)} minutes",
                wait,
            )


def record_attempt(conn: Connection, *, email: str, ip: str, succeeded: bool) -> None:
    conn.execute(
        login_attempts.insert().values(
            email=normal_email(email), ip=ip, at=utcnow(), succeeded=succeeded
        )
    )


def verify_password(conn: Connection, *, email: str, password: str) -> Person | None:
    row = conn.execute(select(people).where(people.c.email == normal_email(email))).first()
    if row is None:
        # Hash anyway so a missing account takes as long as a wrong password.
        _hasher.hash(password)
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    return _person(row)


def sign_in(
    conn: Connection, *, email: str, password: str, ip: str, limits: LoginLimits
) -> Person | None:
    """Check a password under the throttling limits and record the attempt; None if wrong.

    A wrong password is answered, not raised, so the caller's transaction commits the
    failed attempt: it must count even though the request fails.
    """
    email = normal_email(email)
    check_throttle(conn, email=email, ip=ip, limits=limits)
    person = verify_password(conn, email=email, password=password)
    record_attempt(conn, email=email, ip=ip, succeeded=person is not None)
    return person


def pass_second_factor(
    conn: Connection, *, person: Person, code: str, ip: str, limits: LoginLimits
) -> str | None:
    """The second step of signing in: which factor was accepted, or None if the code is wrong.

    A wrong code counts as a failed sign-in, committed with the caller's transaction.
    """
    check_throttle(conn, email=person.email, ip=ip, limits=limits)
    try:
        return verify_second_factor(conn, person_id=person.id, code=code)
    except SignInFailed:
        record_attempt(conn, email=person.email, ip=ip, succeeded=False)
        return None


# -- sessions --------------------------------------------------------------------------


def start_session(
    conn: Connection, *, person_id: str, stage: str, ip: str | None, hours: float
) -> str:
    """A new server-side session; returns the cookie value (only its hash is kept)."""
    token = new_secret("ses", 32)
    now = utcnow()
    first_business = conn.execute(
        select(memberships.c.business_id)
        .where(memberships.c.person_id == person_id)
        .order_by(memberships.c.created_at)
        .limit(1)
    ).scalar()
    conn.execute(
        ui_sessions.insert().values(
            id=new_id("ses"),
            token_hash=hash_token(token),
            person_id=person_id,
            business_id=first_business,
            csrf_token=secrets.token_urlsafe(32),
            stage=stage,
            ip=ip,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    return token


def session_for(conn: Connection, *, token: str | None) -> Session | None:
    if not token:
        return None
    row = conn.execute(
        select(ui_sessions, people)
        .join(people, people.c.id == ui_sessions.c.person_id)
        .where(
            ui_sessions.c.token_hash == hash_token(token),
            ui_sessions.c.revoked_at.is_(None),
            ui_sessions.c.expires_at > utcnow(),
        )
    ).first()
    if row is None:
        return None
    person = Person(
        id=row.person_id,
        email=row.email,
        name=row.name,
        two_factor=row.totp_enabled_at is not None,
    )
    return Session(
        id=row.id,
        person=person,
        business_id=row.business_id,
        csrf_token=row.csrf_token,
        stage=row.stage,
    )


def complete_session(conn: Connection, *, session_id: str) -> None:
    conn.execute(update(ui_sessions).where(ui_sessions.c.id == session_id).values(stage="full"))


def select_business(conn: Connection, *, session_id: str, business_id: str) -> None:
    conn.execute(
        update(ui_sessions).where(ui_sessions.c.id == session_id).values(business_id=business_id)
    )


def end_session(conn: Connection, *, session_id: str) -> None:
    conn.execute(
        update(ui_sessions).where(ui_sessions.c.id == session_id).values(revoked_at=utcnow())
    )


def revoke_everything_of(conn: Connection, *, person_id: str, business_id: str) -> None:
    """End the person's sessions and revoke their tokens of one business."""
    now = utcnow()
    conn.execute(
        update(ui_sessions)
        .where(ui_sessions.c.person_id == person_id, ui_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    conn.execute(
        update(api_tokens)
        .where(
            api_tokens.c.person_id == person_id,
            api_tokens.c.business_id == business_id,
            api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


# -- two-factor (TOTP) -------------------------------------------------------------------


def begin_enrolment(conn: Connection, *, person_id: str) -> str:
    """A new TOTP secret, kept unconfirmed until a code from it is given."""
    row = conn.execute(select(people).where(people.c.id == person_id)).one()
    if row.totp_enabled_at is not None:
        raise InvalidInput([FieldProblem("code", "two-factor authentication is already on")])
    secret = row.totp_secret or pyotp.random_base32()
    conn.execute(update(people).where(people.c.id == person_id).values(totp_secret=secret))
    return str(secret)


def provisioning_uri(*, secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(data: str) -> str:
    """An inline SVG QR code (no image files, nothing fetched)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    text = buffer.getvalue().decode()
    return text[text.index("<svg") :]


def _totp_step(secret: str, code: str) -> int | None:
    """The time step a code belongs to (now, or one step either side for clock drift)."""
    digits = code.replace(" ", "")
    if not (digits.isdigit() and len(digits) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = time.time()
    for offset in (0, -1, 1):
        moment = datetime.fromtimestamp(now + offset * totp.interval, UTC)
        if hmac.compare_digest(totp.at(moment), digits):
            return int(totp.timecode(moment))
    return None


def _accept_totp(conn: Connection, *, row: Any, code: str) -> bool:
    """Accept a code once: a step already used (or an older one) is refused, so no replay."""
    step = _totp_step(row.totp_secret, code)
    if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
        return False
    conn.execute(update(people).where(people.c.id == row.id).values(totp_last_step=step))
    return True


def confirm_enrolment(conn: Connection, *, person_id: str, code: str) -> list[str]:
    """Turn two-factor on with a first right code; returns the recovery codes (shown once)."""
    row = conn.execute(select(people).where(people.c.id == person_id)).one()
    if row.totp_secret is None or row.totp_enabled_at is not None:
        raise InvalidInput([FieldProblem("code", "start enrolment first")])
    if not _accept_totp(conn, row=row, code=code):
        raise InvalidInput(
            [FieldProblem("code", "wrong code: check your device's clock and try the next code")]
        )
    conn.execute(update(people).where(people.c.id == person_id).values(totp_enabled_at=utcnow()))
    return new_recovery_codes(conn, person_id=person_id)


def new_recovery_codes(conn: Connection, *, person_id: str) -> list[str]:
    conn.execute(delete(recovery_codes).where(recovery_codes.c.person_id == person_id))
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODE_COUNT)]
    conn.execute(
        recovery_codes.insert(),
        [
            {"id": new_id("rc"), "person_id": person_id, "code_hash": hash_token(code)}
            for code in codes
        ],
    )
    return codes


def verify_second_factor(conn: Connection, *, person_id: str, code: str) -> str:
    """Check a TOTP code or a recovery code (used up); returns which one was accepted."""
    row = conn.execute(select(people).where(people.c.id == person_id)).one()
    if row.totp_enabled_at is None:
        raise InvalidInput([FieldProblem("code", "two-factor authentication is not on")])
    if _accept_totp(conn, row=row, code=code):
        return "totp"
    used = conn.execute(
        update(recovery_codes)
        .where(
            recovery_codes.c.person_id == person_id,
            recovery_codes.c.code_hash == hash_token(code.strip().lower()),
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    if used.rowcount:
        return "recovery_code"
    raise SignInFailed(WRONG_CODE)


def remaining_recovery_codes(conn: Connection, *, person_id: str) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                recovery_codes.c.person_id == person_id, recovery_codes.c.used_at.is_(None)
            )
        ).scalar_one()
    )


def two_factor_required(conn: Connection, *, person_id: str, business_id: str | None) -> bool:
    """Whether the business's policy asks this person for a second factor."""
    if business_id is None:
        return False
    row = conn.execute(
        select(businesses.c.two_factor_policy, memberships.c.role)
        .join(memberships, memberships.c.business_id == businesses.c.id)
        .where(businesses.c.id == business_id, memberships.c.person_id == person_id)
    ).first()
    if row is None:
        return False
    policy: str = row.two_factor_policy
    return policy == "everyone" or (policy == "admins" and row.role == "admin")
