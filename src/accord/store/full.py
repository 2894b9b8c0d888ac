"""A full disk, recognised in the errors of SQLite, PostgreSQL and the file system, and
how long ago a write last met one."""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DBAPIError

# SQLite's SQLITE_FULL; PostgreSQL's SQLSTATE class 53 ("insufficient resources"):
# 53100 disk_full, 53200 out_of_memory, 53300 too_many_connections... only 53100 is space.
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def storage_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the disk or the database is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        orig = current.orig if isinstance(current, DBAPIError) else None
        if orig is not None and storage_full(orig):
            return True
        if isinstance(current, sqlite3.Error):
            if getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL:
                return True
            if "database or disk is full" in str(current):
                return True
        if getattr(current, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class StorageHealth:
    """When a write last failed for lack of space, and whether the data folder takes a
    write now: a server with a full disk says so, and says so no more once space returns."""

    data_dir: Path
    # How long after the last failed write the store still counts as full.
    window_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _full_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_full(self) -> None:
        with self._lock:
            self._full_at = self.clock()

    def problems(self) -> list[str]:
        """What is wrong with storage now; empty when writes can succeed."""
        out: list[str] = []
        with self._lock:
            full_at = self._full_at
        if full_at is not None and self.clock() - full_at < self.window_seconds:
            out.append(f"a write failed for lack of space {self.clock() - full_at:.0f}s ago")
        probe = self.probe()
        if probe is not None:
            out.append(probe)
        return out

    def probe(self) -> str | None:
        """Write, flush and remove a small file in the data folder; why that failed."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.data_dir, prefix=".health-") as probe:
                probe.write(b"\0" * 4096)
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            return f"the data folder takes no writes: {exc.strerror or exc}"
        return None
