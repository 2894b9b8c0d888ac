"""The benchmarks' shared data set: a lake of demo events with the profiles and identifiers
the worker would link them to, built once per size and cached.

    from dataset import ensure            # bench/ is on sys.path for `python bench/x.py`
    data = ensure(events=10_000_000)      # cached under bench/results/data/demo-...
    data.lake, data.profiles, data.identifiers, data.business_id, data.now, data.info

How it is built, fast enough for 10M events on 2 cores:

1. Visitors are independent in the demo generator, so they are cut into shards of
   `SHARD_VISITORS` visitors (fixed, whatever the number of processes) and each shard is
   simulated in its own process (`generate_visitor_events`, message ids from a position
   range of its own). Each event becomes a lake row with `lake_row`, the worker's own
   mapping, and each shard is written as one Parquet file in a staging folder.
2. Shards are taken in order until they hold `events`; the last one is simulated again
   cut at the exact count, so the data set has exactly `events` events and depends only
   on the seed, the window and the size, never on the number of processes.
3. Each shard links its events to profiles the way `bench/audiences.py` always did (one
   profile per browser; a userId joins the profile of the browser that first sent it;
   identify traits latest-wins; the first locale seen): visitors share no browser and
   no userId, so shards can do it alone.
4. DuckDB splits the staged rows by day (streaming, in bounded memory), numbering
   `inbox_seq` 1..N in shard order; each day is then sorted by time and written as the
   lake looks after compaction: one file per business and day (`part-demo.parquet`),
   in row groups of 131,072 rows.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from accord.audiences.compile import IDENTIFIER_SCHEMA, profiles_table
from accord.audiences.predefined import BUILTIN_TRAITS
from accord.core.clock import parse_instant
from accord.demo.generator import generate_visitor_events
from accord.lake.schema import EVENT_SCHEMA
from accord.lake.service import ROW_GROUP_ROWS, visible_files

RESULTS = Path(__file__).resolve().parent / "results"
# Generated data sets, cached between runs (bench/results/ is git-ignored).
DATA = RESULTS / "data"
BUSINESS = "biz_bench"
SOURCE = "src_bench"
START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 60
SEED = 42
# About 100,000 events a shard: seconds of work, a few hundred MB in a process.
SHARD_VISITORS = 5_000
# The profiles' trait columns (the compiler's shape): the built-in traits and `locale`.
TRAITS = {**BUILTIN_TRAITS, "locale": "string"}
# Bump when the layout or the linking change, so old caches are not reused.
FORMAT = 1


@dataclass(frozen=True)
class Built:
    """A built data set: its files and what it holds."""

    folder: Path
    lake: Path  # the lake's root: business_id=…/day=…/part-demo.parquet
    profiles: Path  # profiles_table(…, TRAITS) rows
    identifiers: Path  # (kind, value, profile_id): anonymous_id and user_id
    business_id: str
    start: datetime
    days: int
    info: dict[str, Any]  # events, profiles, identifiers, users, build_seconds, …

    @property
    def now(self) -> datetime:
        """The end of the window: the natural "now" for relative conditions."""
        return self.start + timedelta(days=self.days)


def ensure(
    *,
    events: int = 10_000_000,
    folder: Path | None = None,
    seed: int = SEED,
    start: datetime = START,
    days: int = DAYS,
    processes: int | None = None,
    shard_visitors: int = SHARD_VISITORS,
    log: bool = True,
) -> Built:
    """The data set of exactly `events` demo events, built unless cached in `folder`.

    Simulated shards are kept in a staging folder shared by every size with the same
    seed and window (`folder`/staging when a folder is given): a stopped build resumes,
    and a smaller data set reuses the first shards of a larger one.
    """
    if events < 1:
        raise ValueError("events must be at least 1")
    simulation = {"seed": seed, "start": start.isoformat(), "days": days}
    simulation |= {"shard_visitors": shard_visitors, "format": FORMAT}
    name = f"seed{seed}-{start:%Y%m%d}-{days}d"
    staging = folder / "staging" if folder else DATA / f"shards-{name}-{shard_visitors}v-f{FORMAT}"
    folder = folder or DATA / f"demo-{events}-{name}"
    params = {"events": events, **simulation}
    done = folder / "done.json"
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("params") == params:
            return _built(folder, start, days, info)
    staged = staging / "simulation.json"
    if not (staged.exists() and json.loads(staged.read_text()) == simulation):
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        staged.write_text(json.dumps(simulation))
    folder.mkdir(parents=True, exist_ok=True)
    for old in ("lake", "profiles.parquet", "identifiers.parquet", "done.json"):
        shutil.rmtree(folder / old, ignore_errors=True)
        (folder / old).unlink(missing_ok=True)
    started = time.perf_counter()
    processes = processes or os.cpu_count() or 1
    shards = _simulate(staging, simulation, events, processes, log=log)
    simulated = time.perf_counter() - started
    if log:
        print(f"  simulated {events} events in {len(shards)} shards: {simulated:.1f} s", flush=True)
    _lay_out(folder, staging, shards, threads=processes)
    _concatenate(folder / "profiles.parquet", [staging / s.profiles for s in shards])
    _concatenate(folder / "identifiers.parquet", [staging / s.identifiers for s in shards])
    info = {
        "params": params,
        "events": sum(s.events for s in shards),
        "profiles": sum(s.profiles_count for s in shards),
        "identifiers": sum(s.identifiers_count for s in shards),
        # People with a userId (who signed up or logged in); a shard has SHARD_VISITORS
        # visitors in all, the cut one fewer.
        "users": sum(s.visitors for s in shards),
        "shards": len(shards),
        "processes": processes,
        "simulate_seconds": round(simulated, 1),
        # Less dependent on the load: the simulation's CPU time per event, in the processes.
        "simulate_cpu_us_per_event": _cpu_per_event(shards),
        "build_seconds": round(time.perf_counter() - started, 1),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    done.write_text(json.dumps(info, indent=2))
    return _built(folder, start, days, info)


def _cpu_per_event(shards: list[_Shard]) -> float:
    timed = [s for s in shards if s.cpu_seconds]
    return round(1e6 * sum(s.cpu_seconds for s in timed) / max(1, sum(s.events for s in timed)), 1)


def _built(folder: Path, start: datetime, days: int, info: dict[str, Any]) -> Built:
    return Built(
        folder=folder,
        lake=folder / "lake",
        profiles=folder / "profiles.parquet",
        identifiers=folder / "identifiers.parquet",
        business_id=BUSINESS,
        start=start,
        days=days,
        info=info,
    )


@dataclass(frozen=True)
class _Shard:
    index: int
    stem: str
    events: int
    visitors: int
    profiles_count: int
    identifiers_count: int
    data: str  # file names in the staging folder
    profiles: str
    identifiers: str
    cpu_seconds: float = 0.0


def _simulate(
    staging: Path, params: dict[str, Any], events: int, processes: int, *, log: bool
) -> list[_Shard]:
    """The shards, in order, holding exactly `events` events."""
    finished: dict[int, _Shard] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        running: dict[int, Future[_Shard]] = {}
        indices = itertools.count()
        while True:
            # Enough when the shards done so far hold the events; a shard's size varies,
            # so they are started one by one, as many at a time as there are processes.
            if sum(s.events for s in finished.values()) < events:
                while len(running) < processes:
                    index = next(indices)
                    running[index] = _start(pool, staging, params, index, None)
            if not running:
                break
            index = min(running)
            finished[index] = running.pop(index).result()
            if log:
                total = sum(s.events for s in finished.values())
                print(f"  shard {index}: {finished[index].events} events ({total})", flush=True)
        # The smallest run of shards from the first that holds the events (the others
        # stay staged for a larger data set).
        kept: list[_Shard] = []
        for index in sorted(finished):
            held = sum(s.events for s in kept)
            if held >= events:
                break
            if held + finished[index].events > events:
                # Simulated again, cut at the exact count (a prefix of the same visitors).
                finished[index] = _start(pool, staging, params, index, events - held).result()
            kept.append(finished[index])
    return kept


def _stem(index: int, limit: int | None) -> str:
    return f"{index:05d}" if limit is None else f"{index:05d}-first{limit}"


def _start(
    pool: ProcessPoolExecutor, staging: Path, params: dict[str, Any], index: int, limit: int | None
) -> Future[_Shard]:
    """A shard's simulation, or its result staged by an earlier build."""
    done = staging / f"shard-{_stem(index, limit)}.json"
    if done.exists():
        staged: Future[_Shard] = Future()
        staged.set_result(_Shard(**json.loads(done.read_text())))
        return staged
    return pool.submit(_shard, str(staging), params, index, limit)


