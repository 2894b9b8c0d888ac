"""Reproducible ingest benchmark: /v1/batch throughput and /v1/track latency at a fixed rate.

For each backend (SQLite, PostgreSQL) and server mode (inline worker on, the product default,
and optionally --no-worker to show collection alone) this script:

1. creates a throwaway data directory (and, for PostgreSQL, a throwaway database),
2. bootstraps a business with `accord bootstrap --json` to get a write key,
3. starts `accord serve` on a free 127.0.0.1 port and waits for /healthz,
4. per run: posts --events demo events as pre-serialised /v1/batch bodies over a few
   keep-alive connections (events/s = acknowledged events / wall time), checks in the
   `inbox` table that every acknowledged event is stored, waits for the worker to drain,
   then sends single /v1/track calls open-loop at --rate req/s for --duration s and
   records the latency of each call measured from its scheduled send time,
5. reports the median of the runs as a markdown table and writes every figure as JSON to
   bench/results/ingest-<timestamp>.json.

Usage: .venv/bin/python bench/ingest.py [--backend sqlite|postgresql|both] [--runs 3]
       [--events 100000] [--batch-size 500] [--rate 500] [--duration 20]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

import accord
from accord.demo.generator import generate_n_events

HOST = "127.0.0.1"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The server's defaults (accord.core.settings.Settings): 500 KB per batch, 32 KB per event.
MAX_BATCH_BYTES = 500 * 1024
MAX_EVENT_BYTES = 32 * 1024
REQUEST_TIMEOUT_S = 60.0
BATCH_PHASE_TIMEOUT_S = 600.0
STARTUP_TIMEOUT_S = 90.0
RESULTS_DIR = Path(__file__).resolve().parent / "results"
GOAL_BATCH_EVENTS_PER_S = 20_000
GOAL_TRACK_P99_MS = 10.0
RUDDERSTACK_EVENTS_PER_S = 1_700


# --------------------------------------------------------------------------- environment


@dataclass
class Target:
    backend: str
    worker: bool
    http_workers: int
    env: dict[str, str]
    database_url: str | None  # None: SQLite file in the data directory
    data_dir: Path
    write_key: str


def _base_env() -> dict[str, str]:
    # Only our own ACCORD_* settings, so a developer's shell cannot change the figures.
    return {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    name = f"accord_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def target(backend: str, *, worker: bool, http_workers: int = 1) -> Iterator[Target]:
    """A fresh data directory (and database) with one bootstrapped business."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"accord-bench-{backend}-"))
    try:
        with contextlib.ExitStack() as stack:
            env = _base_env()
            env["ACCORD_DATA_DIR"] = str(data_dir)
            database_url = None
            if backend == "postgresql":
                database_url = stack.enter_context(_pg_database())
                env["ACCORD_DATABASE_URL"] = database_url
            out = subprocess.run(
                [sys.executable, "-m", "accord.cli", "bootstrap", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=STARTUP_TIMEOUT_S,
                check=True,
            )
            keys = json.loads(out.stdout.strip().splitlines()[-1])
            yield Target(
                backend, worker, http_workers, env, database_url, data_dir, keys["write_key"]
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return orjson.loads(body)
    finally:
        conn.close()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> float:
        return _proc_cpu_seconds(self.process.pid)

    def pending(self) -> int:
        return int(_get_json(self.port, "/healthz")["pending_events"])


@contextlib.contextmanager
def server(t: Target) -> Iterator[Server]:
    port = _free_port()
    log = t.data_dir / f"serve-{port}.log"
    command = [sys.executable, "-m", "accord.cli", "serve", "--host", HOST, "--port", str(port)]
    if not t.worker:
        command.append("--no-worker")
    command += ["--workers", str(t.http_workers)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, env=t.env, stdout=log_file, stderr=subprocess.STDOUT)
    srv = Server(process, port, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"accord serve exited:\n{log.read_text()[-3000:]}")
            try:
                srv.pending()
                break
            except (OSError, RuntimeError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"accord serve not healthy after {STARTUP_TIMEOUT_S}s"
                    ) from None
                time.sleep(0.2)
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def inbox_rows(t: Target) -> int:
    """Rows in the inbox, read straight from the state store."""
    if t.database_url is None:
        with contextlib.closing(sqlite3.connect(t.data_dir / "accord.db", timeout=60)) as conn:
            return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])
    with psycopg.connect(t.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM inbox").fetchone()
        assert row is not None
        return int(row[0])


def wait_drained(srv: Server, timeout_s: float) -> float | None:
    """Seconds until the worker has processed every inbox row, or None on timeout."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        with contextlib.suppress(OSError, RuntimeError, http.client.HTTPException):
            if srv.pending() == 0:
                return time.perf_counter() - start
        time.sleep(0.1)
    return None


# --------------------------------------------------------------------------- events


def _events(n: int, seed: int) -> Iterator[dict[str, Any]]:
    # The generator's default window is Oct 2026; end it a day ago to stay well inside the
    # server's age and future limits whatever today is.
    start = datetime.now(UTC) - timedelta(days=31)
    return generate_n_events(n, seed=seed, start=start, days=30)


@dataclass
class Bodies:
    bodies: list[bytes]
    counts: list[int]
    event_bytes: list[int]


def batch_bodies(n: int, *, seed: int, batch_size: int) -> Bodies:
    """n demo events as /v1/batch bodies of at most batch_size events and < 500 KB each."""
    out = Bodies([], [], [])
    chunk: list[bytes] = []
    size = 0
    overhead = len(b'{"batch":[]}')

    def flush() -> None:
        nonlocal size
        if chunk:
            body = b'{"batch":[' + b",".join(chunk) + b"]}"
            assert len(body) < MAX_BATCH_BYTES, len(body)
            out.bodies.append(body)
            out.counts.append(len(chunk))
            chunk.clear()
        size = overhead

    flush()
    for event in _events(n, seed):
        raw = orjson.dumps(event)
        if len(raw) > MAX_EVENT_BYTES:
            raise ValueError(f"demo event of {len(raw)} bytes exceeds the per-event limit")
        out.event_bytes.append(len(raw))
        if len(chunk) >= batch_size or size + len(raw) + 1 >= MAX_BATCH_BYTES:
            flush()
        chunk.append(raw)
        size += len(raw) + 1
    flush()
    return out


def track_bodies(n: int, *, seed: int) -> list[bytes]:
    """n single track calls from the demo stream (about half the stream is track).

    Live calls carry the time they happen, so each is restamped with the current time (the
    batches keep the generator's 30-day spread, like a client flushing a backlog).
    """
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = []
    for event in _events(4 * n + 100, seed):
        if event["type"] == "track":
            out.append(orjson.dumps({**event, "timestamp": now}))
            if len(out) == n:
                return out
    raise ValueError(f"demo stream yielded only {len(out)} track events, need {n}")


# --------------------------------------------------------------------------- load


def _headers(write_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a transport error."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = headers
        self.conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            self.conn.request("POST", path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
            return 0, repr(exc).encode()

    def close(self) -> None:
        self.conn.close()


def _proc_cpu_seconds(pid: int | str) -> float:
    """User + system CPU time of one process so far (Linux /proc), NaN if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds() -> dict[str, float]:
    """CPU time so far of every live `postgres` process (the server and its backends)."""
    out: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() == "postgres":
                    seconds = _proc_cpu_seconds(proc.name)
                    if seconds == seconds:  # not NaN: the process still exists
                        out[proc.name] = seconds
    return out


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


@dataclass(frozen=True)
class Snapshot:
    wall: float
    server: float
    client: float
    postgres: dict[str, float]
    machine: float


def _cpu_snapshot(srv: Server) -> Snapshot:
    return Snapshot(
        wall=time.perf_counter(),
        server=srv.cpu_seconds(),
        client=time.process_time(),
        postgres=_postgres_cpu_seconds(),
        machine=_machine_busy_seconds(),
    )


def _cpu_usage(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Average cores used during the phase; `other_cores` is load that is not ours.

    postgres counts processes alive at the end (a backend that exited mid-phase is missed).
    """
    wall = after.wall - before.wall
    postgres = sum(cpu - before.postgres.get(pid, 0.0) for pid, cpu in after.postgres.items())
    cores = {
        "server_cores": (after.server - before.server) / wall,
        "client_cores": (after.client - before.client) / wall,
        "postgres_cores": postgres / wall,
        "machine_cores": (after.machine - before.machine) / wall,
    }
    cores["other_cores"] = max(
        0.0,
        cores["machine_cores"]
        - cores["server_cores"]
        - cores["client_cores"]
        - cores["postgres_cores"],
    )
    return cores


def background_cores(seconds: float = 1.0) -> float:
    """Cores busy on this machine while the benchmark is idle: other people's load."""
    before = _machine_busy_seconds()
    time.sleep(seconds)
    return (_machine_busy_seconds() - before) / seconds


def fsync_latency(directory: Path, count: int = 200) -> dict[str, float]:
    """p50/p99 of fsync after a 4 KB append in `directory`: what one durable commit costs."""
    path = directory / "fsync-probe"
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"\0" * 4096)
            start = time.perf_counter()
            os.fsync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    samples.sort()
    return {
        "fsync_p50_ms": percentile(samples, 50) * 1000,
        "fsync_p99_ms": percentile(samples, 99) * 1000,
    }


def wait_for_quiet(threshold: float, timeout_s: float) -> float:
    """Wait (bounded) until other load is at most `threshold` cores; return the last sample."""
    deadline = time.monotonic() + timeout_s
    load = background_cores()
    while load > threshold and time.monotonic() < deadline:
        print(f"  waiting: {load:.2f} cores busy with other work", file=sys.stderr, flush=True)
        time.sleep(4.0)
        load = background_cores()
    return load


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def run_batches(srv: Server, write_key: str, bodies: Bodies, connections: int) -> dict[str, Any]:
    """Post every body once over `connections` keep-alive connections."""
    headers = _headers(write_key)
    lock = threading.Lock()
    next_index = 0
    acked = 0
    dropped = 0
    sent = 0
    errors: list[str] = []
    latencies: list[float] = []
    last_ack = 0.0
    deadline = time.perf_counter() + BATCH_PHASE_TIMEOUT_S

    def sender() -> None:
        nonlocal next_index, acked, dropped, sent, last_ack
        client = Client(srv.port, headers)
        try:
            while True:
                with lock:
                    i = next_index
                    next_index += 1
                if i >= len(bodies.bodies) or time.perf_counter() > deadline:
                    return
                with lock:
                    sent += bodies.counts[i]
                start = time.perf_counter()
                status, data = client.post("/v1/batch", bodies.bodies[i])
                end = time.perf_counter()
                with lock:
                    latencies.append(end - start)
                    if status == 200:
                        answer = orjson.loads(data)
                        acked += int(answer["received"])
                        # Acknowledged but not stored: the consent gate's choice, not a loss.
                        dropped += int(answer.get("dropped_by_consent", 0))
                        last_ack = max(last_ack, end)
                    else:
                        errors.append(f"{status}: {data[:200]!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    before = _cpu_snapshot(srv)
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.perf_counter()) + REQUEST_TIMEOUT_S)
    after = _cpu_snapshot(srv)
    seconds = (last_ack or time.perf_counter()) - t0
    latencies.sort()
    return {
        "events_sent": sent,
        "requests": len(bodies.bodies),
        "events_acked": acked,
        "events_dropped_by_consent": dropped,
        "errors": len(errors),
        "error_samples": errors[:5],
        "seconds": seconds,
        "events_per_s": acked / seconds if seconds > 0 else 0.0,
        "request_p50_ms": percentile(latencies, 50) * 1000,
        "request_p99_ms": percentile(latencies, 99) * 1000,
        **_cpu_usage(before, after),
    }


def run_fixed_rate(
    srv: Server, write_key: str, bodies: list[bytes], rate: float, senders: int
) -> dict[str, Any]:
    """Open loop: call i is due at t0 + i/rate whatever happened before; latency is measured
    from the due time, so a slow server shows up as queueing instead of a lower send rate."""
    headers = _headers(write_key)
    total = len(bodies)
    interval = 1.0 / rate
    lock = threading.Lock()
    next_index = 0
    latency = [float("nan")] * total
    service = [float("nan")] * total
    lateness = [float("nan")] * total
    status_of = [-1] * total
    t0 = time.perf_counter() + 0.2
    hard_deadline = t0 + total * interval + REQUEST_TIMEOUT_S

    def sender() -> None:
        nonlocal next_index
        client = Client(srv.port, headers)
        try:
            while True:
                with lock:
                    i = next_index
                    next_index += 1
                if i >= total:
                    return
                due = t0 + i * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                start = time.perf_counter()
                if start > hard_deadline:
                    return
                status, _ = client.post("/v1/track", bodies[i])
                end = time.perf_counter()
                latency[i] = end - due
                service[i] = end - start
                lateness[i] = start - due
                status_of[i] = status
        finally:
            client.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    before = _cpu_snapshot(srv)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=hard_deadline - time.perf_counter() + REQUEST_TIMEOUT_S)
    after = _cpu_snapshot(srv)
    ok = [i for i in range(total) if status_of[i] == 200]
    lat = sorted(latency[i] for i in ok)
    svc = sorted(service[i] for i in ok)
    late = sorted(lateness[i] for i in ok)
    done = [t0 + i * interval + latency[i] for i in range(total) if status_of[i] != -1]
    span = (max(done) - t0) if done else float("nan")
    return {
        "requests": total,
        "ok": len(ok),
        "errors": total - len(ok),
        "target_rate": rate,
        "achieved_rate": len(ok) / span if span > 0 else 0.0,
        "p50_ms": percentile(lat, 50) * 1000,
        "p90_ms": percentile(lat, 90) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": (lat[-1] if lat else float("nan")) * 1000,
        "service_p50_ms": percentile(svc, 50) * 1000,
        "service_p99_ms": percentile(svc, 99) * 1000,
        "client_lateness_p99_ms": percentile(late, 99) * 1000,
        **_cpu_usage(before, after),
    }


