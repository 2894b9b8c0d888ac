"""`make run` as a newcomer meets it: the demo seeded, then `accord serve` alone computes
every predefined audience (real-time ones included) without anyone pressing a button."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ServerProcess, server_env

pytestmark = pytest.mark.slow


def test_a_fresh_demo_shows_every_predefined_audience_computed(
    tmp_path: Path, database_url: str
) -> None:
    env = server_env(
        data_dir=tmp_path / "data", database_url=database_url, lake_url=str(tmp_path / "lake")
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "accord.cli", "demo", "--events", "3000", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    keys = json.loads(seeded.stdout.strip().splitlines()[-1])
    admin = {"Authorization": f"Bearer {keys['admin_token']}"}
    with ServerProcess(env, log_path=tmp_path / "server.log") as server:
        deadline = time.monotonic() + 120
        audiences: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            audiences = httpx.get(f"{server.base_url}/api/audiences", headers=admin).json()
            if audiences and all(a["size"] is not None for a in audiences):
                break
            time.sleep(1)
        predefined = [a for a in audiences if a["predefined"]]
        assert len(predefined) >= 15
        missing = [a["slug"] for a in predefined if a["size"] is None]
        assert not missing, f"not computed after 120 s: {missing}\n{server.log_tail()}"
        # The demo's people are in them: sizes are real, not all empty.
        assert sum(int(str(a["size"])) for a in predefined) > 0
        jobs = httpx.get(f"{server.base_url}/api/jobs", headers=admin).json()
        refreshes = [j for j in jobs if j["name"] == "audiences.refresh"]
        assert {j["last_status"] for j in refreshes} == {"succeeded"}
