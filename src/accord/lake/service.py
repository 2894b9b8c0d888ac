"""Writes batches of events to the lake and finds the lake's files for readers."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs

from accord.lake.schema import EVENT_SCHEMA, EVENTS, Dataset

# A compacted file names in its footer every file of its folder that it supersedes,
# each with the time it was superseded: {"part-bat_1.parquet": "2026-11-10T12:00:00+00:00"}.
COMPACTED_PREFIX = "compact-"
REPLACES_KEY = b"accord.replaces"
# Temporary files of writers that hold the partition lock (compaction, erasure): any
# found while holding the lock belongs to a writer that died.
LOCKED_TEMPORARY_PREFIXES = (".compact-", ".rewrite-")


def filesystem_of(lake_url: str) -> tuple[fs.FileSystem, str]:
    """The filesystem of a lake folder or URL, and the lake's path on it."""
    if "://" not in lake_url:
        local = fs.LocalFileSystem()
        return local, lake_url
    filesystem, path = fs.FileSystem.from_uri(lake_url)
    return filesystem, path


# Row groups of this size let an engine read one large file on several cores.
ROW_GROUP_ROWS = 128 * 1024


def partition_dir(base: str, business_id: str, day: str) -> str:
    return EVENTS.directory(base, (business_id, day))


def write_batch(
    lake_url: str,
    *,
    batch_id: str,
    rows: list[tuple[str, dict[str, Any]]],
    clean_leftovers: bool = True,
) -> list[str]:
    """Write (business_id, row) pairs of events as one file per business and day."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for business_id, row in rows:
        groups[(business_id, row["timestamp"].date().isoformat())].append(row)
    parts = [
        (key, pa.Table.from_pylist(group, schema=EVENT_SCHEMA))
        for key, group in sorted(groups.items())
    ]
    return write_parts(
        lake_url, EVENTS, batch_id=batch_id, parts=parts, clean_leftovers=clean_leftovers
    )


def write_parts(
    lake_url: str,
    dataset: Dataset,
    *,
    batch_id: str,
    parts: Iterable[tuple[Sequence[str], pa.Table]],
    clean_leftovers: bool = True,
) -> list[str]:
    """Write each (partition values, rows) as `part-<batch_id>.parquet` in its folder.

    Writing the same batch again replaces its files, so a batch retried after a
    crash never appears twice in the lake.
    """
    filesystem, base = filesystem_of(lake_url)
    local = isinstance(filesystem, fs.LocalFileSystem)
    written = []
    for values, rows in parts:
        if len(values) != len(dataset.partitions):
            raise ValueError(f"a part needs a value for each of {dataset.partitions.names}")
        table = rows.select(dataset.schema.names).cast(dataset.schema)
        directory = dataset.directory(base, values)
        filesystem.create_dir(directory, recursive=True)
        target = f"{directory}/part-{batch_id}.parquet"
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
            # Object stores publish an object only when its upload completes; a rename
            # there is a copy and a delete, neither atomic nor cheap.
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


def is_data_file(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith(".")


def partition_files(
    filesystem: fs.FileSystem,
    base: str,
    business_id: str | None = None,
    *,
    dataset: Dataset = EVENTS,
    within: Sequence[str] = (),
) -> dict[str, list[str]]:
    """Data files by partition folder (`business_id=…/day=…`), in one listing.

    Only the dataset's layout counts: other folders under its root (the experiments'
    ad logs under the events' root) are not its files. `within` gives values of the
    partitions after `business_id`, to list only below them.
    """
    root = dataset.root(base)
    keys = dataset.partitions.names
    leading = [] if business_id is None else [business_id, *within]
    start = dataset.directory(base, leading)
    selector = fs.FileSelector(start, recursive=True, allow_not_found=True)
    folders: dict[str, list[str]] = defaultdict(list)
    for info in filesystem.get_file_info(selector):
        if info.type != fs.FileType.File or not is_data_file(info.base_name):
            continue
        parts = info.path[len(root) + 1 :].split("/")
        if len(parts) == len(keys) + 1 and all(
            part.startswith(f"{key}=") for part, key in zip(parts, keys, strict=False)
        ):
            folders["/".join([root, *parts[:-1]])].append(info.base_name)
    return folders


@dataclass(frozen=True)
class Supersession:
    """A compacted file's footer: the files of its folder it supersedes, each since when."""

    name: str
    replaces: dict[str, datetime]


def read_supersession(filesystem: fs.FileSystem, directory: str, name: str) -> Supersession:
    with filesystem.open_input_file(f"{directory}/{name}") as handle:
        metadata = pq.ParquetFile(handle).metadata.metadata or {}
    return Supersession(
        name=name,
        replaces={
            replaced: datetime.fromisoformat(since)
            for replaced, since in orjson.loads(metadata[REPLACES_KEY]).items()
        },
    )