# --------------------------------------------------------------------------- orchestration


def bench_target(t: Target, args: argparse.Namespace, seed_base: int) -> list[dict[str, Any]]:
    mode = "inline worker" if t.worker else "--no-worker"
    runs: list[dict[str, Any]] = []
    with server(t) as srv:
        # Warm up the write-key cache, compiled statements and the worker's first batch.
        warm = batch_bodies(200, seed=seed_base, batch_size=100)
        run_batches(srv, t.write_key, warm, 1)
        run_fixed_rate(srv, t.write_key, track_bodies(50, seed=seed_base + 1), 100, 2)
        if t.worker:
            wait_drained(srv, args.drain_timeout)
        for run in range(args.runs):
            seed = seed_base + 10 * (run + 1)
            bodies = batch_bodies(args.events, seed=seed, batch_size=args.batch_size)
            singles = track_bodies(int(args.rate * args.duration), seed=seed + 1)
            idle = wait_for_quiet(args.max_background, args.quiet_timeout)
            rows_before = inbox_rows(t)
            batch = run_batches(srv, t.write_key, bodies, args.connections)
            batch["rows_stored"] = inbox_rows(t) - rows_before
            # Every event was acknowledged, and every acknowledged event is in the inbox
            # unless the consent gate dropped it (counted apart: not a lost event).
            kept = batch["events_acked"] - batch["events_dropped_by_consent"]
            batch["verified"] = (
                batch["rows_stored"] == kept and batch["events_acked"] == args.events
            )
            batch["mean_event_bytes"] = statistics.fmean(bodies.event_bytes)
            batch["mean_body_bytes"] = statistics.fmean(len(b) for b in bodies.bodies)
            result: dict[str, Any] = {
                "run": run + 1,
                "seed": seed,
                "background_cores": idle,
                **fsync_latency(t.data_dir),
                "batch": batch,
            }
            if t.worker:
                drained = wait_drained(srv, args.drain_timeout)
                result["drain_after_last_ack_s"] = drained
                result["pipeline_events_per_s"] = (
                    batch["events_acked"] / (batch["seconds"] + drained)
                    if drained is not None
                    else None
                )
            track = run_fixed_rate(srv, t.write_key, singles, args.rate, args.senders)
            if t.worker:
                wait_drained(srv, args.drain_timeout)
            result["track"] = track
            runs.append(result)
            print(
                f"  {t.backend:<10} {mode:<13} run {run + 1}: "
                f"{batch['events_per_s']:,.0f} events/s batch "
                f"({batch['events_acked']:,} acked, {batch['rows_stored']:,} stored, "
                f"{batch['events_dropped_by_consent']:,} dropped by consent, "
                f"{batch['errors']} errors); track p50 {track['p50_ms']:.2f} ms "
                f"p99 {track['p99_ms']:.2f} ms at {track['achieved_rate']:.0f} req/s "
                f"({track['errors']} errors)",
                file=sys.stderr,
                flush=True,
            )
    return runs


