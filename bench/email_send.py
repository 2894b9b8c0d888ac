"""Email sending benchmark: messages per second to a local SMTP sink, templating and tracking on.

For each run this script:

1. starts aiosmtpd's discarding Sink in its own process on a free 127.0.0.1 port,
2. creates a throwaway SQLite (or PostgreSQL) state store with one business, a list of
   --messages members who all confirmed email consent (double opt-in records), a template
   with a <style> block to inline, three links to track and personalisation from traits,
3. times `messaging.sending.send_campaign` end to end: send-time consent and suppression
   checks, rendering, CSS inlining, link rewriting with signed tokens, MIME building,
   SMTP over --concurrency reused connections, and the status writes,
4. reports messages/s (sent / wall time) as the median of --runs runs, as a markdown
   table, and writes every figure as JSON to bench/results/email-<timestamp>.json.

Usage: .venv/bin/python bench/email_send.py [--messages 5000] [--runs 3] [--concurrency 8]
       [--backend sqlite|postgresql] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from accord.accounts.service import bootstrap
from accord.core.clock import utcnow
from accord.core.signing import Signer
from accord.leads.models import lead_consents, leads
from accord.messaging import campaigns, lists, sending, templates
from accord.messaging.mailer import Mailer
from accord.messaging.models import (
    CampaignIn,
    ListIn,
    TemplateIn,
    email_list_members,
)
from accord.messaging.ports import Wiring
from accord.messaging.smtp import SmtpConfig
from accord.process.email import record_in_ledger
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

HTML = """<html><head><style>
body { font-family: Helvetica, Arial, sans-serif; color: #222; }
h1 { color: #1f5fbf; font-size: 24px; }
.button { background: #1f5fbf; color: #fff; padding: 12px 20px; border-radius: 4px; }
p.small { font-size: 12px; color: #777; }
</style></head><body>
<h1>Hello {{ contact.first_name | default("friend") }}</h1>
<p>New routes for {{ contact.city | default("your area") }} are out: three days, two huts.</p>
<p><a class="button" href="https://shop.example/routes?utm_source=email">See the routes</a></p>
<p><a href="https://shop.example/boots">Boots</a> · <a href="https://shop.example/tents">Tents</a></p>
<p class="small">You get this because you asked for our news.</p>
</body></html>"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_sink() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def state_store(backend: str, folder: Path) -> Iterator[Store]:
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'state.db'}"
        upgrade(url)
        store = open_store(url, sqlite_synchronous="NORMAL")
        try:
            yield store
        finally:
            store.dispose()
        return
    name = f"accord_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    store = open_store(url)
    try:
        yield store
    finally:
        store.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(store: Store, messages: int) -> tuple[str, str]:
    keys = bootstrap(store, name="Bench Outfitters")
    business = keys.business_id
    now = utcnow()
    with store.write() as conn:
        template_id = templates.create_template(
            conn,
            business_id=business,
            data=TemplateIn(
                name="routes",
                subject="{{ contact.first_name | default('Hello') }}, new routes are out",
                html=HTML,
                text="Hello {{ contact.first_name | default('friend') }}: shop.example/routes",
            ),
        )
        list_id = lists.create_list(conn, business_id=business, data=ListIn(name="all"))
        lead_rows, consent_rows, member_rows = [], [], []
        for i in range(messages):
            email, anonymous_id, lead_id = f"p{i}@people.example", f"anon-{i}", f"lead_{i}"
            lead_rows.append(
                {
                    "id": lead_id,
                    "business_id": business,
                    "email": email,
                    "anonymous_id": anonymous_id,
                    "answers": "{}",
                    "utm": "{}",
                    "source": "form",
                    "status": "confirmed",
                    "created_at": now,
                    "confirmed_at": now,
                }
            )
            consent_rows.append(
                {
                    "id": f"lc_{i}",
                    "business_id": business,
                    "lead_id": lead_id,
                    "purpose": "marketing",
                    "given_at": now,
                    "confirmed_at": now,
                    "status": "recorded",
                }
            )
            member_rows.append(
                {
                    "list_id": list_id,
                    "email": email,
                    "business_id": business,
                    "anonymous_id": anonymous_id,
                    "added_at": now,
                    "traits": json.dumps({"first_name": f"P{i}", "city": "Bergamo"}),
                }
            )
        for table, rows in (
            (leads, lead_rows),
            (lead_consents, consent_rows),
            (email_list_members, member_rows),
        ):
            for start in range(0, len(rows), 2000):
                conn.execute(table.insert(), rows[start : start + 2000])
        # Send time asks the consent ledger: each member's confirmation is recorded there.
        for row in lead_rows:
            record_in_ledger(
                conn,
                business_id=business,
                anonymous_id=str(row["anonymous_id"]),
                user_id=None,
                purposes={"marketing": True},
                source="form",
                evidence={},
            )
        campaign_id = campaigns.create_campaign(
            conn,
            business_id=business,
            data=CampaignIn(
                name="bench",
                template_id=template_id,
                list_id=list_id,
                from_address="news@shop.example",
            ),
        )
    return business, campaign_id


def one_run(backend: str, messages: int, concurrency: int, port: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder, state_store(backend, Path(folder)) as store:
        business, campaign_id = prepare(store, messages)
        mailer = Mailer(
            smtp=SmtpConfig(
                host="127.0.0.1", port=port, rate_per_second=0, concurrency=concurrency
            ),
            signer=Signer("bench-signing-key"),
            base_url="https://mail.shop.example",
            chunk=500,
            min_human_delay=timedelta(seconds=2),
        )
        start = time.perf_counter()
        report = asyncio.run(
            sending.send_campaign(
                store,
                business_id=business,
                campaign_id=campaign_id,
                mailer=mailer,
                wiring=Wiring(),
            )
        )
        elapsed = time.perf_counter() - start
    if report.sent != messages:
        raise SystemExit(f"sent {report.sent} of {messages}: {report}")
    return {"messages": messages, "seconds": elapsed, "messages_per_second": messages / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="500 messages, one run")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs = 500, 1
    runs = []
    with smtp_sink() as port:
        for index in range(args.runs):
            result = one_run(args.backend, args.messages, args.concurrency, port)
            runs.append(result)
            print(
                f"run {index + 1}: {result['messages_per_second']:.0f} messages/s "
                f"({result['seconds']:.2f} s)",
                file=sys.stderr,
            )
    median = statistics.median(r["messages_per_second"] for r in runs)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print("| backend | messages | concurrency | runs | median messages/s |")
    print("|---|---|---|---|---|")
    print(f"| {args.backend} | {args.messages} | {args.concurrency} | {args.runs} | {median:.0f} |")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"email-{stamp}.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "args": vars(args),
                "runs": runs,
                "median_messages_per_second": median,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
