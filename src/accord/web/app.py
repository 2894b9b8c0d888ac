"""The FastAPI application factory: opens the store, runs migrations, mounts routers."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from accord import __version__
from accord.accounts import pages as accounts_pages
from accord.accounts.api import router as accounts_router
from accord.accounts.service import WriteKeyCache
from accord.analytics import pages as analytics_pages
from accord.analytics.api import analytics_router as analytics_api_router
from accord.analytics.api import router as analytics_router
from accord.audiences import pages as audience_pages
from accord.audiences.api import router as audiences_router
from accord.collect import pages as import_pages
from accord.collect.api import router as collect_router
from accord.collect.inbox import InboxWriter
from accord.collect.service import limits_from
from accord.consent import pages as consent_pages
from accord.consent.api import admin_router as consent_admin_router
from accord.consent.api import public_router as consent_router
from accord.consent.gate import LedgerGate
from accord.core.settings import Settings
from accord.experiments import pages as experiment_pages
from accord.experiments.api import router as experiments_router
from accord.identity import pages as identity_pages
from accord.identity.api import router as identity_router
from accord.journeys import pages as journey_pages
from accord.journeys.api import people_router as journey_people_router
from accord.journeys.api import router as journeys_router
from accord.leads import pages as leads_pages
from accord.leads.api import router as leads_router
from accord.messaging import pages as email_pages
from accord.messaging.api import router as messaging_router
from accord.predict import pages as prediction_pages
from accord.process import pages as job_pages
from accord.process.api import router as jobs_router
from accord.process.jobs import default_kinds
from accord.process.journeys import environment as journey_environment
from accord.process.worker import pending_count
from accord.profiles import pages as profile_pages
from accord.profiles.api import router as profiles_router
from accord.reach.api import router as reach_router
from accord.recommend import pages as recommendation_pages
from accord.recommend.api import router as recommend_router
from accord.rights.api import router as rights_router
from accord.store.db import open_store
from accord.store.full import StorageHealth
from accord.store.migrate import upgrade
from accord.web import email_wiring, errors, store_work, ui
from accord.web.cmp import router as cmp_router
from accord.web.cors import PublicCors
from accord.web.headers import SecurityHeaders
from accord.web.proxies import TrustedProxies
from accord.web.state import AppState
from accord.web.tag import router as tag_router

# The API's interactive documentation (Swagger UI, shipped by fastapi-offline).
SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Accord - Swagger UI</title>
<link rel="stylesheet" href="/static-offline-docs/swagger-ui.css">
<link rel="icon" href="/static-offline-docs/favicon.png">
</head><body><div id="swagger-ui"></div>
<script src="/static-offline-docs/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body></html>
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url()
        await run_in_threadpool(upgrade, url)
        store = open_store(url, sqlite_synchronous=settings.sqlite_synchronous)
        inbox_writer = InboxWriter(store=store)
        inbox_writer.start()
        app.state.accord = AppState(
            settings=settings,
            store=store,
            inbox_writer=inbox_writer,
            write_keys=WriteKeyCache(store=store, ttl_seconds=settings.write_key_cache_seconds),
            gate=LedgerGate(store=store, ttl_seconds=settings.write_key_cache_seconds),
            limits=limits_from(settings),
            email=email_wiring.build(settings),
            job_kinds=default_kinds(),
            journey_environment=journey_environment(),
            storage=StorageHealth(settings.data_dir),
        )
        try:
            yield
        finally:
            await run_in_threadpool(inbox_writer.stop)
            store.dispose()

    app = FastAPIOffline(
        title="Accord",
        version=__version__,
        description="Consent-first customer data platform. Collection is Segment-compatible.",
        lifespan=lifespan,
        # Served below with its start-up script as a file: the CSP allows no inline script.
        docs_url=None,
    )
    errors.install(app)
    # The last added runs first: the client and scheme are settled before the headers,
    # and CORS answers preflights inside them (they get the security headers too).
    app.add_middleware(PublicCors, ttl_seconds=settings.write_key_cache_seconds)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedProxies, trusted=settings.trusted_proxies)
    # Routes are matched one by one in this order, each router walked in turn, so the
    # public routes sites call at rate come first (collection, recommendations, the
    # banner's script, config and decisions, the tag): /v1/recommendations, included
    # last, spent more CPU finding its route (about 400 before it) than answering.
    app.include_router(collect_router)
    app.include_router(recommend_router)
    app.include_router(consent_router)
    app.include_router(cmp_router)
    app.include_router(tag_router)
    app.include_router(profiles_router)
    app.include_router(rights_router)
    app.include_router(analytics_router)
    app.include_router(analytics_api_router)
    app.include_router(accounts_router)
    ui.install(
        app,
        [
            accounts_pages,
            analytics_pages,
            prediction_pages,
            recommendation_pages,
            consent_pages,
            profile_pages,
            identity_pages,
            journey_pages,
            leads_pages,
            import_pages,
            email_pages,
            audience_pages,
            experiment_pages,
            job_pages,
        ],
    )
    app.include_router(consent_admin_router)
    app.include_router(identity_router)
    app.include_router(audiences_router)
    app.include_router(reach_router)
    app.include_router(messaging_router)
    app.include_router(leads_router)
    app.include_router(experiments_router)
    app.include_router(journeys_router)
    app.include_router(journey_people_router)
    app.include_router(jobs_router)

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE)

    @app.get("/healthz", tags=["operations"], summary="Liveness, storage and inbox backlog")
    async def healthz() -> dict[str, object]:
        """`status` is `degraded` while the disk is full (writes answer 503), and `ok`
        again on its own once space returns."""
        state: AppState = app.state.accord
        problems = await store_work.run(state.storage.problems)
        pending = await store_work.run(pending_count, state.store)
        return {
            "status": "degraded" if problems else "ok",
            "version": __version__,
            "pending_events": pending,
            "problems": problems,
        }

    return app


def create_served_app(settings: Settings | None = None) -> FastAPI:
    """The app as `accord serve` runs it, with everything loaded at start-up moved out of
    the garbage collector's sight: it lives as long as the process, and a full collection
    walked all of it (about a million objects; pauses of up to a second, every request
    waiting behind them). Tests build apps with `create_app`, whose cyclic garbage must
    stay collectable."""
    app = create_app(settings)
    gc.collect()
    gc.freeze()
    return app
