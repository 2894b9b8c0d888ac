"""Consent in the real ledger, a recorder of what messaging asks it to record, a mailer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from accord.core.signing import Signer
from accord.messaging.mailer import Mailer
from accord.messaging.ports import Wiring
from accord.messaging.smtp import SmtpConfig
from accord.process.email import record_in_ledger
from accord.store.db import Store
from tests.smtp_sink import SmtpSink

BASE_URL = "http://accord.test"


def grant(store: Store, business_id: str, granted: Mapping[str, Mapping[str, bool]]) -> None:
    """Record consent decisions in the real consent ledger, by anonymous id."""
    with store.write() as conn:
        for anonymous_id, purposes in granted.items():
            record_in_ledger(
                conn,
                business_id=business_id,
                anonymous_id=anonymous_id,
                user_id=None,
                purposes=purposes,
                source="api",
                evidence={},
            )


@dataclass
class FakeLedger:
    """What messaging asked the consent ledger to record (tests read it back)."""

    recorded: list[dict[str, Any]] = field(default_factory=list)

    def record_consent(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_id: str | None,
        user_id: str | None,
        purposes: Mapping[str, bool],
        source: str,
        evidence: Mapping[str, Any],
    ) -> None:
        self.recorded.append(
            {
                "anonymous_id": anonymous_id,
                "purposes": dict(purposes),
                "source": source,
                "evidence": dict(evidence),
            }
        )

    def wiring(self) -> Wiring:
        return Wiring(record_consent=self.record_consent)


def mailer_for(sink: SmtpSink, **overrides: Any) -> Mailer:
    return Mailer(
        smtp=SmtpConfig(host=sink.host, port=sink.port, rate_per_second=0, concurrency=4),
        signer=Signer("test-signing-key"),
        base_url=BASE_URL,
        chunk=overrides.pop("chunk", 50),
        min_human_delay=timedelta(seconds=2),
        **overrides,
    )
