"""Journey pages of the admin UI: list, graph with counts and results, and the builder."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from accord.core.clock import day_labels, utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.journeys import analytics, service
from accord.journeys.diagram import svg
from accord.journeys.graph import load_definition, parse_definition
from accord.web import jobs, store_work
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, arender, redirect

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Journeys", "/journeys", "journeys.read", "Activation", 40)]

Reader = Annotated[Caller, Depends(requires("journeys.read"))]
Manager = Annotated[Caller, Depends(requires("journeys.manage"))]

NODE_TYPES = [
    "wait",
    "wait_for_event",
    "wait_for_audience",
    "branch",
    "split",
    "send",
    "update_trait",
    "list",
    "webhook",
    "exit",
]
# What a node of each type starts with when added in the builder.
NODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "wait": {"duration": "1d", "next": ""},
    "wait_for_event": {"event": "", "timeout": "1d", "on_event": "", "on_timeout": ""},
    "wait_for_audience": {
        "audience": "",
        "change": "enter",
        "timeout": "7d",
        "on_change": "",
        "on_timeout": "",
    },
    "branch": {
        "condition": {"kind": "trait", "trait": "", "op": "=", "value": ""},
        "then": "",
        "otherwise": "",
    },
    "split": {
        "paths": [{"name": "a", "weight": 1, "next": ""}, {"name": "b", "weight": 1, "next": ""}]
    },
    "send": {"channel": "email", "message": "", "next": ""},
    "update_trait": {"trait": "", "value": "", "next": ""},
    "list": {"action": "add", "list": "", "next": ""},
    "webhook": {"destination": "", "next": ""},
    "exit": {},
}
BLANK: dict[str, Any] = {
    "entry": {"type": "api"},
    "start": "done",
    "nodes": {"done": {"type": "exit"}},
}
SETTINGS_KEYS = (
    "goal",
    "reentry",
    "max_people",
    "caps",
    "quiet_hours",
    "timezone_trait",
    "default_timezone",
    "smart_holdout",
    "destinations",
)


@router.get("/journeys")
async def journeys_page(request: Request, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> list[dict[str, Any]]:
        return [
            {"journey": j, "summary": analytics.summary(conn, journey_id=j.id)}
            for j in service.list_journeys(conn, business_id=caller.business_id)
        ]

    rows = await store_work.read(state, work)
    chart = Chart(
        title="People per journey",
        x=[row["journey"].name for row in rows],
        series=[
            Series(label, [getattr(row["summary"], field) for row in rows])
            for field, label in (
                ("entered", "Entered"),
                ("active", "Inside now"),
                ("converted", "Converted"),
            )
        ],
        kind="bar",
        y_title="People",
        id="people-per-journey",
    )
    return await arender(request, "journeys/list.html", caller=caller, rows=rows, chart=chart)


@router.post("/journeys")
async def create_page(
    request: Request,
    state: State,
    caller: Manager,
    key: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    def work(conn: Connection) -> None:
        service.create_journey(
            conn,
            business_id=caller.business_id,
            key=key.strip(),
            name=name,
            definition=BLANK,
            now=utcnow(),
            outbound=state.settings.outbound_policy(),
        )

    try:
        await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, "/journeys", error=_text(exc.problems))
    return redirect(request, f"/journeys/{key.strip()}/edit", notice="Journey created as a draft")


# How far back the journey page counts entries and conversions per day.
CHART_DAYS = 30


def daily_chart(days: dict[str, tuple[int, int]], *, first: date, last: date) -> Chart:
    """Entries and conversions per day, quiet days included."""
    labels = day_labels(first, last)
    return Chart(
        title=f"Entries and conversions per day, last {len(labels)} days (UTC)",
        x=labels,
        series=[
            Series("Entered", [days.get(d, (0, 0))[0] for d in labels]),
            Series("Converted", [days.get(d, (0, 0))[1] for d in labels]),
        ],
        x_title="Day",
        y_title="People",
        id="journey-per-day",
    )


def nodes_chart(counts: list[analytics.NodeCounts]) -> Chart:
    """How many people reached each node and how many wait there now."""
    return Chart(
        title="People per node",
        x=[c.node for c in counts],
        series=[
            Series("Reached", [c.entered for c in counts]),
            Series("Here now", [c.waiting_now for c in counts]),
        ],
        kind="bar",
        x_title="Node",
        y_title="People",
        id="journey-nodes",
    )


def _detail(state: State, caller: Caller, key: str) -> dict[str, Any]:
    now = utcnow()
    with state.store.read() as conn:
        view = service.get_journey(conn, business_id=caller.business_id, key=key)
        definition = load_definition(view.definition)
        counts = analytics.node_counts(conn, journey_id=view.id)
        first = now.date() - timedelta(days=CHART_DAYS - 1)
        since = datetime.combine(first, time(), tzinfo=UTC)
        days = analytics.per_day(conn, journey_id=view.id, since=since)
        splits = analytics.split_results(
            conn,
            journey_id=view.id,
            version=view.current_version,
            definition=definition,
            now=now,
        )
        inside = analytics.inside_per_version(conn, journey_id=view.id)
        return {
            "journey": view,
            "graph": svg(definition, counts),
            "counts": counts,
            "daily": daily_chart(days, first=first, last=now.date()),
            "nodes": nodes_chart(counts),
            "summary": analytics.summary(conn, journey_id=view.id),
            "splits": splits,
            "smart": analytics.smart_comparison(conn, journey_id=view.id),
            "older": {v: n for v, n in inside.items() if v < view.current_version},
            "current_nodes": sorted(definition.nodes),
            "can_manage": caller.can("journeys.manage"),
            "migration": {},
            "migration_errors": {},
        }


@router.get("/journeys/{key}")
async def journey_page(request: Request, state: State, caller: Reader, key: str) -> Response:
    return await arender(
        request,
        "journeys/detail.html",
        caller=caller,
        **await store_work.run(_detail, state, caller, key),
    )


def parse_node_map(text: str) -> tuple[dict[str, str], str | None]:
    """`old = new` lines as a map of node names, or why they cannot be read."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        old, sep, new = line.partition("=")
        if not sep or not old.strip() or not new.strip():
            return {}, f"line {number}: write `old node = new node`"
        found[old.strip()] = new.strip()
    return found, None


