"""Merges each lake partition's small files into one and retires the files it replaced.

The rule: after a compaction every partition (business and day) that had at least
`min_files` visible files has exactly one, `compact-<id>.parquet`. Its footer lists
every file it supersedes (transitively) with the time each was superseded, and renaming
it into place is the one commit point: readers listing the folder before it see the old
files, after it the new one. A superseded file stays on disk for `grace` after it was
superseded, so reads that listed it can finish; a later compaction deletes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
from pyarrow import fs

from accord.core.clock import utcnow
from accord.lake.schema import EVENT_SCHEMA
from accord.lake.service import (
    COMPACTED_PREFIX,
    REPLACES_KEY,
    filesystem_of,
    is_data_file,
    partition_files,
    partition_lock,
    remove_leftovers_of_locked_writers,
    replace_file,
    superseded,
    supersessions,
)


@dataclass(frozen=True)
class CompactionReport:
    partitions_compacted: int = 0
    files_merged: int = 0
    files_written: int = 0
    rows: int = 0
    superseded_files_deleted: int = 0

    def __add__(self, other: CompactionReport) -> CompactionReport:
        return CompactionReport(
            partitions_compacted=self.partitions_compacted + other.partitions_compacted,
            files_merged=self.files_merged + other.files_merged,
            files_written=self.files_written + other.files_written,
            rows=self.rows + other.rows,
            superseded_files_deleted=self.superseded_files_deleted + other.superseded_files_deleted,
        )


def compact(
    lake_url: str,
    *,
    business_id: str | None = None,
    min_files: int = 2,
    grace: timedelta = timedelta(minutes=10),
    now: datetime | None = None,
) -> CompactionReport:
    """Compact every partition of the lake (or of one business) with >= `min_files` files.

    Each partition is handled under its lock, so an erasure of the same partition waits
    (and then cleans the compacted file) or goes first (and the compaction reads the
    cleaned files). Stopped anywhere, even by SIGKILL, it leaves every event visible
    exactly once; the next run removes what the stopped one left behind.
    """
    if min_files < 1:
        raise ValueError("min_files must be at least 1")
    now = now or utcnow()
    filesystem, base = filesystem_of(lake_url)
    report = CompactionReport()
    for directory in sorted(partition_files(filesystem, base, business_id)):
        with partition_lock(filesystem, directory):
            report += _compact_partition(
                filesystem, directory, min_files=min_files, expired_before=now - grace, now=now
            )
    return report


def _compact_partition(
    filesystem: fs.FileSystem,
    directory: str,
    *,
    min_files: int,
    expired_before: datetime,
    now: datetime,
) -> CompactionReport:
    remove_leftovers_of_locked_writers(filesystem, directory)
    names = {
        info.base_name
        for info in filesystem.get_file_info(fs.FileSelector(directory))
        if is_data_file(info.base_name)
    }
    live = supersessions(filesystem, directory, names)
    hidden = superseded(live)
    # Only supersessions older than the grace go: a reader that listed the old files
    # just before the switch may still be reading them.
    deleted = 0
    for compacted in live:
        for name, since in sorted(compacted.replaces.items()):
            if since <= expired_before and name in names:
                filesystem.delete_file(f"{directory}/{name}")
                names.discard(name)
                deleted += 1
    visible = sorted(n for n in names if n not in hidden)
    if len(visible) < min_files:
        return CompactionReport(superseded_files_deleted=deleted)
    merged = _merge(filesystem, [f"{directory}/{n}" for n in visible])
    # Names stay listed after their files are deleted: a batch redone after a crash
    # writes its file again under the same name, and its rows are already in here.
    # Names hidden before keep the time they were first superseded.
    replaces = {name: since for compacted in live for name, since in compacted.replaces.items()}
    replaces |= dict.fromkeys(visible, now)
    merged = merged.replace_schema_metadata(
        {
            REPLACES_KEY: orjson.dumps(
                {name: since.isoformat() for name, since in sorted(replaces.items())}
            )
        }
    )
    # Names sort by time, so readers find the newest compacted file first.
    name = f"{COMPACTED_PREFIX}{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
    replace_file(filesystem, f"{directory}/{name}", merged)
    return CompactionReport(
        partitions_compacted=1,
        files_merged=len(visible),
        files_written=1,
        rows=merged.num_rows,
        superseded_files_deleted=deleted,
    )


def _merge(filesystem: fs.FileSystem, paths: list[str]) -> pa.Table:
    # A dataset reads the files on several threads; with the lake's schema, a file
    # written before a column was added reads it as null.
    dataset = ds.dataset(paths, schema=EVENT_SCHEMA, format="parquet", filesystem=filesystem)
    # Sorted by time, the row groups' statistics let engines skip most of a day
    # for a filter on `timestamp`.
    return dataset.to_table().sort_by([("timestamp", "ascending"), ("inbox_seq", "ascending")])
