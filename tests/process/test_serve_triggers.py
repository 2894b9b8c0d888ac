"""Issue 15's acceptance: what Accord does by itself with only `accord serve` running.

Each test starts the real server (`tests/serverproc.py`) on SQLite and on PostgreSQL,
creates a business in the store before it starts, and then does everything a user
does through the public HTTP API: admin routes with the admin token, collection and
consent with the write key. Nothing is run by hand: the worker's pipeline and its
scheduled jobs must carry every trigger. docs/operations.md ("What runs by itself")
names these tests per trigger, and tests/process/test_no_test_only_triggers.py holds
that table to the registered steps and jobs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from accord.accounts.models import Bootstrap
from tests.serverproc import ServerProcess, server_env
from tests.smtp_sink import running_sink
from tests.webhook_receiver import Received, running_receiver

pytestmark = [pytest.mark.keeps_unknown_location, pytest.mark.slow, pytest.mark.timeout(240)]

T = TypeVar("T")

# The servers must run this worktree's code, whatever PYTHONPATH the caller has.
SRC = Path(__file__).resolve().parents[2] / "src"
# A route this branch added: a server answering without it runs other code.
THIS_BRANCH_ROUTE = "/api/jobs"
POLL = 0.2


# A server, and a user talking to it -------------------------------------------------------


@dataclass
class Accord:
    """One running `accord serve` and the two ways a user talks to it."""

    server: ServerProcess
    # Admin API and pages, as the business's admin.
    admin: httpx.Client
    # Collection and consent, with the business's write key.
    site: httpx.Client

    def track(self, anonymous_id: str, event: str, **extra: Any) -> None:
        body = {"anonymousId": anonymous_id, "event": event, **extra}
        ok(self.site.post("/v1/track", json=body))

    def identify(self, anonymous_id: str, **traits: Any) -> None:
        ok(self.site.post("/v1/identify", json={"anonymousId": anonymous_id, "traits": traits}))

    def consent_property(self) -> None:
        """The site's consent property, which decisions are recorded under."""
        body = {"key": "shop-web", "name": "Shop"}
        ok(self.admin.post("/api/consent/properties", json=body))

    def consent(self, anonymous_id: str, *, marketing: bool) -> None:
        body = {
            "anonymousId": anonymous_id,
            "property": "shop-web",
            "source": "api",
            "purposes": {"marketing": marketing},
        }
        ok(self.site.post("/v1/consent", json=body))

    def profile_id(self, anonymous_id: str) -> str:
        """The person's profile, once the worker has processed their events."""

        def found() -> str | None:
            response = self.admin.get("/api/profiles", params={"anonymous_id": anonymous_id})
            return str(response.json()["id"]) if response.status_code == 200 else None

        return eventually(found, within=30, what=f"a profile for {anonymous_id}", accord=self)

    def journey(self, key: str, definition: dict[str, Any]) -> None:
        body = {"key": key, "name": key, "definition": definition}
        ok(self.admin.post("/api/journeys", json=body), 201)
        ok(self.admin.post(f"/api/journeys/{key}/status", json={"status": "active"}))

    def runs(self, profile_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = ok(self.admin.get(f"/api/profiles/{profile_id}/journeys"))
        return runs

    def runs_of(
        self, profile_id: str, journey_id: str | None = None
    ) -> list[dict[str, Any]] | None:
        """The person's passes (through one journey), or None before there is any."""
        found = [r for r in self.runs(profile_id) if journey_id in (None, r["journey_id"])]
        return found or None


def _env(tmp_path: Path, database_url: str, extra: dict[str, str]) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    return server_env(
        data_dir=tmp_path,
        database_url=database_url,
        lake_url=str(tmp_path / "lake"),
        extra={
            "PYTHONPATH": pythonpath,
            # The webhook receivers listen on loopback, which outbound requests may not reach
            # unless the operator allows it.
            "ACCORD_OUTBOUND_ALLOW": "127.0.0.1",
            **extra,
        },
    )


@contextmanager
def served(
    tmp_path: Path,
    database_url: str,
    keys: Bootstrap,
    *,
    extra: dict[str, str] | None = None,
    log: str = "server.log",
) -> Iterator[Accord]:
    env = _env(tmp_path, database_url, extra or {})
    with (
        ServerProcess(env, log_path=tmp_path / log) as server,
        httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {keys.admin_token}"},
            timeout=30.0,
        ) as admin,
        httpx.Client(base_url=server.base_url, auth=(keys.write_key, ""), timeout=30.0) as site,
    ):
        paths = admin.get("/openapi.json").json()["paths"]
        assert THIS_BRANCH_ROUTE in paths, "the server does not run this worktree's code"
        yield Accord(server=server, admin=admin, site=site)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json() if response.content else None


