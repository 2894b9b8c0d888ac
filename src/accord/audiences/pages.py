"""Audience pages of the admin UI: list, builder with a live size estimate, detail with size
history, members, overlap, exports and webhook destinations with their parked batches, and
the suppression list."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection

from accord.audiences import activation, definitions, destinations, membership, service
from accord.audiences.api import WebhookClient, preview_definition, refresh_audiences
from accord.audiences.exports import Destination
from accord.audiences.models import (
    AudienceIn,
    AudienceView,
    Preview,
    SizePoint,
    Validated,
    WebhookIn,
)
from accord.consent import config as consent_config
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound, WebhookNotDelivered
from accord.reach import service as reach
from accord.reach.models import SUPPRESSION_KINDS
from accord.web import jobs, store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, redirect, render

router = APIRouter(include_in_schema=False)
nav = [
    NavEntry("Audiences", "/audiences", "audiences.read", "Activation", 20),
    NavEntry("Suppression lists", "/suppressions", "audiences.read", "Activation", 21),
]

Reader = Annotated[Caller, Depends(requires("audiences.read"))]
Manager = Annotated[Caller, Depends(requires("audiences.manage"))]

MEMBERS_PER_PAGE = 50
DESTINATIONS: dict[str, str] = {
    "csv": "CSV download (marketing consent)",
    "meta": "Meta customer list, hashed (advertising consent)",
    "google": "Google Ads customer match, hashed (advertising consent)",
    "interest_groups": "Interest group JSON, Protected Audience (advertising consent)",
}
EXAMPLE = 'did "Product Viewed" at least 2 times in the last 30 days\nand not did "Order Completed"'


def _text(problems: Sequence[FieldProblem]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problems)


def size_chart(points: Sequence[SizePoint]) -> Chart:
    """The audience's size after each refresh."""
    return Chart(
        title="Size after each refresh",
        x=[p.at.strftime("%Y-%m-%d %H:%M:%S") for p in points],
        series=[Series("Size", [p.size for p in points])],
        x_title="Refreshed (UTC)",
        y_title="People",
        id="size-history",
    )


def sizes_chart(audiences: Sequence[AudienceView]) -> Chart:
    """Every computed audience's size, largest first."""
    computed = sorted(
        (a for a in audiences if a.size is not None), key=lambda a: (-(a.size or 0), a.name)
    )
    names = Counter(a.name for a in computed)
    return Chart(
        title="Audience sizes",
        # Two audiences may share a name: their slugs tell the bars apart.
        x=[a.name if names[a.name] == 1 else f"{a.name} ({a.slug})" for a in computed],
        series=[Series("People", [a.size for a in computed])],
        kind="hbar",
        x_title="Audience",
        y_title="People",
        height=max(160, 28 * len(computed) + 60),
        id="audience-sizes",
    )


# List -----------------------------------------------------------------------------------


@router.get("/audiences")
def audiences_page(request: Request, state: State, caller: Reader) -> Response:
    with state.store.write() as conn:
        definitions.ensure_predefined(conn, business_id=caller.business_id)
        rows = definitions.list_audiences(conn, business_id=caller.business_id)
    return render(
        request, "audiences/list.html", caller=caller, audiences=rows, chart=sizes_chart(rows)
    )


@router.post("/audiences/refresh")
def refresh_all(request: Request, state: State, caller: Manager) -> Response:
    results = refresh_audiences(state, caller, None)
    return redirect(request, "/audiences", notice=f"Refreshed {len(results)} audiences")


# Builder --------------------------------------------------------------------------------


@dataclass
class Draft:
    """What the builder's form holds."""

    name: str = ""
    slug: str = ""
    description: str = ""
    suppression: bool = False
    source: str = "text"  # which form is the definition: "text" or "json"
    text: str = EXAMPLE
    definition: str = ""

    def parsed(self) -> tuple[dict[str, Any] | None, str | None]:
        """The definition as (JSON, text) for the services: exactly one of them is set."""
        if self.source == "json":
            try:
                data = json.loads(self.definition or "null")
            except json.JSONDecodeError as exc:
                reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                raise InvalidInput([FieldProblem("definition", reason)]) from None
            if not isinstance(data, dict):
                raise InvalidInput([FieldProblem("definition", "must be a JSON object")])
            return data, None
        return None, self.text

    def audience(self) -> AudienceIn:
        """The audience to create, as the API would receive it."""
        definition, text = self.parsed()
        try:
            return AudienceIn(
                name=self.name,
                slug=self.slug,
                description=self.description,
                definition=definition,
                text=text,
                suppression=self.suppression,
            )
        except ValidationError as exc:
            raise InvalidInput(
                [
                    FieldProblem(".".join(str(part) for part in e["loc"]), str(e["msg"]))
                    for e in exc.errors()
                ]
            ) from None


