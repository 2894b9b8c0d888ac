"""In-test stand-ins for the consent ledger and suppression lists, and a mailer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from accord.core.signing import Signer
from accord.messaging.mailer import Mailer
from accord.messaging.ports import Wiring
from accord.messaging.smtp import SmtpConfig
from tests.smtp_sink import SmtpSink

BASE_URL = "http://accord.test"


@dataclass
class FakeLedger:
    """Consent by anonymous id, a suppression list, and what was recorded."""

    granted: dict[str, dict[str, bool]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    recorded: list[dict[str, Any]] = field(default_factory=list)

    def granted_purposes(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: Sequence[str],
        user_ids: Sequence[str],
    ) -> dict[str, bool]:
        found: dict[str, bool] = {}
        for anonymous_id in anonymous_ids:
            found.update(self.granted.get(anonymous_id, {}))
        return found

    def filter_suppressed(
        self, conn: Connection, *, business_id: str, identifiers: Sequence[str]
    ) -> list[str]:
        return [i for i in identifiers if i not in self.blocked]

    def suppress(self, conn: Connection, *, business_id: str, identifier: str, reason: str) -> None:
        self.suppressed.append((identifier, reason))

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
        if anonymous_id is not None:
            self.granted.setdefault(anonymous_id, {}).update(purposes)

    def wiring(self) -> Wiring:
        return Wiring(
            granted_purposes=self.granted_purposes,
            filter_suppressed=self.filter_suppressed,
            suppress=self.suppress,
            record_consent=self.record_consent,
        )


def mailer_for(sink: SmtpSink, **overrides: Any) -> Mailer:
    return Mailer(
        smtp=SmtpConfig(host=sink.host, port=sink.port, rate_per_second=0, concurrency=4),
        signer=Signer("test-signing-key"),
        base_url=BASE_URL,
        chunk=overrides.pop("chunk", 50),
        min_human_delay=timedelta(seconds=2),
        **overrides,
    )