def eventually(
    probe: Callable[[], T | None], *, within: float, what: str, accord: Accord | None = None
) -> T:
    """The probe's first answer that is not None, polled until `within` seconds passed."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            tail = accord.server.log_tail() if accord is not None else ""
            raise AssertionError(f"no {what} within {within} s\n{tail}")
        time.sleep(POLL)


def marking_journey(entry: dict[str, Any], trait: str) -> dict[str, Any]:
    """A journey that sets a trait on whoever enters, then lets them out."""
    return {
        "entry": entry,
        "start": "mark",
        "nodes": {
            "mark": {"type": "update_trait", "trait": trait, "value": True, "next": "out"},
            "out": {"type": "exit"},
        },
    }


# 1. Audience webhooks ----------------------------------------------------------------------


def standard_webhooks_signed(secret: str, received: Received, tolerance: int = 300) -> bool:
    """A receiver's check, written from the Standard Webhooks specification: the secret is
    `whsec_` + base64 of the key, the signature base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    headers = received.headers
    timestamp = headers["webhook-timestamp"]
    signed = f"{headers['webhook-id']}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        s.removeprefix("v1,") for s in headers["webhook-signature"].split() if s.startswith("v1,")
    ]
    fresh = abs(time.time() - int(timestamp)) <= tolerance
    return fresh and any(hmac.compare_digest(expected, s) for s in offered)


def test_the_receiver_check_follows_the_specification() -> None:
    """The check above reproduces the specification's own test vector."""
    vector = Received(
        headers={
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "",
        },
        body=b'{"test": 2432232314}',
        status=204,
    )
    signed = f"msg_p5jXN8AQM9LWM0D4loKWxJek.{vector.headers['webhook-timestamp']}.".encode()
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    digest = hmac.new(key, signed + vector.body, hashlib.sha256).digest()
    vector.headers["webhook-signature"] = "v1,bad v1," + base64.b64encode(digest).decode()
    assert standard_webhooks_signed("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", vector)
    assert not standard_webhooks_signed("whsec_" + base64.b64encode(b"other").decode(), vector)
    # The published signature for the vector's fixed timestamp, 1614265330.
    published = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    fixed = b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + vector.body
    assert base64.b64encode(hmac.new(key, fixed, hashlib.sha256).digest()).decode() == published


def _changes(receiver_bodies: list[Received]) -> list[tuple[Received, dict[str, Any]]]:
    return [(r, change) for r in receiver_bodies for change in r.json()["changes"]]


