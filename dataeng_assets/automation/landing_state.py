"""What arrived in the landing zone since the last look: files mapped to partitions, and changes.

Pure functions, no Dagster: the arrival sensor lists a source's objects (a folder or an S3 prefix,
see ``listing.py``), and this module groups them by partition and compares each partition with the
cursor. The cursor keeps, per partition, two short signatures:

- ``meta``: of the listing only (name, size, modification time, inode or ETag). Comparing it costs
  no read, so a tick over thousands of unchanged files reads no file.
- ``content``: of the files' contents (SHA-256 of a local file, the ETag of an S3 object). It is
  computed only for partitions whose ``meta`` changed. A re-delivery with the same bytes changes
  ``meta`` but not ``content``: nothing runs. A corrected file changes ``content``: the partition
  runs again and its tables are replaced.

The cursor is bounded by the number of partitions (a year of days), not by the number of files, and
a deleted or renamed file is just a changed partition: nothing in it can go stale. A high-water mark
on modification times was rejected: a local ``mv`` keeps the old mtime and an S3 multipart upload
carries the time it started, so both can slip under the mark and be missed forever.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import posixpath
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from dataeng_assets.landing.files import EXTENSIONS
from dataeng_assets.sources import Source

# The cursor's key for an unpartitioned (snapshot) source's one "partition".
SNAPSHOT = "*"
_CURSOR_PREFIX = "z1:"


@dataclass(frozen=True)
class LandedObject:
    """One object of the landing zone, as a listing reports it (nothing is read)."""

    key: str  # below the landing root, posix: "flights/2013-01-05.csv"
    size: int
    modified_ns: int
    # Identity of the content when the listing knows it (S3 ETag); None for a local file.
    etag: str | None = None
    # What else tells two local files apart without reading them (inode, ctime).
    stamp: str = ""


@dataclass(frozen=True)
class Unmapped:
    key: str
    reason: str


class FileMapper:
    """Maps a source's landing objects to partition keys, or says why it cannot."""

    def __init__(self, source: Source, partition_keys: Sequence[str] | None) -> None:
        self.source = source
        self.extension = EXTENSIONS[source.format]
        directory, base = posixpath.split(source.landing)
        # Every object below this prefix belongs to the source or is reported.
        self.prefix = f"{directory}/" if directory else ""
        self.directory = directory
        if source.is_daily:
            if partition_keys is None:
                raise ValueError(f"{source.name} is daily: its partition keys are needed")
            pattern = re.escape(base).replace(re.escape("{date}"), r"(?P<date>\d{4}-\d{2}-\d{2})")
        else:
            pattern = re.escape(base)
        # "<stem>.<ext>" or "<stem>_<anything>.<ext>", as the raw asset reads them.
        self._name = re.compile(rf"^{pattern}(?:_[^/]*)?\.(?P<ext>[^./]+)$")
        self._partitions = frozenset(partition_keys or ())
        self._first = min(self._partitions) if self._partitions else None
        self._last = max(self._partitions) if self._partitions else None
        self.expected = f"{self.prefix}{base}[_suffix].{self.extension}"

    def map(self, key: str) -> str | Unmapped | None:
        """The partition key (``SNAPSHOT`` for a snapshot), an ``Unmapped``, or None to ignore."""
        relative = key[len(self.prefix) :] if key.startswith(self.prefix) else key
        name = posixpath.basename(relative)
        if name.startswith("."):
            return None  # a hidden file is a write in progress (write, then rename)
        if "/" in relative:
            return Unmapped(
                key, f"is in a subfolder; {self.source.name} files sit in {self.prefix}"
            )
        match = self._name.match(name)
        if not match:
            return Unmapped(key, f"name does not match {self.expected}")
        if match["ext"] != self.extension:
            return Unmapped(
                key, f"is .{match['ext']}, but {self.source.name} is delivered as {self.extension}"
            )
        if not self.source.is_daily:
            return SNAPSHOT
        day = match["date"]
        if day not in self._partitions:
            if _is_date(day):
                return Unmapped(key, f"{day} is outside the partitions {self._first}..{self._last}")
            return Unmapped(key, f"{day} is not a calendar date")
        return day


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _digest(lines: Iterable[str], chars: int) -> str:
    return hashlib.blake2b("\n".join(sorted(lines)).encode(), digest_size=16).hexdigest()[:chars]


def meta_signature(objects: Iterable[LandedObject]) -> str:
    """Changes when any listed attribute of any file changes (no file is read)."""
    return _digest(
        (f"{o.key}|{o.size}|{o.modified_ns}|{o.etag or ''}|{o.stamp}" for o in objects), 12
    )


def content_signature(contents: Iterable[tuple[str, str]]) -> str:
    """Changes when a file's name or bytes change: (key, content id) pairs."""
    return _digest((f"{key}|{content}" for key, content in contents), 16)


