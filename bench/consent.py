"""Consent ledger appends per second on SQLite and PostgreSQL, chain verification speed,
and (through bench/consent_codecs.py) TC string decodes per second.

Each append is one `record_consent` call in its own transaction, as `POST /v1/consent`
does it: validation, chain-head lock, hash, insert, state read-back. `--threads N`
appends from N threads at once, all into one business's chain (they queue on the
chain head). Prints JSON; the median of `--runs` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from accord.accounts.service import bootstrap
from accord.consent import config, ledger
from accord.consent.models import PropertyIn
from accord.consent.service import record_consent
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _append_many(store: Store, business_id: str, count: int, prefix: str) -> None:
    for i in range(count):
        with store.write() as conn:
            record_consent(
                conn,
                business_id=business_id,
                property_key="web",
                anonymous_id=f"{prefix}-{i}",
                purposes={"statistics": i % 2 == 0, "marketing": i % 3 == 0},
                source="banner",
                regime="gdpr",
                ip="203.0.113.9",
                user_agent="Mozilla/5.0 (X11; Linux x86_64) bench",
            )


def measure(url: str, *, appends: int, threads: int) -> dict[str, float]:
    upgrade(url)
    store = open_store(url, sqlite_synchronous="FULL")
    try:
        business_id = bootstrap(store, name=f"bench {uuid.uuid4().hex[:8]}").business_id
        with store.write() as conn:
            config.create_property(
                conn, business_id=business_id, spec=PropertyIn(key="web", name="Web")
            )
        per_thread = max(appends // threads, 1)
        workers = [
            threading.Thread(target=_append_many, args=(store, business_id, per_thread, f"t{n}"))
            for n in range(threads)
        ]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        with store.read() as conn:
            result = ledger.verify(conn, business_id=business_id)
        verify_elapsed = time.perf_counter() - start
        assert result.ok and result.records == per_thread * threads, result
        return {
            "appends_per_s": per_thread * threads / elapsed,
            "verified_records_per_s": result.records / verify_elapsed,
        }
    finally:
        store.dispose()


def _postgres_database() -> tuple[str, str]:
    name = f"accord_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, make_url(POSTGRES_ADMIN).set(database=name).render_as_string(False)


def _drop(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(
    *, backends: list[str], runs: int, appends: int, threads: int, quick: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "consent_ledger",
        "appends_per_run": appends,
        "threads": threads,
        "runs": runs,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    for backend in backends:
        figures: list[dict[str, float]] = []
        for _ in range(runs):
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    url = f"sqlite:///{Path(folder) / 'bench.db'}"
                    figures.append(measure(url, appends=appends, threads=threads))
            else:
                name, url = _postgres_database()
                try:
                    figures.append(measure(url, appends=appends, threads=threads))
                finally:
                    _drop(name)
        result[backend] = {
            key: round(statistics.median(f[key] for f in figures)) for key in figures[0]
        }
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import consent_codecs  # the codecs' own benchmark, next to this file
    except ImportError:
        result["tc_decodes"] = None
    else:
        codecs = consent_codecs.run(quick)
        result["tc_decodes"] = {
            "accord_decode_per_s": codecs["accord_decode_per_s"],
            "reference_decode_per_s": codecs["reference_decode_per_s"],
            "reference_library": codecs["reference_library"],
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if args.quick:
        args.runs, args.appends = 1, 50
    print(
        json.dumps(
            run(
                backends=backends,
                runs=args.runs,
                appends=args.appends,
                threads=args.threads,
                quick=args.quick,
            ),
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
