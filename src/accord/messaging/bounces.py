"""Bounces and complaints: DSN, ARF, SES and SendGrid reports, and what they do."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, select, update

from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.identity.service import normalise_email
from accord.messaging.models import email_events, email_messages
from accord.messaging.service import suppress_email

MESSAGE_ID_HEADER = "X-Accord-Message"
_ADDRESS = re.compile(r"[^\s<>;]+@[^\s<>;]+")


@dataclass(frozen=True)
class DeliveryReport:
    email: str
    kind: Literal["bounce", "complaint"]
    hard: bool
    status: str | None = None
    diagnostic: str | None = None
    # Our id of the message it is about, when the report carries it.
    message_id: str | None = None


def _address(value: str | None) -> str | None:
    if not value:
        return None
    # "rfc822; someone@example.com" (address type first, RFC 3464 section 2.3.2)
    found = _ADDRESS.search(value.split(";", 1)[-1])
    return found.group(0).strip().lower() if found else None


def _our_message_id(report: Message) -> str | None:
    for part in report.walk():
        content_type = part.get_content_type()
        if content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            headers = email.message_from_string(text)
            if headers.get(MESSAGE_ID_HEADER):
                return str(headers[MESSAGE_ID_HEADER]).strip()
        elif content_type == "message/rfc822":
            inner = part.get_payload()
            messages = inner if isinstance(inner, list) else [inner]
            for original in messages:
                if isinstance(original, Message) and original.get(MESSAGE_ID_HEADER):
                    return str(original[MESSAGE_ID_HEADER]).strip()
    return None


def parse_report_email(raw: bytes) -> list[DeliveryReport]:
    """Read a delivery status notification or an abuse feedback report.

    Only failed recipients are reported: `delayed`, `delivered`, `relayed` and
    `expanded` actions are not bounces. Status 5.x.x is a hard (permanent) bounce.
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get_content_type() != "multipart/report":
        raise InvalidInput([FieldProblem("message", "is not a multipart/report")])
    report_type = (message.get_param("report-type") or "").__str__().lower()
    message_id = _our_message_id(message)
    reports: list[DeliveryReport] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if report_type == "delivery-status" and content_type == "message/delivery-status":
            blocks = part.get_payload()
            if not isinstance(blocks, list):
                continue
            # The first block is about the message, the others one recipient each.
            for block in blocks[1:]:
                if not isinstance(block, Message):
                    continue
                action = str(block.get("Action", "")).strip().lower()
                if action != "failed":
                    continue
                recipient = _address(block.get("Final-Recipient")) or _address(
                    block.get("Original-Recipient")
                )
                if recipient is None:
                    continue
                status = str(block.get("Status", "")).strip() or None
                reports.append(
                    DeliveryReport(
                        email=recipient,
                        kind="bounce",
                        hard=not (status or "").startswith("4"),
                        status=status,
                        diagnostic=_clean(block.get("Diagnostic-Code")),
                        message_id=message_id,
                    )
                )
        elif report_type == "feedback-report" and content_type == "message/feedback-report":
            fields = _feedback_fields(part)
            recipient = _address(fields.get("original-rcpt-to"))
            if recipient is None:
                recipient = _original_recipient(message)
            if recipient is not None:
                reports.append(
                    DeliveryReport(
                        email=recipient,
                        kind="complaint",
                        hard=True,
                        status=fields.get("feedback-type"),
                        message_id=message_id,
                    )
                )
    if not reports and report_type not in ("delivery-status", "feedback-report"):
        raise InvalidInput([FieldProblem("report-type", f"{report_type!r} is not supported")])
    return reports


def _clean(value: Any) -> str | None:
    return " ".join(str(value).split())[:500] if value else None


def _feedback_fields(part: Message) -> dict[str, str]:
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else []
    fields: dict[str, str] = {}
    for block in blocks:
        if isinstance(block, Message):
            for key, value in block.items():
                fields.setdefault(key.lower(), str(value).strip())
    if not fields and isinstance(payload, str):
        for line in payload.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _original_recipient(report: Message) -> str | None:
    for part in report.walk():
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            for original in inner if isinstance(inner, list) else [inner]:
                if isinstance(original, Message):
                    return _address(original.get("To"))
    return None


