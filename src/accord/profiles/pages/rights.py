"""Subject rights from a person's page: download everything held (JSON) and erase, the
erasure confirmed by typing the profile id. Both call `rights.service`, as the API does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from accord.profiles import service as profiles
from accord.rights import service as rights
from accord.web.auth import Caller, requires
from accord.web.downloads import attachment
from accord.web.state import State
from accord.web.ui import NavEntry, redirect, render

router = APIRouter(include_in_schema=False)
nav: list[NavEntry] = []

# The API's permission for exports and erasures (`rights/api.py`).
Manager = Annotated[Caller, Depends(requires("profiles.manage"))]


@router.get("/profiles/{profile_id}/export.json")
def export_download(state: State, caller: Manager, profile_id: str) -> Response:
    """Everything held about the person, as the subject access request returns it."""
    with state.store.read() as conn:
        export = rights.export_subject(conn, business_id=caller.business_id, profile_id=profile_id)
    return Response(
        export.model_dump_json(indent=2),
        media_type="application/json",
        headers=attachment(f"{profile_id}.json"),
    )


def _erase_form(
    request: Request,
    state: State,
    caller: Caller,
    profile_id: str,
    *,
    typed: str = "",
    error: str | None = None,
) -> Response:
    with state.store.read() as conn:
        view = profiles.profile_view(conn, business_id=caller.business_id, profile_id=profile_id)
    return render(
        request,
        "profiles/erase.html",
        caller=caller,
        status=400 if error else 200,
        view=view,
        events=view.computed.get("event_count", 0),
        typed=typed,
        errors={"confirm": error} if error else {},
    )


@router.get("/profiles/{profile_id}/erase")
def erase_page(request: Request, state: State, caller: Manager, profile_id: str) -> Response:
    return _erase_form(request, state, caller, profile_id)


@router.post("/profiles/{profile_id}/erase")
def erase_post(
    request: Request,
    state: State,
    caller: Manager,
    profile_id: str,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Erase only when the profile id is typed again; otherwise show the form with a 400."""
    if confirm.strip() != profile_id:
        return _erase_form(
            request,
            state,
            caller,
            profile_id,
            typed=confirm[:200],
            error="type the profile id exactly to confirm the erasure",
        )
    report = rights.erase_subject(
        state.store,
        business_id=caller.business_id,
        profile_id=profile_id,
        lake_url=state.settings.resolved_lake_url(),
        actor=caller.actor,
        ip=caller.ip,
    )
    return redirect(
        request,
        "/profiles",
        notice=(
            f"Profile {profile_id} erased: {report.identifiers} identifiers, "
            f"{report.events} events, {report.lake_files_rewritten} lake files rewritten"
        ),
    )
