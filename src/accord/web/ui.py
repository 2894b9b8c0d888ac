"""The admin UI shell: templates, static files, the navigation registry, flash messages.

A context adds pages by writing a `pages.py` with a `router` (routes declared with
`include_in_schema=False` and `Depends(requires(...))`) and a `nav` list of `NavEntry`,
putting its templates under `web/templates/<context>/` (extending `base.html`), and
listing the module in `create_app`'s `ui.install(app, [...])` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from accord.accounts.service import businesses_of, permitted
from accord.core.bundles import plotly_js
from accord.core.signing import Signer
from accord.web import store_work
from accord.web.auth import ANON_CSRF_COOKIE, CSRF_FIELD, Caller, anonymous_csrf
from accord.web.charts import PLOTLY_PATH

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
# Static assets change only with a release: browsers may keep them a day.
ASSET_MAX_AGE = 86_400


@dataclass(frozen=True)
class NavEntry:
    """One link of the side navigation, shown to callers holding `permission`."""

    label: str
    path: str
    permission: str
    section: str = "Business"
    order: int = 100


class PageModule(Protocol):
    router: APIRouter
    nav: list[NavEntry]


@dataclass
class Shell:
    templates: Jinja2Templates
    nav: list[NavEntry] = field(default_factory=list)


def install(app: FastAPI, modules: Sequence[PageModule]) -> None:
    """Serve the static files, include every page router and gather their navigation."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    shell = Shell(templates=templates)
    for module in modules:
        app.include_router(module.router)
        shell.nav.extend(module.nav)
    shell.nav.sort(key=lambda entry: (entry.order, entry.label))
    app.state.ui = shell
    app.include_router(_assets)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")


_assets = APIRouter(include_in_schema=False)


def _plotly() -> bytes:
    return plotly_js().encode()


@_assets.get(PLOTLY_PATH)
async def plotly_script() -> Response:
    """plotly.js, the one chart library of the UI, from the installed `plotly` package."""
    body = await store_work.run(_plotly)
    return Response(
        body,
        media_type="text/javascript",
        headers={"Cache-Control": f"public, max-age={ASSET_MAX_AGE}"},
    )


@_assets.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask for /favicon.ico by themselves: answer with the SVG icon."""
    return FileResponse(
        STATIC_DIR / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": f"public, max-age={ASSET_MAX_AGE}"},
    )


def _shell(request: Request) -> Shell:
    shell: Shell = request.app.state.ui
    return shell


# How long the one-line message of a redirect after a form post can be shown.
MESSAGE_SECONDS = 120


def _signer(request: Request) -> Signer:
    return Signer(str(request.app.state.accord.settings.resolved_secret_key()))


def redirect(
    request: Request, path: str, *, notice: str | None = None, error: str | None = None
) -> RedirectResponse:
    """Redirect after a form post, carrying a one-line message signed so it cannot be forged."""
    query: dict[str, str] = {}
    if notice:
        query["notice"] = _signer(request).dumps_timed("notice", notice)
    if error:
        query["error"] = _signer(request).dumps_timed("error", error)
    sep = "&" if "?" in path else "?"
    target = f"{path}{sep}{urlencode(query)}" if query else path
    return RedirectResponse(target, status_code=303)


def _message(request: Request, kind: str) -> str | None:
    token = request.query_params.get(kind)
    if not token:
        return None
    found = _signer(request).loads_timed_or_none(kind, token, max_age_seconds=MESSAGE_SECONDS)
    return found if isinstance(found, str) else None


def render(
    request: Request,
    template: str,
    *,
    caller: Caller | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page in the shell: navigation for the caller's permissions, business switcher, CSRF."""
    shell = _shell(request)
    nav: list[NavEntry] = []
    switcher: list[dict[str, str]] = []
    override: str | None = context.pop("csrf_token_override", None)
    anonymous = override is None and (caller is None or not caller.csrf_token)
    if override is not None:
        csrf = override
    elif caller is not None and caller.csrf_token:
        csrf = caller.csrf_token
    else:
        csrf = anonymous_csrf(request)
    if caller is not None and caller.store is not None:
        with caller.store.read() as conn:
            nav = [
                e
                for e in shell.nav
                if permitted(conn, access=caller.access, permission=e.permission)
            ]
            if caller.person_id and caller.session_id:
                switcher = [
                    {"id": b.id, "name": b.name, "role": role}
                    for b, role in businesses_of(conn, person_id=caller.person_id)
                ]
    sections: dict[str, list[NavEntry]] = {}
    for entry in nav:
        sections.setdefault(entry.section, []).append(entry)
    response = shell.templates.TemplateResponse(
        request,
        template,
        {
            "caller": caller,
            "nav_sections": sections,
            "switcher": switcher,
            "csrf_token": csrf,
            "csrf_field": Markup('<input type="hidden" name="{}" value="{}">').format(
                CSRF_FIELD, csrf
            ),
            "notice": _message(request, "notice"),
            "error": context.pop("error", None) or _message(request, "error"),
            "current_path": request.url.path,
            **context,
        },
        status_code=status,
    )
    if anonymous and not request.cookies.get(ANON_CSRF_COOKIE):
        secure = request.url.scheme == "https"
        response.set_cookie(
            ANON_CSRF_COOKIE, csrf, httponly=True, samesite="lax", secure=secure, path="/"
        )
    return response


async def arender(
    request: Request,
    template: str,
    *,
    caller: Caller | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """`render` from an `async def` handler: the shell reads the caller's navigation and
    businesses from the store, so it runs in the thread pool."""
    return await store_work.run(render, request, template, caller=caller, status=status, **context)


def render_error(request: Request, *, status: int, message: str) -> Response:
    shell: Shell | None = getattr(request.app.state, "ui", None)
    if shell is None:
        return HTMLResponse(message, status_code=status)
    return shell.templates.TemplateResponse(
        request,
        "error.html",
        {
            "caller": None,
            "nav_sections": {},
            "switcher": [],
            "csrf_token": "",
            "csrf_field": "",
            "notice": None,
            "error": None,
            "status": status,
            "message": message,
            "current_path": request.url.path,
        },
        status_code=status,
    )
