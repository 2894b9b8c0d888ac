"""CPU time per single /v1/track call: sequential calls to an idle `accord serve`.

Where `bench/ingest.py` asks at a fixed rate and reports latency, this script sends calls
one after another over one keep-alive connection and divides the server process's own CPU
time (user + system, from /proc) by the number of calls. CPU per call is what caps one
process's rate of single calls, and it reads about the same on a busy machine, where
latency and throughput do not. With `--py-spy FILE` it also samples the server with
py-spy (installed separately; it is not a dependency of Accord) while the calls run.

Usage: .venv/bin/python bench/single_call.py [--backend sqlite|postgresql|both]
       [--calls 3000] [--rounds 3] [--worker/--no-worker] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ingest  # bench/ingest.py: servers, data directories, events and the HTTP client


def measure(srv: ingest.Server, write_key: str, bodies: list[bytes]) -> dict[str, Any]:
    """Send `bodies` one after another; the server's CPU per call and the latencies."""
    client = ingest.Client(srv.port, ingest._headers(write_key))
    try:
        latencies: list[float] = []
        errors = 0
        cpu_before = srv.cpu_seconds()
        wall_before = time.perf_counter()
        for body in bodies:
            start = time.perf_counter()
            status, _ = client.post("/v1/track", body)
            latencies.append(time.perf_counter() - start)
            errors += status != 200
        wall = time.perf_counter() - wall_before
        cpu = srv.cpu_seconds() - cpu_before
    finally:
        client.close()
    latencies.sort()
    return {
        "calls": len(bodies),
        "errors": errors,
        "cpu_us_per_call": cpu / len(bodies) * 1e6,
        "wall_us_per_call": wall / len(bodies) * 1e6,
        "p50_ms": ingest.percentile(latencies, 0.50) * 1000,
        "p99_ms": ingest.percentile(latencies, 0.99) * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def run_backend(backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rounds: list[dict[str, Any]] = []
    with ingest.target(backend, worker=args.worker) as t, ingest.server(t) as srv:
        bodies = ingest.track_bodies(args.calls * (args.rounds + 1), seed=args.seed)
        measure(srv, t.write_key, bodies[: args.calls])  # warm-up: caches, pools, imports
        spy = None
        if args.py_spy:
            spy = _start_py_spy(srv.process.pid, Path(f"{args.py_spy}-{backend}.txt"))
        for index in range(1, args.rounds + 1):
            chunk = bodies[index * args.calls : (index + 1) * args.calls]
            result = measure(srv, t.write_key, chunk)
            result["load_average"] = _load_average()
            rounds.append(result)
        if spy is not None:
            spy.terminate()
            spy.wait(timeout=60)
    return rounds


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--rate", "250", "--nonblocking"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the calls start
    return process


def _load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--calls", type=int, default=3000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--py-spy", default=None, help="write py-spy samples to FILE-<backend>")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be >= 1")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    failed = False
    print(
        "| backend | worker | CPU µs/call (rounds) | wall µs/call | p50 ms | p99 ms | max ms "
        "| load |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for backend in backends:
        rounds = run_backend(backend, args)
        failed |= any(r["errors"] for r in rounds)
        cpu = [r["cpu_us_per_call"] for r in rounds]

        def med(key: str, rounds: list[dict[str, Any]] = rounds) -> float:
            return statistics.median(r[key] for r in rounds)

        print(
            f"| {backend} | {'yes' if args.worker else 'no'} | {statistics.median(cpu):,.0f} "
            f"({', '.join(f'{c:,.0f}' for c in cpu)}) | {med('wall_us_per_call'):,.0f} "
            f"| {med('p50_ms'):.2f} | {med('p99_ms'):.2f} | {med('max_ms'):.0f} "
            f"| {med('load_average'):.2f} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
