"""Writes batches of events to the lake and finds the lake's files for readers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs

from accord.lake.schema import EVENT_SCHEMA


def _filesystem(lake_url: str) -> tuple[fs.FileSystem, str]:
    if "://" not in lake_url:
        local = fs.LocalFileSystem()
        return local, lake_url
    filesystem, path = fs.FileSystem.from_uri(lake_url)
    return filesystem, path


def partition_dir(base: str, business_id: str, day: str) -> str:
    return f"{base.rstrip('/')}/business_id={business_id}/day={day}"


def write_batch(
    lake_url: str,
    *,
    batch_id: str,
    rows: list[tuple[str, dict[str, Any]]],
    clean_leftovers: bool = True,
) -> list[str]:
    """Write (business_id, row) pairs as one file per business and day, named by the batch.

    Writing the same batch again replaces its files, so a batch retried after a
    crash never appears twice in the lake.
    """
    filesystem, base = _filesystem(lake_url)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for business_id, row in rows:
        groups[(business_id, row["timestamp"].date().isoformat())].append(row)
    written = []
    local = isinstance(filesystem, fs.LocalFileSystem)
    for (business_id, day), group in sorted(groups.items()):
        directory = partition_dir(base, business_id, day)
        filesystem.create_dir(directory, recursive=True)
        target = f"{directory}/part-{batch_id}.parquet"
        table = pa.Table.from_pylist(group, schema=EVENT_SCHEMA)
        if local:
            # Readers must never see half a file: write aside, then rename.
            # The random part keeps two workers redoing one batch off each other's file.
            temporary = f"{directory}/.part-{batch_id}-{uuid.uuid4().hex[:8]}.parquet.tmp"
            pq.write_table(table, temporary, filesystem=filesystem, compression="zstd")
            filesystem.move(temporary, target)
            if clean_leftovers:
                # Listing a partition costs more the more files it has: only a batch
                # redone after a crash can have leftovers.
                _remove_leftovers(filesystem, directory, batch_id)
        else:
            # Object stores publish an object only when its upload completes.
            pq.write_table(table, target, filesystem=filesystem, compression="zstd")
        written.append(target)
    return written


def _remove_leftovers(filesystem: fs.FileSystem, directory: str, batch_id: str) -> None:
    """Delete temporary files that a dead attempt at the same batch left behind."""
    prefix = f".part-{batch_id}-"
    for info in filesystem.get_file_info(fs.FileSelector(directory)):
        if info.base_name.startswith(prefix) and info.base_name.endswith(".tmp"):
            # A live attempt racing this one loses its file and retries; the
            # processed mark keeps its profile changes from happening twice.
            filesystem.delete_file(info.path)


def parquet_glob(lake_url: str) -> str:
    return f"{lake_url.rstrip('/')}/business_id=*/day=*/*.parquet"


def has_files(lake_url: str) -> bool:
    filesystem, base = _filesystem(lake_url)
    selector = fs.FileSelector(base, recursive=True, allow_not_found=True)
    return any(info.path.endswith(".parquet") for info in filesystem.get_file_info(selector))


def remove_events(
    lake_url: str, *, business_id: str, days: set[str], message_ids: set[str]
) -> list[str]:
    """Rewrite a business's partitions of these days without the given events.

    Each affected file is replaced whole (written aside, then renamed over) or deleted
    when nothing is left in it; returns the files changed.
    """
    if not message_ids:
        return []
    filesystem, base = _filesystem(lake_url)
    unwanted = pa.array(sorted(message_ids), pa.string())
    changed = []
    for day in sorted(days):
        directory = partition_dir(base, business_id, day)
        selector = fs.FileSelector(directory, allow_not_found=True)
        for info in filesystem.get_file_info(selector):
            if not info.base_name.endswith(".parquet"):
                continue
            with filesystem.open_input_file(info.path) as handle:
                table = pq.ParquetFile(handle).read()
            drop = pc.is_in(table["message_id"], value_set=unwanted)
            if not pc.any(drop).as_py():
                continue
            kept = table.filter(pc.invert(drop))
            if kept.num_rows == 0:
                filesystem.delete_file(info.path)
            elif isinstance(filesystem, fs.LocalFileSystem):
                temporary = f"{directory}/.rewrite-{uuid.uuid4().hex[:8]}.parquet.tmp"
                pq.write_table(kept, temporary, filesystem=filesystem, compression="zstd")
                filesystem.move(temporary, info.path)
            else:
                pq.write_table(kept, info.path, filesystem=filesystem, compression="zstd")
            changed.append(info.path)
    return changed
