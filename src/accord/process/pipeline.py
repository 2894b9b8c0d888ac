"""The pipeline: what processing an inbox batch does, as one ordered list of named steps.

Each step is one context's part, named for that context, and calls its service:

- `identity`: each event's identifiers resolve to a profile (merging profiles the event
  joins, folding the event into the profile's state), and events naming an erased
  person are found (`identity.service.resolve_events`);
- `profiles`: each event is filed under its profile in the inbox, where the profile's
  recent events and real-time audiences read it; an erased person's events are deleted
  (`collect.service.link_profiles`, `drop_events`);
- `audiences`: the profiles the events touched enter and leave real-time audiences
  (`audiences.realtime.apply_realtime`);
- `journeys`: people move on these events and audience changes: goals, waits, entries
  (`journeys.runner.Runner.handle_events`, `handle_audience_changes`);
- `leads`: a track event scores the lead it is of; an event a scoring rule calls a
  purchase makes the lead a customer (`leads.service.score_event`);
- `lake`: the batch's events are written to the lake (`lake.service.write_batch`).

All but the lake work on a chunk of events, one business at a time, inside the
transaction that marks the chunk's events processed: only the events this transaction
marks reach them, so a chunk redone after a crash or by another worker changes nothing
twice (a lead is scored once per event). The lake works on the whole batch, before its
chunks: files named by the batch id are rewritten whole when the batch is redone, so
they hold each event once, without a transaction spanning the database and the files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection

from accord.audiences.definitions import audience_slugs
from accord.audiences.realtime import apply_realtime
from accord.collect.service import drop_events, link_profiles
from accord.core.clock import parse_instant
from accord.identity.service import erased_events, resolve_events
from accord.journeys.runner import Runner
from accord.lake.schema import lake_row
from accord.lake.service import remove_events, write_batch
from accord.leads.service import score_event, scores_events
from accord.process.journeys import environment as journey_environment
from accord.store.db import Store


class AudienceMove(NamedTuple):
    """A profile entering (or leaving) a real-time audience, named by its slug."""

    profile_id: str
    audience: str
    entered: bool


@dataclass
class Chunk:
    """One business's events of a chunk, and what the steps before found about them."""

    business_id: str
    # (inbox row, event) pairs this transaction marked processed, in inbox order.
    events: list[tuple[Any, dict[str, Any]]]
    # On PostgreSQL identity locks the rows it reads, so concurrent workers queue.
    lock_rows: bool = False
    # identity: the profile each event joined (by inbox seq), and events of erased people.
    links: dict[int, str] = field(default_factory=dict)
    erased: set[int] = field(default_factory=set)
    # profiles: the profiles these events changed.
    touched: set[str] = field(default_factory=set)
    # audiences: who entered and who left real-time audiences.
    audience_changes: list[AudienceMove] = field(default_factory=list)


@dataclass
class Batch:
    """A claimed batch: every row of it (processed ones too) with its event."""

    id: str
    rows: list[Any]
    events: list[dict[str, Any]]
    lake_url: str
    # A claim taken over from a worker that stopped may have left temporary lake files.
    resumed: bool = False
    # lake: events left out of the lake files as an erased person's.
    erased: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Step:
    """One context's part of processing: on each chunk, or around the batch's chunks."""

    name: str
    on_chunk: Callable[[Connection, Chunk], None] | None = None
    before_chunks: Callable[[Store, Batch], None] | None = None
    after_chunks: Callable[[Store, Batch], None] | None = None


def _named(chunk: Chunk) -> list[tuple[Any, dict[str, Any]]]:
    # An anonymous count (consent refused) names nobody, so it joins no profile.
    return [(r, e) for r, e in chunk.events if e.get("userId") or e.get("anonymousId")]


def resolve_identities(conn: Connection, chunk: Chunk) -> None:
    named = _named(chunk)
    if not named:
        return
    resolved = resolve_events(
        conn,
        business_id=chunk.business_id,
        events=[(row.seq, row.source_id, event, row.payload) for row, event in named],
        lock_rows=chunk.lock_rows,
    )
    # An event whose identifiers are all blocked placeholders joins no profile.
    chunk.links = {seq: pid for seq, pid, gone in resolved if pid and not gone}
    chunk.erased = {seq for seq, _, gone in resolved if gone}