def _shard(staging: str, params: dict[str, Any], index: int, limit: int | None) -> _Shard:
    """Simulate one shard's visitors; write its lake rows, profiles and identifiers."""
    from accord.lake.schema import lake_row

    cpu = time.process_time()
    first = index * params["shard_visitors"]
    stream = generate_visitor_events(
        range(first, first + params["shard_visitors"]),
        seed=params["seed"],
        start=datetime.fromisoformat(params["start"]),
        days=params["days"],
        # Disjoint position ranges keep message ids unique across shards.
        first_position=index << 40,
    )
    if limit is not None:
        stream = itertools.islice(stream, limit)
    names = EVENT_SCHEMA.names
    columns: dict[str, list[Any]] = {name: [] for name in names}
    by_browser: dict[str, str] = {}
    by_user: dict[str, str] = {}
    profiles: dict[str, dict[str, Any]] = {}
    users: set[str] = set()
    seq = 0
    for event in stream:
        seq += 1
        # The shard's own sequence; the layout numbers the whole lake from it.
        row = lake_row(seq, SOURCE, event)
        for name in names:
            columns[name].append(row[name])
        anonymous, user = event.get("anonymousId"), event.get("userId")
        if user:
            users.add(user)
        profile_id = (by_user.get(user) if user else None) or (
            by_browser.get(anonymous) if anonymous else None
        )
        if profile_id is None:
            profile_id = f"prof_{index}_{len(profiles)}"
            profiles[profile_id] = {"traits": {}, "first": event["timestamp"], "last": None}
        if anonymous:
            by_browser.setdefault(anonymous, profile_id)
        if user:
            by_user.setdefault(user, profile_id)
        profile = profiles[profile_id]
        profile["first"] = min(profile["first"], event["timestamp"])
        profile["last"] = max(profile["last"] or event["timestamp"], event["timestamp"])
        if event["type"] == "identify" and isinstance(event.get("traits"), dict):
            profile["traits"].update(event["traits"])
        locale = (event.get("context") or {}).get("locale")
        if locale and "locale" not in profile["traits"]:
            profile["traits"]["locale"] = locale
    stem = _stem(index, limit)
    data = f"events-{stem}.parquet"
    pq.write_table(
        pa.Table.from_pydict(columns, schema=EVENT_SCHEMA),
        f"{staging}/{data}",
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
    )
    pq.write_table(
        profiles_table(
            (
                (pid, p["traits"], parse_instant(p["first"]), parse_instant(p["last"]))
                for pid, p in profiles.items()
            ),
            TRAITS,
        ),
        f"{staging}/profiles-{stem}.parquet",
    )
    identifiers = [("anonymous_id", a, p) for a, p in by_browser.items()]
    identifiers += [("user_id", u, p) for u, p in by_user.items()]
    pq.write_table(
        pa.Table.from_pydict(
            {
                "kind": [k for k, _, _ in identifiers],
                "value": [v for _, v, _ in identifiers],
                "profile_id": [p for _, _, p in identifiers],
            },
            schema=IDENTIFIER_SCHEMA,
        ),
        f"{staging}/identifiers-{stem}.parquet",
    )
    shard = _Shard(
        index=index,
        stem=stem,
        events=seq,
        visitors=len(users),  # with a userId: the field's name is kept for staged shards
        profiles_count=len(profiles),
        identifiers_count=len(identifiers),
        data=data,
        profiles=f"profiles-{stem}.parquet",
        identifiers=f"identifiers-{stem}.parquet",
        cpu_seconds=round(time.process_time() - cpu, 2),
    )
    # Written last: a shard with this file is complete.
    (Path(staging) / f"shard-{stem}.json").write_text(json.dumps(dataclasses.asdict(shard)))
    return shard