async def draft_form(
    name: Annotated[str, Form()] = "",
    slug: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    suppression: Annotated[str, Form()] = "",
    source: Annotated[str, Form()] = "text",
    text: Annotated[str, Form()] = "",
    definition: Annotated[str, Form()] = "",
) -> Draft:
    return Draft(
        name=name.strip(),
        slug=slug.strip(),
        description=description.strip(),
        suppression=bool(suppression),
        source="json" if source == "json" else "text",
        text=text,
        definition=definition,
    )


DraftForm = Annotated[Draft, Depends(draft_form)]


def _builder(
    request: Request,
    caller: Caller,
    draft: Draft,
    *,
    problems: Sequence[FieldProblem] = (),
    preview: Preview | None = None,
    checked: Validated | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "audiences/builder.html",
        caller=caller,
        draft=draft,
        problems=problems,
        preview=preview,
        checked=checked,
        status=status,
    )


@router.get("/audiences/new")
def builder_page(request: Request, caller: Reader) -> Response:
    return _builder(request, caller, Draft())


@router.post("/audiences/new/check")
def builder_check(request: Request, state: State, caller: Reader, draft: DraftForm) -> Response:
    """Validate the definition and estimate its size now, with a sample of members; saves
    nothing. This is also what the page does without JavaScript."""
    try:
        definition, text = draft.parsed()
        with state.store.read() as conn:
            checked = definitions.validate_definition(
                conn,
                business_id=caller.business_id,
                definition=definition,
                text=text,
            )
        estimate = preview_definition(state, caller, definitions.definition_from(definition, text))
    except InvalidInput as exc:
        return _builder(request, caller, draft, problems=exc.problems, status=400)
    # Both forms show the checked definition, so either can be edited next.
    draft.text = checked.text
    draft.definition = json.dumps(checked.definition, indent=2)
    return _builder(request, caller, draft, preview=estimate, checked=checked)


@router.post("/audiences/new")
def builder_save(
    request: Request,
    state: State,
    caller: Manager,
    draft: DraftForm,
    background: BackgroundTasks,
) -> Response:
    try:
        audience = draft.audience()
        with state.store.write() as conn:
            created = definitions.create_audience(
                conn, business_id=caller.business_id, audience=audience
            )
    except InvalidInput as exc:
        return _builder(request, caller, draft, problems=exc.problems, status=400)
    # Asked for once the answer is sent, on the event loop: the new audience is computed
    # at once, not at its first scheduled refresh.
    background.add_task(
        jobs.run_soon,
        state,
        business_id=caller.business_id,
        name="audiences.refresh",
        target=created.id,
    )
    return redirect(
        request,
        f"/audiences/{created.slug}",
        notice="Audience saved; its members are being computed (reload in a few seconds)",
    )


# Suppression lists ----------------------------------------------------------------------


@router.get("/suppressions")
def suppressions_page(request: Request, state: State, caller: Reader) -> Response:
    with state.store.write() as conn:
        definitions.ensure_predefined(conn, business_id=caller.business_id)
        entries = reach.list_suppressions(conn, business_id=caller.business_id)
        lists = [
            a
            for a in definitions.list_audiences(conn, business_id=caller.business_id)
            if a.suppression
        ]
    return render(
        request,
        "audiences/suppressions.html",
        caller=caller,
        entries=entries,
        lists=lists,
        kinds=SUPPRESSION_KINDS,
    )


@router.post("/suppressions")
async def suppress(
    request: Request,
    state: State,
    caller: Manager,
    kind: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "manual",
) -> Response:
    value, reason = value.strip(), reason.strip() or "manual"
    problems = []
    if kind not in SUPPRESSION_KINDS:
        problems.append(FieldProblem("kind", f"must be one of {', '.join(SUPPRESSION_KINDS)}"))
    if not 1 <= len(value) <= 255:
        problems.append(FieldProblem("value", "must be 1 to 255 characters"))
    if len(reason) > 32:
        problems.append(FieldProblem("reason", "must be at most 32 characters"))
    if problems:
        return redirect(request, "/suppressions", error=_text(problems))
    await store_work.audited(
        state,
        caller,
        "suppression.add",
        lambda conn: reach.suppress(
            conn,
            business_id=caller.business_id,
            kind=kind,
            value=value,
            reason=reason,
            source="page",
        ),
        kind=kind,
        value=value,
        reason=reason,
    )
    return redirect(request, "/suppressions", notice=f"Suppressed {kind} {value}")