def supersessions(
    filesystem: fs.FileSystem, directory: str, names: Iterable[str]
) -> list[Supersession]:
    """The compacted files among a folder's files that no other one supersedes."""
    hidden: set[str] = set()
    found = []
    # Newest first (compacted names sort by time): a newer file lists everything the
    # older ones did, so their footers need no reading.
    for name in sorted((n for n in names if n.startswith(COMPACTED_PREFIX)), reverse=True):
        if name not in hidden:
            supersession = read_supersession(filesystem, directory, name)
            hidden |= supersession.replaces.keys()
            found.append(supersession)
    return [s for s in found if s.name not in hidden]


def superseded(supersessions: Iterable[Supersession]) -> set[str]:
    return {name for s in supersessions for name in s.replaces}


def visible_files(
    lake_url: str,
    business_id: str | None = None,
    *,
    dataset: Dataset = EVENTS,
    within: Sequence[str] = (),
) -> list[str]:
    """The dataset's files that hold each row exactly once: every reader lists these.

    A file superseded by a compacted file in its folder is left out: its rows are in
    the compacted file. Paths are spelled like `lake_url` (a folder or a URL).
    """
    filesystem, base = filesystem_of(lake_url)
    root = base.rstrip("/")
    prefix = lake_url.rstrip("/")
    files = []
    listed = partition_files(filesystem, base, business_id, dataset=dataset, within=within)
    for directory, names in listed.items():
        hidden = superseded(supersessions(filesystem, directory, names))
        files += [f"{prefix}{directory[len(root) :]}/{n}" for n in names if n not in hidden]
    return sorted(files)


@contextmanager
def partition_lock(filesystem: fs.FileSystem, directory: str) -> Iterator[None]:
    """Hold off other compactions and erasures of this partition folder.

    Both rewrite files that exist; two at once would let one undo the other's work
    (an erasure's rows coming back in a compacted file). Readers and the worker take
    no lock: they only add files or read them. The lock is released by the kernel
    when its holder dies. Object stores have no such lock: there, run one compaction
    at a time and not during an erasure of the same business (see docs/engine.md).
    """
    if not isinstance(filesystem, fs.LocalFileSystem):
        yield
        return
    handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def remove_leftovers_of_locked_writers(filesystem: fs.FileSystem, directory: str) -> int:
    """Delete temporary files of compactions and erasures that died; call under the lock."""
    removed = 0
    for info in filesystem.get_file_info(fs.FileSelector(directory, allow_not_found=True)):
        name = info.base_name
        if name.startswith(LOCKED_TEMPORARY_PREFIXES) and name.endswith(".tmp"):
            filesystem.delete_file(info.path)
            removed += 1
    return removed


def replace_file(filesystem: fs.FileSystem, path: str, table: pa.Table) -> None:
    """Write a Parquet file so that readers see the old whole file or the new whole file.

    On a local folder the data is synced before the rename: the rename is what
    publishes it, and it may hide other files' rows (a compacted file), so it must
    never name an empty file after a power cut.
    """
    if not isinstance(filesystem, fs.LocalFileSystem):
        # Object stores publish an object only when its upload completes.
        pq.write_table(
            table, path, filesystem=filesystem, compression="zstd", row_group_size=ROW_GROUP_ROWS
        )
        return
    directory, _, name = path.rpartition("/")
    stem = "compact" if name.startswith(COMPACTED_PREFIX) else "rewrite"
    temporary = f"{directory}/.{stem}-{uuid.uuid4().hex[:8]}.parquet.tmp"
    with open(temporary, "wb") as handle:
        pq.write_table(table, handle, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def remove_events(
    lake_url: str, *, business_id: str, days: set[str], message_ids: set[str]
) -> list[str]:
    """Rewrite a business's partitions of these days without the given events.

    Every file is cleaned, superseded ones too, so erased events linger nowhere. Each
    affected file is replaced whole (its footer metadata kept) or deleted when nothing
    is left in it; a compacted file is kept even when empty, because it still hides
    the files it supersedes. Returns the files changed.
    """
    if not message_ids:
        return []
    filesystem, base = filesystem_of(lake_url)
    unwanted = pa.array(sorted(message_ids), pa.string())
    changed = []
    for day in sorted(days):
        directory = partition_dir(base, business_id, day)
        if filesystem.get_file_info(directory).type != fs.FileType.Directory:
            continue
        with partition_lock(filesystem, directory):
            # A dead compaction's temporary file may hold the erased events.
            remove_leftovers_of_locked_writers(filesystem, directory)
            for info in filesystem.get_file_info(fs.FileSelector(directory)):
                if not is_data_file(info.base_name):
                    continue
                with filesystem.open_input_file(info.path) as handle:
                    table = pq.ParquetFile(handle).read()
                drop = pc.is_in(table["message_id"], value_set=unwanted)
                if not pc.any(drop).as_py():
                    continue
                kept = table.filter(pc.invert(drop))
                if kept.num_rows == 0 and not info.base_name.startswith(COMPACTED_PREFIX):
                    filesystem.delete_file(info.path)
                else:
                    replace_file(filesystem, info.path, kept)
                changed.append(info.path)
    return changed
