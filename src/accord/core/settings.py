"""The one `Settings` object, read from `ACCORD_*` environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from accord.core.outbound import OutboundPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore")

    data_dir: Path = Field(default=Path("./accord-data"), description="Where embedded state lives")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data directory"
    )
    lake_url: str | None = Field(
        default=None, description="Folder or object-storage URL of the Parquet event lake"
    )
    engine_url: str = Field(
        default="duckdb://", description="duckdb:// (in-process) or pyspark://local[2]"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks, comma separated); none by default, from any peer.
    trusted_proxies: str = ""

    # SQLite durability: FULL fsyncs the WAL at every commit, so an acknowledged
    # event survives power loss as well as kill -9.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # An event more than this far in the future (after clock-skew correction) is refused.
    max_future_seconds: int = 24 * 3600
    # An event older than this is refused; imports of history raise it.
    max_event_age_days: int = 3650
    # Largest upload the Imports page takes (the whole form); it is imported while the
    # request waits, so bigger files go through `accord import`.
    max_import_bytes: int = 10 * 1024 * 1024

    worker_inline: bool = Field(default=True, description="Process the inbox inside `serve`")
    worker_batch_size: int = 5000
    # How long an idle worker waits before looking again: longer waits make fewer,
    # larger lake files; profiles lag the collection by at most about this much.
    worker_idle_seconds: float = 1.0
    worker_lease_seconds: int = 120
    inbox_retention_days: int = 30
    write_key_cache_seconds: float = 30.0

    # Accounts: signing links, sessions, sign-in throttling, limits, outgoing mail.
    secret_key: str | None = Field(
        default=None,
        description="Signs confirmation links; default: a random key kept in the data directory",
    )
    public_url: str | None = Field(
        default=None, description="Base URL put in emailed links; default: the request's own"
    )
    session_hours: float = 12.0
    # Failed sign-ins counted over this window; past a limit sign-in is refused until
    # the oldest failure leaves the window (at most `login_lockout_seconds`).
    login_window_seconds: int = 900
    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 30
    login_lockout_seconds: int = 900
    max_pixels_per_business: int = 10
    max_admins_per_business: int = 5
    invitation_days: int = 7
    email_link_hours: int = 48
    smtp_host: str | None = Field(default=None, description="Outgoing mail server; none: no mail")
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    mail_from: str = "Accord <accord@localhost>"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'accord.db').resolve()}"

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Exclusive creation: of two processes starting together, one key wins. The
            # file is private (0600) from the moment it exists, not after a chmod.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as created:
                created.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def resolved_public_url(self) -> str:
        """Where emailed links point: `public_url`, else the address `accord serve` uses."""
        return (self.public_url or "http://127.0.0.1:8000").rstrip("/")

    # Consent: the proxy headers that carry the visitor's country and region (they win
    # over the offline IP table), and the largest consent decision accepted.
    consent_country_header: str = "CF-IPCountry"
    consent_region_header: str = "CF-Region-Code"
    max_consent_bytes: int = 32 * 1024

    # Email and leads (the SMTP server above sends campaigns too).
    email_rate_per_second: float = 100.0
    email_concurrency: int = 4
    # Recipients checked (consent, suppression) and sent per step of a campaign.
    email_send_chunk: int = 500
    # Opens and clicks sooner than this after delivery are taken as machines.
    email_min_human_seconds: float = 2.0
    # Form submissions accepted per client IP address per window.
    form_rate_limit: int = 5
    form_rate_window_seconds: int = 600
    confirmation_link_days: int = 7
    download_link_hours: int = 48

    # Journeys: the providers of other channels (a channel without credentials sends
    # nothing; its messages wait in the outbox) and the webhook signing secret.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    sms_sender: str | None = Field(default=None, description="E.164 number or sender id")
    whatsapp_phone_number_id: str | None = None
    whatsapp_access_token: str | None = None
    whatsapp_base_url: str = "https://graph.facebook.com/v21.0"
    vapid_private_key: str | None = Field(
        default=None, description="Web push: the VAPID private key (base64url)"
    )
    vapid_subject: str | None = Field(default=None, description="mailto: or https: contact")
    webhook_secret: str | None = Field(
        default=None, description="Signs journey webhooks (Standard Webhooks, whsec_...)"
    )
    journey_poll_seconds: float = 0.25

    # The job scheduler (inside `accord serve`'s worker and `accord worker`): jobs run at
    # once per worker, how often it looks for due jobs and for new businesses and objects,
    # and how long run history is kept.
    scheduler_enabled: bool = Field(default=True, description="Run scheduled jobs in the worker")
    scheduler_concurrency: int = Field(default=2, ge=1, le=32)
    scheduler_poll_seconds: float = Field(default=1.0, gt=0)
    scheduler_sync_seconds: float = Field(default=30.0, gt=0)
    # A worker's hold on the jobs it runs, renewed every third of it: after a crash, its
    # jobs are taken over this long later at most.
    scheduler_lease_seconds: float = Field(default=60.0, ge=3)
    job_history_days: int = Field(default=30, ge=1)
    # Ended sign-in sessions, invitations and failed sign-ins are forgotten after this.
    session_retention_days: int = Field(default=30, ge=1)
    # Predictions are retrained weekly, or as soon as this many new events were processed.
    predict_retrain_events: int = Field(default=10_000, ge=1)
    # Outbound requests to URLs a business gave (journey webhooks, audience webhook
    # destinations, push endpoints, the cookie scanner) reach public addresses only,
    # plus these networks and host names, separated by commas: "10.1.0.0/16,hooks.internal".
    outbound_allow: str = Field(
        default="", description="Networks and hosts outbound requests may reach besides public ones"
    )
    # One POST to an audience webhook destination.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Failed delivery runs in a row after which a destination's pending batch is parked
    # as a dead letter, so the changes after it flow again.
    webhook_dead_letter_after: int = Field(default=10, ge=1)

    # Experiments: one POST of ad-log records to /v1/experiments/{key}/ad-logs.
    max_ad_log_bytes: int = 5 * 1024 * 1024
    max_ad_log_records: int = 10_000

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy.from_setting(self.outbound_allow)

    def resolved_lake_url(self) -> str:
        if self.lake_url:
            return self.lake_url
        return str((self.data_dir / "lake").resolve())