def file_under_profiles(conn: Connection, chunk: Chunk) -> None:
    if chunk.erased:
        # An erased person's late or replayed event is not kept anywhere.
        drop_events(conn, seqs=chunk.erased)
    link_profiles(conn, links=chunk.links)
    chunk.touched = set(chunk.links.values())


def update_audiences(conn: Connection, chunk: Chunk) -> None:
    changes = apply_realtime(conn, business_id=chunk.business_id, profile_ids=sorted(chunk.touched))
    if changes:
        slugs = audience_slugs(conn, business_id=chunk.business_id)
        chunk.audience_changes = [
            AudienceMove(
                c.profile_id, slugs.get(c.audience_id, c.audience_id), c.change == "entered"
            )
            for c in changes
        ]


@dataclass(frozen=True)
class MovePeople:
    """Journeys: one runner kept across batches keeps its cache of journey definitions."""

    runner: Runner

    def __call__(self, conn: Connection, chunk: Chunk) -> None:
        self.runner.handle_events(
            conn,
            business_id=chunk.business_id,
            events=[(chunk.links[r.seq], e) for r, e in chunk.events if r.seq in chunk.links],
        )
        if chunk.audience_changes:
            self.runner.handle_audience_changes(
                conn, business_id=chunk.business_id, changes=chunk.audience_changes
            )


def score_leads(conn: Connection, chunk: Chunk) -> None:
    if not scores_events(conn, business_id=chunk.business_id):
        return
    for row, event in _named(chunk):
        if event.get("type") == "track" and row.seq not in chunk.erased:
            score_event(conn, business_id=chunk.business_id, event=event)


def _erased(store: Store, rows: list[Any], events: list[dict[str, Any]]) -> set[int]:
    """Events naming an erased person: they never reach the lake."""
    by_business: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for row, event in zip(rows, events, strict=True):
        by_business[row.business_id].append((row.seq, event))
    with store.read() as conn:
        return {
            seq
            for business_id, todo in by_business.items()
            for seq in erased_events(conn, business_id=business_id, events=todo)
        }


def write_lake(store: Store, batch: Batch) -> None:
    batch.erased = _erased(store, batch.rows, batch.events)
    write_batch(
        batch.lake_url,
        batch_id=batch.id,
        clean_leftovers=batch.resumed,
        rows=[
            (row.business_id, lake_row(row.seq, row.source_id, event))
            for row, event in zip(batch.rows, batch.events, strict=True)
            if row.seq not in batch.erased
        ],
    )


def unwrite_erased(store: Store, batch: Batch) -> None:
    """Cut from this batch's lake files the events of a person erased while it ran.

    An erasure stores its tombstones before it rewrites the lake, so either its rewrite
    sees this batch's files or this second look sees its tombstones.
    """
    late = _erased(store, batch.rows, batch.events) - batch.erased
    by_business: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row, event in zip(batch.rows, batch.events, strict=True):
        if row.seq in late:
            by_business[row.business_id].append(event)
    for business_id, gone in by_business.items():
        remove_events(
            batch.lake_url,
            business_id=business_id,
            days={parse_instant(e["timestamp"]).date().isoformat() for e in gone},
            message_ids={str(e["messageId"]) for e in gone},
        )


def default_steps(runner: Runner | None = None) -> tuple[Step, ...]:
    """Every step, in order: the chunk steps run in this order on each chunk; the lake
    writes the batch before its first chunk and cuts late erasures after its last."""
    return (
        Step("identity", on_chunk=resolve_identities),
        Step("profiles", on_chunk=file_under_profiles),
        Step("audiences", on_chunk=update_audiences),
        Step("journeys", on_chunk=MovePeople(runner or Runner(journey_environment()))),
        Step("leads", on_chunk=score_leads),
        Step("lake", before_chunks=write_lake, after_chunks=unwrite_erased),
    )


def run_chunk(conn: Connection, chunk: Chunk, steps: Sequence[Step]) -> None:
    for step in steps:
        if step.on_chunk is not None:
            step.on_chunk(conn, chunk)