def _ses_message_id(mail: dict[str, Any]) -> str | None:
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == (
            MESSAGE_ID_HEADER.lower()
        ):
            return str(header.get("value", "")).strip() or None
    return None


def parse_ses(body: bytes) -> list[DeliveryReport]:
    """Amazon SES notifications, raw or wrapped in an SNS envelope."""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification":
            data = orjson.loads(data["Message"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidInput([FieldProblem("body", f"not an SES notification: {exc}")]) from exc
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "not an SES notification object")])
    kind = str(data.get("notificationType") or data.get("eventType") or "")
    mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
    message_id = _ses_message_id(mail or {})
    reports: list[DeliveryReport] = []
    if kind == "Bounce":
        bounce = data.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        for recipient in bounce.get("bouncedRecipients") or []:
            address = _address(str(recipient.get("emailAddress", "")))
            if address:
                reports.append(
                    DeliveryReport(
                        email=address,
                        kind="bounce",
                        hard=hard,
                        status=recipient.get("status"),
                        diagnostic=_clean(recipient.get("diagnosticCode")),
                        message_id=message_id,
                    )
                )
    elif kind == "Complaint":
        complaint = data.get("complaint") or {}
        for recipient in complaint.get("complainedRecipients") or []:
            address = _address(str(recipient.get("emailAddress", "")))
            if address:
                reports.append(
                    DeliveryReport(
                        email=address,
                        kind="complaint",
                        hard=True,
                        status=complaint.get("complaintFeedbackType"),
                        message_id=message_id,
                    )
                )
    return reports


def parse_sendgrid(body: bytes) -> list[DeliveryReport]:
    """SendGrid's event webhook: a JSON list; `accord_message` is our custom argument."""
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([FieldProblem("body", f"malformed JSON: {exc}")]) from exc
    if not isinstance(events, list):
        raise InvalidInput([FieldProblem("body", "must be a JSON list of events")])
    reports: list[DeliveryReport] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        address = _address(str(event.get("email", "")))
        if address is None:
            continue
        name = event.get("event")
        message_id = event.get("accord_message")
        message_id = str(message_id) if message_id else None
        if name == "bounce":
            status = str(event.get("status") or "") or None
            reports.append(
                DeliveryReport(
                    email=address,
                    kind="bounce",
                    # SendGrid's "blocked" bounces are temporary refusals.
                    hard=event.get("type") != "blocked" and not (status or "").startswith("4"),
                    status=status,
                    diagnostic=_clean(event.get("reason")),
                    message_id=message_id,
                )
            )
        elif name == "spamreport":
            reports.append(
                DeliveryReport(email=address, kind="complaint", hard=True, message_id=message_id)
            )
    return reports


def apply_delivery_reports(
    conn: Connection,
    *,
    business_id: str,
    reports: Sequence[DeliveryReport],
    now: datetime | None = None,
) -> int:
    """Record bounces and complaints; hard bounces and complaints suppress the address.

    Returns how many reports matched a message this business sent.
    """
    now = now or utcnow()
    matched = 0
    for report in reports:
        query = select(email_messages).where(
            email_messages.c.business_id == business_id,
            email_messages.c.email == normalise_email(report.email),
        )
        if report.message_id:
            query = query.where(email_messages.c.id == report.message_id)
        message = conn.execute(query.order_by(email_messages.c.created_at.desc())).first()
        if message is None:
            continue
        matched += 1
        conn.execute(
            email_events.insert().values(
                business_id=business_id,
                message_id=message.id,
                campaign_id=message.campaign_id,
                kind=report.kind,
                machine=False,
                detail=" ".join(
                    p
                    for p in ("hard" if report.hard else "soft", report.status, report.diagnostic)
                    if p
                )[:500],
                occurred_at=now,
            )
        )
        if report.kind == "bounce" and report.hard:
            conn.execute(
                update(email_messages)
                .where(email_messages.c.id == message.id)
                .values(status="bounced", reason=(report.status or "hard bounce")[:200])
            )
        if report.hard:
            suppress_email(
                conn,
                business_id=business_id,
                email=message.email,
                reason="hard_bounce" if report.kind == "bounce" else "complaint",
            )
    return matched