def _median(runs: list[dict[str, Any]], section: str | None, key: str) -> float | None:
    values = [(r[section] if section else r).get(key) for r in runs]
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        f"batch_{k}": _median(runs, "batch", k)
        for k in (
            "events_per_s",
            "seconds",
            "request_p50_ms",
            "request_p99_ms",
            "server_cores",
            "client_cores",
            "postgres_cores",
            "other_cores",
            "mean_event_bytes",
        )
    }
    summary["batch_dropped_by_consent"] = _median(runs, "batch", "events_dropped_by_consent")
    summary["batch_verified_all_runs"] = all(r["batch"]["verified"] for r in runs)
    summary["batch_errors_total"] = sum(r["batch"]["errors"] for r in runs)
    summary["pipeline_events_per_s"] = _median(runs, None, "pipeline_events_per_s")
    summary["background_cores_max"] = max(r["background_cores"] for r in runs)
    summary["fsync_p50_ms"] = _median(runs, None, "fsync_p50_ms")
    summary["fsync_p99_ms"] = _median(runs, None, "fsync_p99_ms")
    for k in (
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "achieved_rate",
        "service_p99_ms",
        "client_lateness_p99_ms",
        "server_cores",
        "client_cores",
        "postgres_cores",
        "other_cores",
    ):
        summary[f"track_{k}"] = _median(runs, "track", k)
    summary["track_errors_total"] = sum(r["track"]["errors"] for r in runs)
    return summary


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(results: list[dict[str, Any]], runs: int, info: dict[str, Any]) -> str:
    lines = [
        f"accord {info.get('commit') or info.get('accord_from')}, "
        f"{info.get('nproc')} × {info.get('cpu')}, "
        f"Python {info.get('python')}, SQLite {info.get('sqlite')}, "
        f"PostgreSQL {info.get('postgresql', '–')}.",
        "",
        f"Median of {runs} runs. Goals: ≥ {GOAL_BATCH_EVENTS_PER_S:,} events/s through "
        f"/v1/batch, p99 ≤ {GOAL_TRACK_P99_MS:g} ms for /v1/track at the fixed rate "
        f"(RudderStack anchor: ~{RUDDERSTACK_EVENTS_PER_S:,} events/s on 2 cores). "
        "End to end: events / time from the first batch sent until the worker drained the inbox.",
        "",
        "| backend | server | batch events/s | dropped by consent | stored = acked − dropped "
        "| end to end events/s | track p50 ms | p90 ms | p99 ms | max ms | achieved req/s "
        "| errors |",
        "|---|---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["summary"]
        lines.append(
            f"| {r['backend']} | {'inline worker' if r['worker'] else '--no-worker'} "
            f"| {_fmt(s['batch_events_per_s'])} "
            f"| {_fmt(s['batch_dropped_by_consent'])} "
            f"| {'yes' if s['batch_verified_all_runs'] else 'NO'} "
            f"| {_fmt(s['pipeline_events_per_s'])} "
            f"| {_fmt(s['track_p50_ms'], '.2f')} | {_fmt(s['track_p90_ms'], '.2f')} "
            f"| {_fmt(s['track_p99_ms'], '.2f')} | {_fmt(s['track_max_ms'], '.1f')} "
            f"| {_fmt(s['track_achieved_rate'])} "
            f"| {s['batch_errors_total'] + s['track_errors_total']} |"
        )
    lines += [
        "",
        "CPU in cores (1.0 = one core busy) averaged over each phase: accord serve / "
        "postgres processes / this client / everything else on the machine.",
        "",
        "| backend | server | batch request p50/p99 ms | CPU during batches "
        "| CPU during track calls | idle load before runs | fsync p50/p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]

    def cpu(s: dict[str, Any], phase: str) -> str:
        return "/".join(
            _fmt(s[f"{phase}_{k}_cores"], ".2f") for k in ("server", "postgres", "client", "other")
        )

    for r in results:
        s = r["summary"]
        lines.append(
            f"| {r['backend']} | {'inline worker' if r['worker'] else '--no-worker'} "
            f"| {_fmt(s['batch_request_p50_ms'])}/{_fmt(s['batch_request_p99_ms'])} "
            f"| {cpu(s, 'batch')} | {cpu(s, 'track')} "
            f"| ≤ {_fmt(s['background_cores_max'], '.2f')} "
            f"| {_fmt(s['fsync_p50_ms'], '.2f')}/{_fmt(s['fsync_p99_ms'], '.2f')} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        repo = Path(__file__).resolve().parent.parent
        git = ["git", "-C", str(repo)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        info["commit"] = commit + ("+dirty" if dirty else "") if commit else None
    info["accord_from"] = str(Path(accord.__file__).resolve().parent)
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000, help="events per batch run")
    parser.add_argument("--batch-size", type=int, default=500, help="events per /v1/batch")
    parser.add_argument("--connections", type=int, default=4, help="concurrent batch senders")
    parser.add_argument("--rate", type=float, default=500, help="/v1/track calls per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds of /v1/track calls")
    parser.add_argument("--senders", type=int, default=16, help="threads sending /v1/track")
    parser.add_argument(
        "--compare-no-worker",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure `accord serve --no-worker` (collection alone)",
    )
    parser.add_argument(
        "--http-workers", type=int, default=1, help="`accord serve --workers N` (HTTP processes)"
    )
    parser.add_argument("--drain-timeout", type=float, default=600, help="max wait for worker")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: random)")
    parser.add_argument(
        "--max-background",
        type=float,
        default=0.3,
        help="before each run, wait until other processes use at most this many cores",
    )
    parser.add_argument(
        "--quiet-timeout", type=float, default=120, help="max seconds to wait for that"
    )
    args = parser.parse_args(argv)
    for name in ("runs", "events", "batch_size", "connections", "senders"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.rate <= 0 or args.duration <= 0 or args.rate * args.duration > 1_000_000:
        parser.error("--rate and --duration must be positive, at most 1,000,000 calls in all")

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    modes = [True, False] if args.compare_no_worker else [True]
    seed_base = args.seed if args.seed is not None else secrets.randbelow(1_000_000) * 1000
    info = machine()
    if "postgresql" in backends:
        with psycopg.connect(PG_ADMIN_URL) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else None

    started = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    for backend in backends:
        for worker in modes:
            with target(backend, worker=worker, http_workers=args.http_workers) as t:
                runs = bench_target(t, args, seed_base + len(results) * 100)
            results.append(
                {"backend": backend, "worker": worker, "runs": runs, "summary": summarise(runs)}
            )

    table = markdown(results, args.runs, info)
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"ingest-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "started": started.isoformat(),
        "seconds": (datetime.now(UTC) - started).total_seconds(),
        "command": [Path(sys.executable).name, *sys.argv],
        "args": vars(args),
        "seed_base": seed_base,
        "machine": info,
        "goals": {
            "batch_events_per_s": GOAL_BATCH_EVENTS_PER_S,
            "track_p99_ms": GOAL_TRACK_P99_MS,
            "rudderstack_events_per_s": RUDDERSTACK_EVENTS_PER_S,
        },
        "results": results,
        "markdown": table,
    }
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    print(f"\nresults: {path}", file=sys.stderr)
    failed = any(
        not r["summary"]["batch_verified_all_runs"]
        or r["summary"]["batch_errors_total"]
        or r["summary"]["track_errors_total"]
        for r in results
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