def test_audience_webhooks_get_entries_and_erasure_notices(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    with running_receiver() as receiver, served(tmp_path, database_url, keys) as accord:
        buyers = ok(
            accord.admin.post(
                "/api/audiences",
                json={
                    "name": "Buyers",
                    "slug": "buyers",
                    "text": 'did "Order Completed" in the last 30 days',
                },
            ),
            201,
        )
        assert buyers["realtime"], "people should enter this audience as their events arrive"
        hook = ok(
            accord.admin.post(
                "/api/audiences/buyers/webhooks",
                json={"url": receiver.url, "purpose": "marketing"},
            ),
            201,
        )
        accord.journey(
            "welcome-buyers", marking_journey({"type": "audience", "audience": "buyers"}, "buyer")
        )
        accord.consent_property()
        accord.consent("anon-ada", marketing=True)
        # Bob buys too, but refused marketing: the destination must never hear of him.
        accord.consent("anon-bob", marketing=False)
        for name in ("bob", "ada"):
            accord.identify(f"anon-{name}", email=f"{name}@example.com")
            accord.track(f"anon-{name}", "Order Completed", properties={"revenue": 80})
        bought = time.monotonic()
        ada = accord.profile_id("anon-ada")
        bob = accord.profile_id("anon-bob")

        def change_of(profile_id: str, kind: str) -> tuple[Received, dict[str, Any]] | None:
            for received, change in _changes(receiver.accepted()):
                if change["profile_id"] == profile_id and change["change"] == kind:
                    return received, change
            return None

        sent, entered = eventually(
            lambda: change_of(ada, "entered"), within=60, what="entry of ada", accord=accord
        )
        assert sent.at - bought <= 60
        assert standard_webhooks_signed(hook["secret"], sent)
        assert sent.json()["audience"] == "buyers"
        assert entered["email"] == "ada@example.com"

        # The same audience change moved ada into the journey that starts on it.
        (run,) = eventually(
            partial(accord.runs_of, ada), within=10, what="ada's journey", accord=accord
        )
        assert run["status"] == "exited"

        # An audience that is not real time is computed as soon as it is saved, and the
        # journeys that start on it hear of the people that refresh found.
        accord.journey(
            "thank-ever-bought",
            marking_journey({"type": "audience", "audience": "ever-bought"}, "thanked"),
        )
        thanks = ok(accord.admin.get("/api/journeys/thank-ever-bought"))["id"]
        ok(
            accord.admin.post(
                "/api/audiences",
                json={
                    "name": "Ever bought",
                    "slug": "ever-bought",
                    "text": 'did "Order Completed"',
                },
            ),
            201,
        )
        eventually(
            lambda: (
                sorted(accord.admin.get("/api/audiences/ever-bought/members").json())
                == sorted([ada, bob])
                or None
            ),
            within=30,
            what="members of ever-bought",
            accord=accord,
        )
        for person in (ada, bob):
            eventually(
                partial(accord.runs_of, person, thanks),
                within=10,
                what="the journey on ever-bought",
                accord=accord,
            )

        erased_at = time.monotonic()
        report = ok(accord.admin.delete(f"/api/profiles/{ada}"))
        assert report["profile_id"] == ada and report["erasure_notices"] >= 1
        notice, erased = eventually(
            lambda: change_of(ada, "erased"), within=60, what="ada's erasure notice", accord=accord
        )
        assert notice.at - erased_at <= 60
        assert standard_webhooks_signed(hook["secret"], notice)
        assert erased["user_id"] is None and erased["email"] is None
        assert bob not in {c["profile_id"] for _, c in _changes(receiver.received)}


# 2. Lead scoring from events ------------------------------------------------------------


def _lead_page_stage(accord: Accord, lead_id: str, email: str) -> str | None:
    page = accord.admin.get(f"/leads/people/{lead_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    found = re.search(rf'<h1>{re.escape(email)} <span class="badge">(\w+)</span>', page.text)
    return found.group(1) if found else None


def _customer(accord: Accord, lead_id: str) -> dict[str, Any] | None:
    lead: dict[str, Any] = ok(accord.admin.get(f"/api/leads/leads/{lead_id}"))
    return lead if lead["stage"] == "customer" else None


def test_an_order_makes_the_lead_a_customer(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    with served(tmp_path, database_url, keys) as accord:
        scoring = {
            "rules": [
                {"kind": "event", "name": "Order Completed", "points": 50, "stage": "customer"}
            ]
        }
        ok(accord.admin.put("/api/leads/scoring", json=scoring), 204)
        form = {
            "slug": "welcome",
            "title": {"en": "10% off your first order"},
            "fields": [{"key": "email", "kind": "email", "label": {"en": "Email"}}],
            "privacy_policy_url": "https://shop.example/privacy",
            "from_address": "hello@shop.example",
            "double_opt_in": False,
        }
        ok(accord.admin.post("/api/leads/forms", json=form), 201)
        accord.journey(
            "thank-buyers",
            marking_journey({"type": "event", "event": "Order Completed"}, "thanked"),
        )

        def submit(answers: dict[str, str]) -> str:
            response = accord.site.post(
                "/l/welcome", data=answers, headers={"Accept": "application/json"}
            )
            return str(ok(response)["lead_id"])

        # Ada's form page carried accord.js's anonymous id; Bea's did not, so her purchase
        # is matched by the email the shop sends with it.
        leads = {
            "ada@example.com": submit({"email": "ada@example.com", "anonymous_id": "anon-ada"}),
            "bea@example.com": submit({"email": "bea@example.com"}),
        }
        before = {e: ok(accord.admin.get(f"/api/leads/leads/{i}")) for e, i in leads.items()}
        assert {lead["stage"] for lead in before.values()} == {"lead"}

        ordered = time.monotonic()
        accord.track("anon-ada", "Order Completed", properties={"revenue": 80})
        accord.track(
            "site-visitor-7",
            "Order Completed",
            properties={"revenue": 30},
            context={"traits": {"email": "bea@example.com"}},
        )
        for email, lead_id in leads.items():
            lead = eventually(
                partial(_customer, accord, lead_id),
                within=30,
                what=f"{email} as a customer",
                accord=accord,
            )
            assert time.monotonic() - ordered <= 30
            assert lead["score"] >= before[email]["score"] + 50 - 0.01
            assert _lead_page_stage(accord, lead_id, email) == "customer"

        # The same event entered the journey that starts on it.
        (run,) = eventually(
            partial(accord.runs_of, accord.profile_id("anon-ada")),
            within=10,
            what="ada's journey",
            accord=accord,
        )
        assert run["status"] == "exited"


# 3. Birthday journeys at the configured local hour ----------------------------------------

ZONES = (
    "Pacific/Auckland",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Europe/Paris",
    "UTC",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Los_Angeles",
    "Pacific/Honolulu",
)


def birthday_setting(now: datetime) -> tuple[str, str, date]:
    """A zone where the day is well under way, an `at` two minutes ago there, and the
    local date: a birthday today has just come, one tomorrow has not."""
    for name in ZONES:
        local = now.astimezone(ZoneInfo(name))
        if 3 <= local.hour <= 20:
            at = (local - timedelta(minutes=2)).strftime("%H:%M")
            return name, at, local.date()
    raise AssertionError("some zone is always between 03:00 and 21:00")


def _birthday(day: date) -> str:
    # 1992 is a leap year, so a 29 February test day has its birthday too.
    return day.replace(year=1992).isoformat()


def test_a_birthday_journey_enters_people_once_their_local_hour_has_come(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    zone, at, today = birthday_setting(datetime.now(UTC))
    journey = marking_journey({"type": "date_trait", "trait": "birthday", "at": at}, "greeted")
    journey["default_timezone"] = zone
    people = {
        "anon-today": today,
        "anon-tomorrow": today + timedelta(days=1),
        "anon-yesterday": today - timedelta(days=1),
    }
    # The business's jobs are created when a worker first starts and run at once: the
    # journey and its people are set up first by a server that runs no scheduled jobs.
    with served(
        tmp_path, database_url, keys, extra={"ACCORD_SCHEDULER_ENABLED": "false"}, log="setup.log"
    ) as setup:
        setup.journey("birthdays", journey)
        for anonymous_id, day in people.items():
            setup.identify(anonymous_id, birthday=_birthday(day))
        setup.server.wait_drained(30)
        ids = {anonymous_id: setup.profile_id(anonymous_id) for anonymous_id in people}
        assert all(setup.runs(profile_id) == [] for profile_id in ids.values())

    started = time.monotonic()
    with served(tmp_path, database_url, keys) as accord:
        (run,) = eventually(
            partial(accord.runs_of, ids["anon-today"]),
            within=60,
            what="today's birthday in the journey",
            accord=accord,
        )
        assert time.monotonic() - started <= 60
        assert run["status"] == "exited"
        entered = datetime.fromisoformat(run["entered_at"])
        assert entered.astimezone(ZoneInfo(zone)).strftime("%H:%M") >= at
        # The job that entered today's birthday is done: the others were not due.
        eventually(
            lambda: _last_finished(accord, "journeys.date_entry"),
            within=30,
            what="a finished journeys.date_entry run",
            accord=accord,
        )
        assert accord.runs(ids["anon-tomorrow"]) == []
        assert accord.runs(ids["anon-yesterday"]) == []
        report = ok(accord.admin.get("/api/journeys/birthdays/report"))
        assert report["summary"]["entered"] == 1


def _job(accord: Accord, name: str) -> dict[str, Any]:
    (job,) = [j for j in ok(accord.admin.get("/api/jobs")) if j["name"] == name]
    found: dict[str, Any] = job
    return found


def _last_finished(accord: Accord, name: str) -> str | None:
    finished: str | None = _job(accord, name)["last_finished_at"]
    return finished


# 4. A scheduled campaign, sent once ----------------------------------------------------

RECIPIENTS = 30


def _campaign_page_status(accord: Accord, campaign_id: str) -> str | None:
    page = accord.admin.get(f"/email/campaigns/{campaign_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    found = re.search(r'<h1>[^<]*<span class="badge">(\w+)</span></h1>', page.text)
    return found.group(1) if found else None


@contextmanager
def second_worker(tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`accord worker` beside the server, on the same store and settings."""
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "accord.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=30)


def test_a_scheduled_campaign_is_sent_once_when_due(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    # On PostgreSQL any number of workers share the jobs; one process owns SQLite.
    two_workers = database_url.startswith("postgresql")
    with running_sink() as sink, ExitStack() as stack:
        smtp = {
            "ACCORD_SMTP_HOST": sink.host,
            "ACCORD_SMTP_PORT": str(sink.port),
            "ACCORD_PUBLIC_URL": "http://shop.example",
        }
        accord = stack.enter_context(served(tmp_path, database_url, keys, extra=smtp))
        worker = None
        if two_workers:
            worker = stack.enter_context(
                second_worker(tmp_path, _env(tmp_path, database_url, smtp))
            )
        readers = _newsletter(accord)
        _send_scheduled(accord, readers, sink_messages=lambda: list(sink.messages))
        _send_winner(accord, readers, sink_messages=lambda: list(sink.messages))
        # The other worker polled the same jobs all along (which of the two sent a
        # campaign is up to their race).
        assert worker is None or worker.poll() is None, (tmp_path / "worker.log").read_text()


@dataclass(frozen=True)
class Readers:
    template_id: str
    list_id: str
    consenting: list[str]


def _newsletter(accord: Accord) -> Readers:
    """A template, and a list of readers who consented to marketing and two who refused."""
    template = ok(
        accord.admin.post(
            "/api/email/templates",
            json={
                "name": "spring",
                "subject": "Spring routes, {{ contact.first_name | default('friend') }}",
                "html": "<p>Hi {{ contact.first_name }}</p>",
                "text": "Hi {{ contact.first_name }}",
            },
        ),
        201,
    )
    newsletter = ok(accord.admin.post("/api/email/lists", json={"name": "newsletter"}), 201)
    accord.consent_property()
    consenting = [f"reader-{i}@example.com" for i in range(RECIPIENTS)]
    refusing = ["no-1@example.com", "no-2@example.com"]
    for address in consenting + refusing:
        anonymous_id = "anon-" + address.split("@")[0]
        accord.consent(anonymous_id, marketing=address in consenting)
        member = {"email": address, "anonymous_id": anonymous_id, "traits": {"first_name": "R"}}
        ok(accord.admin.post(f"/api/email/lists/{newsletter['id']}/members", json=member), 204)
    return Readers(template["id"], newsletter["id"], consenting)


def _at_rest(accord: Accord) -> None:
    """Once no worker holds the sending job, nothing more can go out."""
    eventually(
        lambda: not _job(accord, "email.send_due")["running"] or None,
        within=30,
        what="email.send_due at rest",
        accord=accord,
    )


def _send_scheduled(
    accord: Accord, readers: Readers, sink_messages: Callable[[], list[Any]]
) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=10)).replace(microsecond=0)
    campaign = ok(
        accord.admin.post(
            "/api/email/campaigns",
            json={
                "name": "Spring routes",
                "template_id": readers.template_id,
                "list_id": readers.list_id,
                "from_address": "news@shop.example",
                "due_at": due.isoformat(),
            },
        ),
        201,
    )
    assert _campaign_page_status(accord, campaign["id"]) == "scheduled"
    eventually(
        lambda: len(sink_messages()) >= RECIPIENTS or None,
        within=(due - datetime.now(UTC)).total_seconds() + 30,
        what=f"{RECIPIENTS} messages",
        accord=accord,
    )
    eventually(
        lambda: _campaign_page_status(accord, campaign["id"]) == "sent" or None,
        within=10,
        what="the campaign marked sent",
        accord=accord,
    )
    _at_rest(accord)
    received = sink_messages()
    per_recipient = Counter(to for message in received for to in message.envelope_to)
    assert per_recipient == Counter(readers.consenting), "each consenting reader exactly once"
    arrivals = sorted(message.at for message in received)
    assert arrivals[0] >= due, f"first message at {arrivals[0]}, due at {due}"
    assert arrivals[-1] <= due + timedelta(seconds=30), f"last at {arrivals[-1]}, due {due}"
    kpis = ok(accord.admin.get(f"/api/email/campaigns/{campaign['id']}/kpis"))
    assert kpis["sent"] == RECIPIENTS, orjson.dumps(kpis).decode()


def _send_winner(accord: Accord, readers: Readers, sink_messages: Callable[[], list[Any]]) -> None:
    """An A/B test sent by hand to a sample; the rest get the winner by themselves once
    the test's waiting time is over."""
    before = len(sink_messages())
    wait = timedelta(hours=0.002)  # 7.2 s
    campaign = ok(
        accord.admin.post(
            "/api/email/campaigns",
            json={
                "name": "Last days",
                "template_id": readers.template_id,
                "list_id": readers.list_id,
                "from_address": "news@shop.example",
                "ab_test": {
                    "subject": "Last days of spring",
                    "sample_share": 0.2,
                    "wait_hours": wait.total_seconds() / 3600,
                },
            },
        ),
        201,
    )
    sample = ok(accord.admin.post(f"/api/email/campaigns/{campaign['id']}/send"))
    tested = datetime.now(UTC)
    assert sample["status"] == "testing" and 0 < sample["sent"] < RECIPIENTS, sample
    eventually(
        lambda: len(sink_messages()) - before >= RECIPIENTS or None,
        within=wait.total_seconds() + 30,
        what="the winner sent to the rest",
        accord=accord,
    )
    eventually(
        lambda: _campaign_page_status(accord, campaign["id"]) == "sent" or None,
        within=10,
        what="the A/B campaign marked sent",
        accord=accord,
    )
    _at_rest(accord)
    received = sink_messages()[before:]
    per_recipient = Counter(to for message in received for to in message.envelope_to)
    assert per_recipient == Counter(readers.consenting), "each consenting reader exactly once"
    rest = [m for m in received if m.at > tested + timedelta(seconds=1)]
    assert len(rest) == RECIPIENTS - sample["sent"]
    assert min(m.at for m in rest) >= tested + wait
    # No winner beats the control on so small a sample: the rest get A.
    assert {m.message["Subject"] for m in rest} == {"Spring routes, R"}


# Housekeeping ----------------------------------------------------------------------------


def _finished_run(accord: Accord, name: str) -> dict[str, Any] | None:
    """The job's latest run, once it has ended."""
    runs = ok(accord.admin.get("/api/jobs/history", params={"name": name}))
    latest: dict[str, Any] | None = runs[0] if runs else None
    return latest if latest is not None and latest["status"] != "running" else None


def _installation_jobs(env: dict[str, str], cwd: Path) -> dict[str, dict[str, Any]]:
    """The installation's own jobs, as `accord jobs list --json` shows them."""
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "jobs", "list", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return {job["name"]: job for job in orjson.loads(done.stdout)}


def test_predictions_retrain_after_enough_events_and_retention_runs_by_itself(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    settings = {
        "ACCORD_PREDICT_RETRAIN_EVENTS": "20",
        # How often the worker asks whether a job should run before its schedule.
        "ACCORD_SCHEDULER_SYNC_SECONDS": "5",
    }
    with served(tmp_path, database_url, keys, extra=settings) as accord:
        train = eventually(
            lambda: next(
                (j for j in ok(accord.admin.get("/api/jobs")) if j["name"] == "predict.train"), None
            ),
            within=10,
            what="the predict.train job",
            accord=accord,
        )
        # Weekly, on Sunday at 03:00: not due before that by its schedule.
        due = datetime.fromisoformat(train["next_due_at"])
        assert due > datetime.now(UTC) + timedelta(minutes=1) and train["last_status"] is None
        batch = [
            {
                "type": "track",
                "anonymousId": f"anon-{i % 5}",
                "event": "Order Completed",
                "properties": {"revenue": 10 + i},
            }
            for i in range(20)
        ]
        ok(accord.site.post("/v1/batch", json={"batch": batch}))
        run = eventually(
            lambda: _finished_run(accord, "predict.train"),
            within=60,
            what="a finished predict.train run",
            accord=accord,
        )
        assert run["status"] == "succeeded", run
        assert {"models", "skipped", "profiles_updated"} <= set(run["counts"])
        # Recommendations retrain on the same wake-up (enough new events), even on orders
        # that name no product: there is then nothing to serve yet, and the run says so.
        recommend = eventually(
            lambda: _finished_run(accord, "recommend.train"),
            within=60,
            what="a finished recommend.train run",
            accord=accord,
        )
        assert recommend["status"] == "succeeded", recommend
        assert recommend["counts"]["interactions"] == 0

        # The installation's retention purge ran as soon as the worker started.
        env = _env(tmp_path, database_url, settings)
        purge = eventually(
            lambda: _installation_jobs(env, tmp_path)["retention.purge"]["last_status"],
            within=30,
            what="a retention.purge run",
            accord=accord,
        )
        assert purge == "succeeded"


# Journey A/B splits ---------------------------------------------------------------------

SIGN_UPS = 50
GOAL_WINDOW = timedelta(seconds=20)
SPLIT: dict[str, Any] = {
    "entry": {"type": "event", "event": "Signed Up"},
    "start": "offer",
    "nodes": {
        "offer": {
            "type": "split",
            "ab_test": True,
            "min_per_path": 10,
            "paths": [
                {"name": "discount", "weight": 1, "next": "out"},
                {"name": "story", "weight": 1, "next": "out"},
            ],
        },
        "out": {"type": "exit"},
    },
    "goal": {"event": "Order Completed", "within": f"{int(GOAL_WINDOW.total_seconds())}s"},
}


def _sign_up(accord: Accord, people: list[str]) -> dict[str, str]:
    """Sign these people up; the path each one's pass took through the split."""
    batch = [{"type": "track", "anonymousId": p, "event": "Signed Up"} for p in people]
    ok(accord.site.post("/v1/batch", json={"batch": batch}))
    paths = {}
    for person in people:
        profile_id = accord.profile_id(person)
        (run,) = eventually(
            partial(accord.runs_of, profile_id),
            within=10,
            what=f"{person}'s pass",
            accord=accord,
        )
        (split,) = [step for step in run["steps"] if step["outcome"] == "split"]
        paths[person] = split["detail"]["path"]
    return paths


def test_a_journey_ab_split_settles_by_itself(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    # As for birthdays: the people go through the split before the worker's jobs exist,
    # so `journeys.settle_splits` (every 5 minutes) runs at once when they are created.
    with served(
        tmp_path, database_url, keys, extra={"ACCORD_SCHEDULER_ENABLED": "false"}, log="setup.log"
    ) as setup:
        setup.journey("offers", SPLIT)
        paths = _sign_up(setup, [f"anon-{i}" for i in range(SIGN_UPS)])
        assert set(paths.values()) == {"discount", "story"}
        # Everyone who got the discount orders within the goal window; nobody else does.
        orders = [
            {"type": "track", "anonymousId": p, "event": "Order Completed"}
            for p, path in paths.items()
            if path == "discount"
        ]
        ok(setup.site.post("/v1/batch", json={"batch": orders}))
        setup.server.wait_drained(30)
        report = ok(setup.admin.get("/api/journeys/offers/report"))
        assert report["summary"]["converted"] == len(orders), report["summary"]
        entered = [
            datetime.fromisoformat(r["entered_at"])
            for p in paths
            for r in setup.runs(setup.profile_id(p))
        ]
    # The goal windows close before the test can be settled.
    time.sleep(max(0.0, (max(entered) + GOAL_WINDOW - datetime.now(UTC)).total_seconds()))

    with served(tmp_path, database_url, keys) as accord:
        run = eventually(
            lambda: _finished_run(accord, "journeys.settle_splits"),
            within=30,
            what="a finished journeys.settle_splits run",
            accord=accord,
        )
        assert run["status"] == "succeeded" and run["counts"] == {"winners": 1.0}, run
        # From now on everyone takes the winning path.
        later = _sign_up(accord, [f"anon-late-{i}" for i in range(10)])
        assert set(later.values()) == {"discount"}, later
