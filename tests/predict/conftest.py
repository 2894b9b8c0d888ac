"""Test data: the CDNOW data sets shipped inside the `lifetimes` package.

`lifetimes` is unmaintained and is not a dependency; its wheel is fetched once with pip
(the test-data step) into the user's cache, and only the data files are read from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

LIFETIMES = "lifetimes==0.11.3"
WHEEL = "Lifetimes-0.11.3-py3-none-any.whl"


def _cache() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "accord-test-data"


@pytest.fixture(scope="session")
def cdnow() -> Path:
    """The folder holding lifetimes' `datasets/` files."""
    folder = _cache()
    wheel = folder / WHEEL
    if not wheel.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                LIFETIMES,
                "-d",
                str(folder),
            ],
            check=True,
        )
    target = folder / "lifetimes-datasets"
    if not (target / "cdnow_customers_summary.csv").exists():
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith("lifetimes/datasets/") and not name.endswith("/"):
                    (target / Path(name).name).parent.mkdir(parents=True, exist_ok=True)
                    (target / Path(name).name).write_bytes(archive.read(name))
    return target