@router.post("/suppressions/remove")
async def unsuppress(
    request: Request,
    state: State,
    caller: Manager,
    kind: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
) -> Response:
    removed = await store_work.audited(
        state,
        caller,
        "suppression.remove",
        lambda conn: reach.unsuppress(conn, business_id=caller.business_id, kind=kind, value=value),
        kind=kind,
        value=value,
    )
    if not removed:
        return redirect(request, "/suppressions", error=f"{kind} {value} was not suppressed")
    return redirect(request, "/suppressions", notice=f"Lifted the suppression of {kind} {value}")


# Detail ---------------------------------------------------------------------------------


def _detail(
    request: Request,
    state: State,
    caller: Caller,
    audience: str,
    *,
    page: int = 1,
    compare: str | None = None,
    webhook: dict[str, str] | None = None,
    webhook_errors: dict[str, str] | None = None,
    created: dict[str, str] | None = None,
) -> Response:
    with state.store.read() as conn:
        business_id = caller.business_id
        view = definitions.get_audience(conn, business_id=business_id, audience=audience)
        history = membership.sizes(conn, business_id=business_id, audience=view.id)
        ids = membership.member_ids(conn, business_id=business_id, audience=view.id)
        pages = max(1, -(-len(ids) // MEMBERS_PER_PAGE))
        current = min(page, pages)
        shown = ids[(current - 1) * MEMBERS_PER_PAGE : current * MEMBERS_PER_PAGE]
        found = service.people(conn, business_id=business_id, profile_ids=shown)
        others = [
            a for a in definitions.list_audiences(conn, business_id=business_id) if a.id != view.id
        ]
        overlap, overlap_error = None, None
        if compare:
            try:
                overlap = membership.overlap(
                    conn, business_id=business_id, first=view.id, second=compare
                )
            except NotFound as exc:
                overlap_error = str(exc)
        parked = destinations.list_dead_letters(
            conn, business_id=business_id, audience=view.id, status="parked"
        )
        context: dict[str, Any] = {
            "audience": view,
            "webhooks": destinations.list_webhooks(conn, business_id=business_id, audience=view.id),
            "parked": parked,
            "parked_erasures": sum(d.erasures for d in parked),
            "history": history,
            "chart": size_chart(history),
            "members": [found.get(p) for p in shown],
            "member_ids": shown,
            "member_count": len(ids),
            "page": current,
            "pages": pages,
            "others": others,
            "overlap": overlap,
            "overlap_error": overlap_error,
            "compare": compare,
            "definition_json": json.dumps(view.definition, indent=2),
            "destinations": DESTINATIONS,
            "purposes": _purposes(conn, business_id),
            "webhook": webhook or {"url": "", "purpose": "marketing"},
            "webhook_errors": webhook_errors or {},
            "created": created,
            "can_manage": caller.can("audiences.manage"),
        }
    status = 400 if webhook_errors else 200
    return render(request, "audiences/detail.html", caller=caller, status=status, **context)


def _purposes(conn: Connection, business_id: str) -> list[str]:
    return [p["key"] for p in consent_config.list_purposes(conn, business_id=business_id)]


@router.get("/audiences/{audience}")
def audience_page(
    request: Request,
    state: State,
    caller: Reader,
    audience: str,
    page: Annotated[int, Query(ge=1)] = 1,
    compare: Annotated[str | None, Query(alias="with")] = None,
) -> Response:
    return _detail(request, state, caller, audience, page=page, compare=compare)


@router.post("/audiences/{audience}/webhooks")
def add_webhook(
    request: Request,
    state: State,
    caller: Manager,
    audience: str,
    url: Annotated[str, Form(max_length=4000)] = "",
    purpose: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Add a destination (as `POST /api/audiences/{audience}/webhooks`); the page that
    answers shows its signing secret, the one time it is shown."""
    typed = {"url": url.strip(), "purpose": purpose.strip()}
    errors: dict[str, str] = {}
    try:
        body = WebhookIn.model_validate(typed)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "url"
            errors.setdefault(name, str(error["msg"]))
    with state.store.read() as conn:
        purposes = _purposes(conn, caller.business_id)
    if "purpose" not in errors and purposes and typed["purpose"] not in purposes:
        errors["purpose"] = f"not a consent purpose of yours ({', '.join(purposes)})"
    if errors:
        return _detail(request, state, caller, audience, webhook=typed, webhook_errors=errors)
    try:
        with state.store.write() as conn:
            created = destinations.add_webhook(
                conn,
                business_id=caller.business_id,
                audience=audience,
                webhook_in=body,
                outbound=state.settings.outbound_policy(),
            )
    except InvalidInput as exc:
        # An address Accord may not call (loopback, a private network, …), named by field.
        refused = {p.field: p.reason for p in exc.problems}
        return _detail(request, state, caller, audience, webhook=typed, webhook_errors=refused)
    return _detail(request, state, caller, audience, created={**created, "url": body.url})


@router.post("/audiences/{audience}/refresh")
def refresh_one(request: Request, state: State, caller: Manager, audience: str) -> Response:
    [result] = refresh_audiences(state, caller, [audience])
    return redirect(
        request,
        f"/audiences/{audience}",
        notice=f"Refreshed: {result.size} members, {result.entered} entered, {result.exited} left",
    )


@router.post("/audiences/{audience}/delete")
async def delete(request: Request, state: State, caller: Manager, audience: str) -> Response:
    try:
        await store_work.write(
            state,
            lambda conn: definitions.delete_audience(
                conn, business_id=caller.business_id, audience=audience
            ),
        )
    except InvalidInput as exc:
        return redirect(request, f"/audiences/{audience}", error=_text(exc.problems))
    return redirect(request, "/audiences", notice=f"Deleted audience {audience}")


@router.post("/audiences/{audience}/webhooks/dead-letters/{dead_letter}/replay")
def replay_dead_letter(
    request: Request,
    state: State,
    caller: Manager,
    client: WebhookClient,
    audience: str,
    dead_letter: str,
) -> Response:
    try:
        replayed = destinations.replay_dead_letter(
            state.store,
            business_id=caller.business_id,
            audience=audience,
            dead_letter_id=dead_letter,
            client=client,
        )
    except (WebhookNotDelivered, Conflict) as exc:
        return redirect(request, f"/audiences/{audience}", error=str(exc))
    return redirect(
        request,
        f"/audiences/{audience}",
        notice=f"Replayed changes {replayed.first_seq}-{replayed.last_seq} to {replayed.url}",
    )


@router.post("/audiences/{audience}/webhooks/dead-letters/{dead_letter}/discard")
async def discard_dead_letter(
    request: Request, state: State, caller: Manager, audience: str, dead_letter: str
) -> Response:
    try:
        discarded = await store_work.write(
            state,
            lambda conn: destinations.discard_dead_letter(
                conn, business_id=caller.business_id, audience=audience, dead_letter_id=dead_letter
            ),
        )
    except Conflict as exc:
        return redirect(request, f"/audiences/{audience}", error=str(exc))
    return redirect(
        request,
        f"/audiences/{audience}",
        notice=f"Discarded changes {discarded.first_seq}-{discarded.last_seq}",
    )


@router.get("/audiences/{audience}/export")
def export_page(
    request: Request,
    state: State,
    caller: Manager,
    audience: str,
    destination: str = "csv",
    owner: str = "",
    bidding_logic_url: str = "",
) -> Response:
    """What an export to a destination holds: how many people are in it and how many were
    left out for each reason, with the link that downloads it."""
    if destination not in DESTINATIONS:
        return redirect(
            request, f"/audiences/{audience}", error=f"unknown destination {destination!r}"
        )
    chosen = cast(Destination, destination)
    options = activation.interest_group_options(chosen, owner, bidding_logic_url)
    query: dict[str, str] = {}
    if options is not None:
        query = {"owner": options.owner, "bidding_logic_url": options.bidding_logic_url}

    try:
        with state.store.read() as conn:
            view = definitions.get_audience(conn, business_id=caller.business_id, audience=audience)
            result = activation.export_audience(
                conn,
                business_id=caller.business_id,
                audience=view.id,
                destination=chosen,
                interest_groups=options,
            )
    except InvalidInput as exc:
        return redirect(request, f"/audiences/{audience}", error=_text(exc.problems))
    download = f"/api/audiences/{view.slug}/export/{chosen}"
    if query:
        download += "?" + urlencode(query)
    return render(
        request,
        "audiences/export.html",
        caller=caller,
        destination=chosen,
        destination_label=DESTINATIONS[chosen],
        purpose=activation.DESTINATION_PURPOSES[chosen],
        download=download,
        audience=view,
        result=result,
    )