def pack_cursor(document: dict, prefix: str) -> str:
    """A sensor cursor as compressed JSON: Dagster stores the cursor with every tick, and dates
    compress well."""
    packed = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 9)
    return prefix + base64.b64encode(packed).decode()


def unpack_cursor(text: str, prefix: str, what: str) -> dict:
    if not text.startswith(prefix):
        raise ValueError(f"not {what}: {text[:40]!r}")
    return json.loads(zlib.decompress(base64.b64decode(text[len(prefix) :])))


@dataclass
class ArrivalCursor:
    """Per partition: (meta, content) signatures; per unmapped file: its meta (reported once)."""

    partitions: dict[str, tuple[str, str]] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    # The failed run that opened the circuit breaker, once its alert is sent (alert once).
    breaker_alerted: str | None = None

    def encode(self) -> str:
        document = {
            "p": {k: f"{m}:{c}" for k, (m, c) in sorted(self.partitions.items())},
            "u": dict(sorted(self.unmapped.items())),
            "b": self.breaker_alerted,
        }
        return pack_cursor(document, _CURSOR_PREFIX)

    @classmethod
    def decode(cls, text: str | None) -> ArrivalCursor:
        if not text:
            return cls()
        document = unpack_cursor(text, _CURSOR_PREFIX, "an arrival cursor")
        return cls(
            partitions={
                k: tuple(v.split(":", 1))  # type: ignore[misc]
                for k, v in document.get("p", {}).items()
            },
            unmapped=dict(document.get("u", {})),
            breaker_alerted=document.get("b"),
        )


@dataclass(frozen=True)
class PartitionChange:
    """A partition whose delivered content changed: it must be (re-)ingested."""

    partition: str
    content: str
    previous_content: str | None
    files: tuple[str, ...]


@dataclass
class ArrivalPlan:
    changes: list[PartitionChange]
    # Files changed in the listing but not in content (a re-delivery of the same bytes).
    same_content: list[str]
    # Partitions whose files were all removed: nothing to ingest, the tables keep their data.
    removed: list[str]
    unmapped_new: list[Unmapped]
    unmapped_total: int
    # Changed partitions left for the next tick (per-tick work is bounded).
    deferred: list[str]
    files_listed: int
    cursor: ArrivalCursor


def plan_arrivals(
    mapper: FileMapper,
    objects: Iterable[LandedObject],
    cursor: ArrivalCursor,
    content_id: Callable[[LandedObject], str],
    max_partitions: int,
) -> ArrivalPlan:
    """Compare the listing with the cursor; read contents only where the listing changed."""
    by_partition: dict[str, list[LandedObject]] = {}
    unmapped: list[tuple[Unmapped, str]] = []
    listed = 0
    for obj in objects:
        listed += 1
        mapped = mapper.map(obj.key)
        if mapped is None:
            continue
        if isinstance(mapped, Unmapped):
            unmapped.append((mapped, meta_signature([obj])))
        else:
            by_partition.setdefault(mapped, []).append(obj)

    changed = sorted(
        p
        for p, files in by_partition.items()
        if cursor.partitions.get(p, ("", ""))[0] != meta_signature(files)
    )
    removed = sorted(set(cursor.partitions) - set(by_partition))
    todo, deferred = changed[:max_partitions], changed[max_partitions:]

    next_partitions = {p: sig for p, sig in cursor.partitions.items() if p in by_partition}
    changes: list[PartitionChange] = []
    same_content: list[str] = []
    for partition in todo:
        files = sorted(by_partition[partition], key=lambda o: o.key)
        content = content_signature((o.key, content_id(o)) for o in files)
        previous = cursor.partitions.get(partition)
        next_partitions[partition] = (meta_signature(files), content)
        if previous is not None and previous[1] == content:
            same_content.append(partition)
        else:
            changes.append(
                PartitionChange(
                    partition=partition,
                    content=content,
                    previous_content=previous[1] if previous else None,
                    files=tuple(o.key for o in files),
                )
            )

    next_unmapped = {u.key: sig for u, sig in unmapped}
    unmapped_new = [u for u, sig in unmapped if cursor.unmapped.get(u.key) != sig]
    return ArrivalPlan(
        changes=changes,
        same_content=same_content,
        removed=removed,
        unmapped_new=sorted(unmapped_new, key=lambda u: u.key),
        unmapped_total=len(unmapped),
        deferred=deferred,
        files_listed=listed,
        cursor=ArrivalCursor(
            partitions=next_partitions,
            unmapped=next_unmapped,
            breaker_alerted=cursor.breaker_alerted,
        ),
    )


def contiguous_ranges(partitions: Iterable[str], ordered_keys: Sequence[str]) -> list[list[str]]:
    """Group partition keys into runs of consecutive keys (one single-run backfill each)."""
    index = {key: i for i, key in enumerate(ordered_keys)}
    groups: list[list[str]] = []
    for key in sorted(partitions, key=lambda k: index[k]):
        if groups and index[groups[-1][-1]] + 1 == index[key]:
            groups[-1].append(key)
        else:
            groups.append([key])
    return groups
