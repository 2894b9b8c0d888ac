"""The jobs API and page: list, run now, change schedules, history; permissions and bad input."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.process.jobs import default_kinds
from accord.process.models import JobRunView, jobs
from accord.process.pages import duration_chart
from accord.process.scheduler import Scheduler
from accord.store.db import Store
from tests.accounts.ui import create_business, csrf_of, sign_up
from tests.charts import chart


def _admin(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


def test_jobs_are_listed_run_now_and_rescheduled(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    listed = client.get("/api/jobs", headers=_admin(keys))
    assert listed.status_code == 200
    names = {j["name"] for j in listed.json()}
    # Business jobs and one refresh per audience (the predefined ones are made at once);
    # the installation's own jobs are not the business's to see.
    assert {"audiences.refresh", "audiences.webhooks", "email.send_due", "predict.train"} <= names
    assert "retention.purge" not in names
    refreshes = [j for j in listed.json() if j["name"] == "audiences.refresh"]
    assert len(refreshes) >= 10 and all(j["target_label"] for j in refreshes)

    changed = client.patch(
        "/api/jobs/predict.train",
        headers=_admin(keys),
        json={"schedule": "0 4 * * 1", "timezone": "Europe/Paris"},
    )
    assert changed.status_code == 200, changed.text
    (view,) = changed.json()
    assert view["schedule"] == "0 4 * * 1" and view["timezone"] == "Europe/Paris"
    assert view["default_schedule"] == "0 3 * * 0"

    ran = client.post("/api/jobs/journeys.settle_splits/run", headers=_admin(keys))
    assert ran.status_code == 202
    # The worker's scheduler picks it up; here it runs in the test.
    Scheduler(store, settings, default_kinds()).run_until_idle(timeout=120)
    after = client.get("/api/jobs", headers=_admin(keys)).json()
    settle = next(j for j in after if j["name"] == "journeys.settle_splits")
    assert settle["last_status"] == "succeeded"
    history = client.get("/api/jobs/history?limit=500", headers=_admin(keys)).json()
    assert {"audiences.refresh"} <= {r["name"] for r in history}
    assert all(r["status"] == "succeeded" for r in history)


def test_bad_requests_name_the_field_and_change_nothing(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = _admin(keys)
    client.get("/api/jobs", headers=admin)
    with store.read() as conn:
        before = conn.execute(select(jobs).order_by(jobs.c.id)).all()

    unknown = client.post("/api/jobs/nope.nothing/run", headers=admin)
    assert unknown.status_code == 404 and "nope.nothing" in unknown.text

    cron = client.patch("/api/jobs/predict.train", headers=admin, json={"schedule": "0 25 * * *"})
    assert cron.status_code == 400
    assert cron.json()["problems"][0]["field"] == "schedule"

    zone = client.patch("/api/jobs/predict.train", headers=admin, json={"timezone": "Nowhere/X"})
    assert zone.status_code == 400 and zone.json()["problems"][0]["field"] == "timezone"

    target = client.patch(
        "/api/jobs/predict.train", headers=admin, json={"target": "aud_x", "enabled": False}
    )
    assert target.status_code == 400 and target.json()["problems"][0]["field"] == "target"

    # Another business's audience is not found from here.
    other = bootstrap(store, name="Other Shop")
    client.get("/api/jobs", headers=_admin(other))
    with store.read() as conn:
        theirs = conn.execute(
            select(jobs.c.target).where(
                jobs.c.business_id == other.business_id, jobs.c.name == "audiences.refresh"
            )
        ).scalar()
    assert theirs is not None
    foreign = client.post("/api/jobs/audiences.refresh/run", headers=admin, json={"target": theirs})
    assert foreign.status_code == 404
    foreign_change = client.patch(
        "/api/jobs/audiences.refresh", headers=admin, json={"target": theirs, "enabled": False}
    )
    assert foreign_change.status_code == 404

    with store.read() as conn:
        after = conn.execute(
            select(jobs).where(jobs.c.business_id == keys.business_id).order_by(jobs.c.id)
        ).all()
    assert after == [row for row in before if row.business_id == keys.business_id]


def test_running_and_rescheduling_need_the_manage_permission(
    client: TestClient, keys: Bootstrap
) -> None:
    made = client.post(
        "/api/accounts/tokens",
        headers=_admin(keys),
        json={"name": "reader", "permissions": ["jobs.read"]},
    )
    assert made.status_code in (200, 201), made.text
    reader = {"Authorization": f"Bearer {made.json()['token']}"}
    assert client.get("/api/jobs", headers=reader).status_code == 200
    assert client.post("/api/jobs/predict.train/run", headers=reader).status_code == 403
    refused = client.patch("/api/jobs/predict.train", headers=reader, json={"enabled": False})
    assert refused.status_code == 403


def test_the_jobs_page_shows_schedules_and_runs_a_job_now(
    client: TestClient, store: Store, settings: Settings
) -> None:
    browser = sign_up(client, "ops@example.com")
    create_business(browser, "Ops Shop")
    page = browser.get("/jobs")
    assert page.status_code == 200
    assert 'id="jobs"' in page.text and "audiences.refresh" in page.text
    token = csrf_of(page.text)

    def post(action: str, **data: str) -> str:
        response = client.post(
            action, data={"csrf_token": token, **data}, headers={"accept": "text/html"}
        )
        assert response.status_code == 200, response.text
        return response.text

    # The installation's own job is not the business's to run.
    assert "not found" in post("/jobs/retention.purge/run")
    assert "will run within seconds" in post("/jobs/journeys.settle_splits/run")
    refused = post("/jobs/predict.train/schedule", schedule="every 1 fortnight", timezone="UTC")
    assert "schedule: write an interval" in refused
    saved = post("/jobs/predict.train/schedule", schedule="@daily", timezone="Asia/Tokyo")
    assert "schedule saved" in saved and "Asia/Tokyo" in saved
    Scheduler(store, settings, default_kinds()).run_until_idle(timeout=120)
    shown = browser.get("/jobs").text
    assert 'id="history"' in shown and "succeeded" in shown
    durations = chart(shown, "Duration of the recent runs")
    succeeded = durations.trace("Succeeded")
    assert succeeded["type"] == "bar" and len(succeeded["y"]) == len(durations.rows)
    assert all(isinstance(y, float) for y in succeeded["y"])
    assert any(" audiences.refresh #" in label for label in durations.rows)


def _run(name: str, status: str, seconds: float | None, minute: int) -> JobRunView:
    started = datetime(2026, 12, 1, 9, minute, tzinfo=UTC)
    return JobRunView(
        id=minute,
        job_id=f"job-{name}",
        name=name,
        target=None,
        attempt=1,
        due_at=started,
        started_at=started,
        finished_at=None if seconds is None else started,
        status=status,
        seconds=seconds,
        counts={},
        error=None,
        worker="w1",
    )


def test_the_duration_chart_puts_runs_oldest_first_with_one_series_per_outcome() -> None:
    newest_first = [
        _run("lake.compact", "running", None, 4),
        _run("predict.train", "failed", 2.5, 3),
        _run("audiences.refresh", "succeeded", 0.25, 2),
        _run("audiences.refresh", "succeeded", 0.5, 1),
    ]
    drawn = duration_chart(newest_first)
    assert drawn.x == [
        "2026-12-01 09:01:00 audiences.refresh #1",
        "2026-12-01 09:02:00 audiences.refresh #2",
        "2026-12-01 09:03:00 predict.train #3",
    ]
    assert [(s.name, list(s.values)) for s in drawn.series] == [
        ("Succeeded", [0.5, 0.25, None]),
        ("Failed", [None, None, 2.5]),
    ]
    table = chart(str(drawn.html()), "Duration of the recent runs")
    assert table.rows["2026-12-01 09:03:00 predict.train #3"] == ["–", "2.50 s"]
    assert duration_chart(newest_first[:1]).is_empty()
