"""A longer schemathesis run over Accord's /openapi.json than the one in the test suite.

tests/web/test_fuzz.py runs 3 generated cases per operation on SQLite inside `make test`;
this script runs as many as asked (default 50), with any seed, on a throwaway SQLite
store or a PostgreSQL database given by URL. A case fails on a 5xx or an answer that does
not match the operation's response schema. It prints every failing operation with a curl
command to reproduce it, and exits 1 when there is any.

Usage: .venv/bin/python bench/fuzz.py [--examples 50] [--seed 19] [--database-url URL]
       [--only /api/audiences]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fuzzing import fuzz

from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.store.db import open_store
from accord.store.migrate import upgrade
from accord.web.app import create_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="generated cases per operation")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument(
        "--database-url", help="an empty, migrated-or-new database (default: throwaway SQLite)"
    )
    parser.add_argument("--only", default="", help="fuzz only paths starting with this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-fuzz-") as directory:
        data_dir = Path(directory)
        url = args.database_url or f"sqlite:///{data_dir / 'state.db'}"
        upgrade(url)
        store = open_store(url)
        keys = bootstrap(store, name="Fuzz Shop")
        store.dispose()
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            lake_url=str(data_dir / "lake"),
            worker_inline=False,
        )
        report = fuzz(
            create_app(settings),
            admin_token=keys.admin_token,
            write_key=keys.write_key,
            examples=args.examples,
            run_seed=args.seed,
            only=lambda _method, path: path.startswith(args.only),
        )
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