@router.post("/journeys/{key}/migrate")
async def migrate_page(
    request: Request,
    state: State,
    caller: Manager,
    key: str,
    from_version: Annotated[str, Form(max_length=10)] = "",
    node_map: Annotated[str, Form(max_length=20_000)] = "",
    confirm: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Move the people inside an older version onto the current one (as the API's migrate)."""
    errors: dict[str, str] = {}
    mapping, map_error = parse_node_map(node_map)
    if map_error:
        errors["node_map"] = map_error
    version = int(from_version) if from_version.isdigit() else None
    if version is None:
        errors["from_version"] = "choose a version"
    if confirm != "yes":
        errors["confirm"] = "tick the box to confirm the move"

    def work(conn: Connection) -> int:
        assert version is not None
        return service.migrate_runs(
            conn,
            business_id=caller.business_id,
            key=key,
            from_version=version,
            node_map=mapping,
            now=utcnow(),
        )

    if not errors:
        try:
            moved = await store_work.write(state, work)
        except InvalidInput as exc:
            errors["node_map"] = _text(exc.problems)
        else:
            return redirect(
                request,
                f"/journeys/{key}",
                notice=f"{moved} people moved from version {version} to the current version",
            )
    context = await store_work.run(_detail, state, caller, key)
    context["migration"] = {"from_version": from_version, "node_map": node_map}
    context["migration_errors"] = errors
    return await arender(request, "journeys/detail.html", caller=caller, status=400, **context)


@router.post("/journeys/{key}/status")
async def status_page(
    request: Request,
    state: State,
    caller: Manager,
    key: str,
    status: Annotated[str, Form()] = "",
) -> Response:
    def work(conn: Connection) -> None:
        service.set_status(
            conn, business_id=caller.business_id, key=key, status=status, now=utcnow()
        )

    try:
        await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, f"/journeys/{key}", error=_text(exc.problems))
    if status == "active":
        await jobs.run_soon(state, business_id=caller.business_id, name="journeys.date_entry")
    return redirect(request, f"/journeys/{key}", notice=f"Journey is now {status}")


def _builder_fields(definition: dict[str, Any]) -> dict[str, Any]:
    settings = {k: definition[k] for k in SETTINGS_KEYS if k in definition}
    return {
        "entry": json.dumps(definition.get("entry", {}), indent=2),
        "start": definition.get("start", ""),
        "messages": json.dumps(definition.get("messages", {}), indent=2),
        "settings": json.dumps(settings, indent=2),
        "nodes": [
            {
                "id": node_id,
                "type": node.get("type", ""),
                "config": json.dumps({k: v for k, v in node.items() if k != "type"}, indent=2),
            }
            for node_id, node in definition.get("nodes", {}).items()
        ],
    }


@router.get("/journeys/{key}/edit")
async def builder_page(request: Request, state: State, caller: Reader, key: str) -> Response:
    def work(conn: Connection) -> Any:
        return service.get_journey(conn, business_id=caller.business_id, key=key)

    view = await store_work.read(state, work)
    return await arender(
        request,
        "journeys/builder.html",
        caller=caller,
        journey=view,
        fields=_builder_fields(view.definition),
        node_types=NODE_TYPES,
        problems={},
    )


def _load(text: str, field: str, problems: list[FieldProblem]) -> Any:
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        problems.append(FieldProblem(field, f"not valid JSON: {exc.msg} at line {exc.lineno}"))
        return {}


@router.post("/journeys/{key}/edit")
async def builder_save(request: Request, state: State, caller: Manager, key: str) -> Response:
    """Assemble the definition from the builder's fields, validate it, and either save it
    as a new version or show the builder again with every problem next to its node."""
    form = await request.form()
    problems: list[FieldProblem] = []
    ids = [str(v) for v in form.getlist("node_id")]
    types = [str(v) for v in form.getlist("node_type")]
    configs = [str(v) for v in form.getlist("node_config")]
    removed = {str(v) for v in form.getlist("remove")}
    nodes: dict[str, Any] = {}
    for node_id, node_type, config in zip(ids, types, configs, strict=False):
        node_id = node_id.strip()
        if not node_id or node_id in removed:
            continue
        body = _load(config, f"nodes.{node_id}", problems)
        nodes[node_id] = {"type": node_type, **(body if isinstance(body, dict) else {})}
    new_id = str(form.get("new_id", "")).strip()
    new_type = str(form.get("new_type", ""))
    if new_id:
        if new_id in nodes:
            problems.append(FieldProblem(f"nodes.{new_id}", "a node with this id exists already"))
        else:
            nodes[new_id] = {"type": new_type, **NODE_DEFAULTS.get(new_type, {})}
    settings = _load(str(form.get("settings", "")), "settings", problems)
    definition: dict[str, Any] = {
        "entry": _load(str(form.get("entry", "")), "entry", problems),
        "start": str(form.get("start", "")).strip(),
        "nodes": nodes,
        "messages": _load(str(form.get("messages", "")), "messages", problems),
        **(settings if isinstance(settings, dict) else {}),
    }
    saving = form.get("action") == "save" and not new_id
    outbound = state.settings.outbound_policy()

    def work(conn: Connection) -> Any:
        if not problems:
            try:
                parsed = parse_definition(definition)
            except InvalidInput as exc:
                problems.extend(exc.problems)
            else:
                problems.extend(service.destination_problems(parsed, outbound))
        if problems or not saving:
            return service.get_journey(conn, business_id=caller.business_id, key=key)
        return service.publish_version(
            conn,
            business_id=caller.business_id,
            key=key,
            definition=definition,
            now=utcnow(),
            outbound=outbound,
        )

    view = await store_work.write(state, work)
    if saving and not problems:
        return redirect(
            request, f"/journeys/{key}", notice=f"Saved as version {view.current_version}"
        )
    by_node: dict[str, list[str]] = {}
    for problem in problems:
        parts = problem.field.split(".")
        where = parts[1] if parts[0] == "nodes" and len(parts) > 1 else parts[0]
        by_node.setdefault(where, []).append(problem.reason)
    return await arender(
        request,
        "journeys/builder.html",
        caller=caller,
        journey=view,
        fields=_builder_fields(definition),
        node_types=NODE_TYPES,
        problems=by_node,
        status=400 if problems else 200,
        notice=None if problems else ("Node added" if new_id else "No problems found"),
    )


def _text(problems: list[FieldProblem]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problems)
