"""`accord audiences …` against one data folder."""

from __future__ import annotations

from pathlib import Path

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.store.db import Store
from tests.audiences.test_service import SHOP, ingest
from tests.test_cli import Cli


def test_audiences_from_the_shell(
    tmp_path: Path, store: Store, keys: Bootstrap, settings: Settings, database_url: str
) -> None:
    ingest(store, keys, settings, SHOP)
    cli = Cli(tmp_path, database_url)
    cli.env["ACCORD_LAKE_URL"] = settings.resolved_lake_url()
    business = ["--business", keys.business_id]
    checked = cli("audiences", "validate", 'DID "Product Viewed"  at least 3 times', *business)
    assert checked.stdout.splitlines()[0] == 'did "Product Viewed" at least 3 times'
    bad = cli("audiences", "validate", "trait nope exists", *business, code=1)
    assert "unknown trait 'nope'" in bad.output
    cli("audiences", "create", "fans", 'did "Product Viewed" at least 3 times', *business)
    assert "1 people" in cli("audiences", "preview", 'trait plan = "free"', *business).stdout
    cli("audiences", "refresh", "fans", "low-nps", *business)
    listed = cli("audiences", "list", *business).stdout
    assert "fans" in listed and "purchased-30d" in listed
    out = tmp_path / "fans.csv"
    exported = cli("audiences", "export", "fans", "csv", "--output", str(out), *business).stdout
    # No consent context wired in the shell: nobody leaves.
    assert "0 people written" in exported and "no consent for marketing: 1" in exported
    cli("audiences", "suppress", "email", "ann@example.com", "--reason", "complaint", *business)