def _lay_out(folder: Path, staging: Path, shards: list[_Shard], *, threads: int) -> None:
    """The staged rows as the compacted lake: one file per business and day, sorted by time
    like `accord.lake.compaction` sorts, in row groups of ROW_GROUP_ROWS."""
    offsets = itertools.accumulate((s.events for s in shards), initial=0)
    # Each shard's rows are numbered after the rows of the shards before it.
    numbering = ", ".join(
        f"({s.index}, {offset})" for s, offset in zip(shards, offsets, strict=False)
    )
    listing = ", ".join(f"'{staging / s.data}'" for s in shards)
    columns = [
        "e.inbox_seq + o.offset_ AS inbox_seq" if name == "inbox_seq" else f'e."{name}"'
        for name in EVENT_SCHEMA.names
    ]
    by_day = folder / "by-day"
    shutil.rmtree(by_day, ignore_errors=True)
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute(f"SET threads = {threads}")
        # Streamed, not sorted: a sort of every row would hold them all in memory.
        connection.execute("SET preserve_insertion_order = false")
        connection.execute("SET memory_limit = '3GB'")
        connection.execute(f"SET temp_directory = '{folder / 'duckdb-tmp'}'")
        connection.execute(
            f"""
            COPY (
                SELECT {", ".join(columns)}, CAST(e."timestamp" AS DATE) AS day
                FROM read_parquet([{listing}], filename = true) AS e
                JOIN (VALUES {numbering}) AS o(shard, offset_)
                  ON o.shard = CAST(regexp_extract(e.filename, 'events-(\\d+)', 1) AS INTEGER)
            ) TO '{by_day}' (FORMAT parquet, PARTITION_BY (day), COMPRESSION snappy)
            """
        )
    finally:
        connection.close()
    shutil.rmtree(folder / "duckdb-tmp", ignore_errors=True)
    lake = folder / "lake"
    for day in sorted(by_day.iterdir()):
        rows = ds.dataset(day, schema=EVENT_SCHEMA, format="parquet").to_table()
        rows = rows.sort_by([("timestamp", "ascending"), ("inbox_seq", "ascending")])
        target = lake / f"business_id={BUSINESS}" / day.name
        target.mkdir(parents=True)
        pq.write_table(
            rows,
            target / "part-demo.parquet",
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
        )
    shutil.rmtree(by_day)
    _check_layout(lake)


def _check_layout(lake: Path) -> None:
    """Every file is where readers look and has exactly the lake's columns."""
    files = visible_files(str(lake), BUSINESS)
    if not files:
        raise RuntimeError(f"no lake files written under {lake}")
    for path in files:
        schema = pq.read_schema(path).remove_metadata()
        if not schema.equals(EVENT_SCHEMA):
            raise RuntimeError(f"{path} has columns {schema}, not the lake's")
    days = {Path(path).parent.name for path in files}
    if len(days) != len(files):
        raise RuntimeError(f"{len(files)} files for {len(days)} days: expected one a day")


def _concatenate(target: Path, parts: list[Path]) -> None:
    table = pa.concat_tables(pq.read_table(part) for part in parts)
    pq.write_table(table, target, row_group_size=ROW_GROUP_ROWS)
