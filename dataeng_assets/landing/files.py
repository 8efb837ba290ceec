"""Listing and reading delivered files. Every value is read as a string: raw keeps what was sent."""

from __future__ import annotations

import datetime as dt
import io
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

EXTENSIONS = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}


class DeliveryError(ValueError):
    """A delivered file that cannot be read as its format says."""


@dataclass(frozen=True)
class DeliveredFile:
    path: str  # inside the filesystem
    relative_path: str  # below the landing root, e.g. flights/2013-01-05.csv
    size: int
    mtime_ns: int | None


def list_delivered(fs: pafs.FileSystem, root: str, stem: str, fmt: str) -> list[DeliveredFile]:
    """Files ``<stem>.<ext>`` and ``<stem>_<suffix>.<ext>`` below ``root``, sorted by name."""
    return list_delivered_many(fs, root, [stem], fmt)[stem]


def list_delivered_many(
    fs: pafs.FileSystem, root: str, stems: list[str], fmt: str
) -> dict[str, list[DeliveredFile]]:
    """``list_delivered`` for many stems, listing each folder once (a year is 365 stems)."""
    ext = "." + EXTENSIONS[fmt]
    found: dict[str, list[DeliveredFile]] = {stem: [] for stem in stems}
    by_directory: dict[str, dict[str, str]] = {}
    for stem in stems:
        directory, base = posixpath.split(stem)
        by_directory.setdefault(directory, {})[base] = stem
    for directory, bases in by_directory.items():
        selector = pafs.FileSelector(posixpath.join(root, directory), allow_not_found=True)
        for info in fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.base_name.endswith(ext):
                continue
            name = info.base_name[: -len(ext)]
            # "<base>" or "<base>_<suffix>": the base is the name up to the first underscore,
            # unless the base itself contains one (then the whole name must start with it).
            candidates = [name, name.split("_", 1)[0]]
            base = next((c for c in candidates if c in bases), None)
            if base is None:
                base = next((b for b in bases if name.startswith(b + "_")), None)
            if base is None:
                continue
            found[bases[base]].append(
                DeliveredFile(
                    path=info.path,
                    relative_path=posixpath.join(directory, info.base_name),
                    size=info.size or 0,
                    mtime_ns=info.mtime_ns,
                )
            )
    return {stem: sorted(files, key=lambda f: f.relative_path) for stem, files in found.items()}


def _all_strings(table: pa.Table) -> pa.Table:
    return pa.table(
        {
            name: column
            if pa.types.is_large_string(column.type)
            else pc.cast(column, pa.large_string())
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )


@dataclass(frozen=True)
class ParsedDelivery:
    """A delivered file split into what parsed and what did not, with original row numbers."""

    table: (
        pa.Table
    )  # every delivered column as a string, plus _source_row (1-based, header excluded)
    rejects: list[tuple[int, str, str]]  # (row number, 0 for the whole file; error; raw text)
    columns: list[str]  # the delivered header (empty when the file has none)


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="backslashreplace")


def _with_row_numbers(table: pa.Table, numbers: list[int] | range) -> pa.Table:
    if isinstance(numbers, range) and numbers.step == 1:  # built by numpy, not int by int
        rows = pa.array(np.arange(numbers.start, numbers.stop, dtype=np.int64))
    else:
        rows = pa.array(numbers, pa.int64())
    return _all_strings(table).append_column("_source_row", rows)


def _parse_csv(data: bytes) -> ParsedDelivery:
    end = data.find(b"\n")
    header = (data if end < 0 else data[:end]).rstrip(b"\r")
    try:
        header.decode("utf-8")
        columns = pacsv.read_csv(io.BytesIO(header + b"\n")).column_names
    except (UnicodeDecodeError, pa.ArrowInvalid) as error:
        return ParsedDelivery(
            pa.table({}), [(0, f"unreadable header: {error}", _text(data[:2000]))], []
        )
    if _is_plain(data):
        # The common case: every byte UTF-8, a line end at the end, no blank line. Then pyarrow's
        # line numbers are the row numbers, and the file goes to it as it is.
        return _read_csv_lines(data, columns, range(1, data.count(b"\n")), [])
    # Line by line only when a line may need to be set aside (a big day's millions of lines as
    # Python objects cost a second and half a gigabyte).
    lines = data.split(b"\n")
    rejects: list[tuple[int, str, str]] = []
    kept_numbers: list[int] = []
    kept_lines = [header]
    # A file that does not end with a line end was cut (or is still being written): its last
    # line cannot be trusted even when it has every field, as the cut may fall inside a value.
    unfinished = len(lines) - 1 if lines[-1].strip() and len(lines) > 1 else None
    for number, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue  # a blank line carries no row (a final newline, say)
        if number == unfinished:
            rejects.append((number, "no line end: the file may have been cut here", _text(line)))
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            rejects.append(
                (number, f"not valid UTF-8: {error.reason} at byte {error.start}", _text(line))
            )
            continue
        kept_numbers.append(number)
        kept_lines.append(line)
    return _read_csv_lines(b"\n".join(kept_lines) + b"\n", columns, kept_numbers, rejects)


def _is_plain(data: bytes) -> bool:
    if not data.endswith(b"\n") or b"\n\n" in data or b"\r" in data:
        return False
    if data.isascii():  # valid UTF-8 without decoding a copy of the whole file
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_csv_lines(
    data: bytes,
    columns: list[str],
    numbers: list[int] | range,
    rejects: list[tuple[int, str, str]],
) -> ParsedDelivery:
    """Parse header + data lines; ``numbers`` are the file's row numbers of those data lines."""
    invalid: dict[int, tuple[str, str]] = {}

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # row.number counts lines of what pyarrow was given, the header being line 1.
        invalid[row.number - 2] = (
            f"{row.actual_columns} field(s) where the header has {row.expected_columns}",
            row.text,
        )
        return "skip"

    def read(use_threads: bool, handler: Callable[[pacsv.InvalidRow], str]) -> pa.Table:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=use_threads, block_size=1 << 26),
            parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.large_string() for name in columns},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    # Blocks in parallel first: pyarrow cannot tell an invalid row's line number then, and the
    # number is only needed when there is such a row. If there is, the file is read again in one
    # thread, where each one is numbered.
    seen_invalid: list[pacsv.InvalidRow] = []
    table = read(True, lambda row: seen_invalid.append(row) or "skip")
    if seen_invalid:
        table = read(False, on_invalid)
    for position, (error, text) in invalid.items():
        rejects.append((numbers[position], error, text))
    good = [n for i, n in enumerate(numbers) if i not in invalid] if invalid else numbers
    return ParsedDelivery(_with_row_numbers(table, good), sorted(rejects), columns)


def _parse_jsonl(data: bytes) -> ParsedDelivery:
    rows: list[dict] = []
    numbers: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as error:
            rejects.append((number, f"not a JSON object: {error}", _text(line)))
            continue
        rows.append({k: None if v is None else str(v) for k, v in value.items()})
        numbers.append(number)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    schema = pa.schema([(c, pa.large_string()) for c in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    return ParsedDelivery(_with_row_numbers(table, numbers), rejects, columns)


def parse_delivery(data: bytes, fmt: str) -> ParsedDelivery:
    """Parse a delivered file; whatever cannot be parsed comes back as rejects, never dropped."""
    if not data.strip():
        return ParsedDelivery(pa.table({}), [(0, "empty file (not even a header)", "")], [])
    if fmt == "csv":
        return _parse_csv(data)
    if fmt == "jsonl":
        return _parse_jsonl(data)
    if fmt == "parquet":
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowInvalid, OSError) as error:
            return ParsedDelivery(pa.table({}), [(0, f"unreadable parquet: {error}", "")], [])
        return ParsedDelivery(
            _with_row_numbers(table, range(1, len(table) + 1)), [], table.column_names
        )
    raise DeliveryError(f"unknown format {fmt!r}")


def read_delivered(fs: pafs.FileSystem, file: DeliveredFile, fmt: str) -> pa.Table:
    """The file's parseable rows, every column a string (CSV values exactly as written)."""
    with fs.open_input_file(file.path) as handle:
        parsed = parse_delivery(handle.read(), fmt)
    if parsed.rejects and parsed.rejects[0][0] == 0:
        raise DeliveryError(f"{file.relative_path}: {parsed.rejects[0][1]}")
    return parsed.table.drop_columns(["_source_row"])


@dataclass(frozen=True)
class SourceDelivery:
    """What a partition's files delivered: rows (good and unparseable) and structural findings."""

    table: pa.Table
    missing_columns: dict[str, list[str]]  # file -> declared columns it lacks
    extra_columns: dict[str, list[str]]  # file -> undeclared columns it has
    file_errors: dict[str, str]  # file -> why the file as a whole could not be read
    unparseable_rows: int


def read_source_delivery(
    fs: pafs.FileSystem,
    files: list[DeliveredFile],
    fmt: str,
    declared_columns: list[str],
    loaded_at: dt.datetime,
    day: dt.date | None,
) -> SourceDelivery:
    """The delivered files of one partition, as strings, with lineage columns added.

    Unparseable lines and unreadable files become rows too (``_parse_error``, ``_raw_text``), so
    that the cleaned layer quarantines them: nothing delivered disappears. A missing declared column
    is kept as nulls and reported, for the blocking schema check.
    """
    tables, missing, extra, file_errors = [], {}, {}, {}
    unparseable = 0
    for file in files:
        with fs.open_input_file(file.path) as handle:
            parsed = parse_delivery(handle.read(), fmt)
        good = parsed.table
        if parsed.columns:
            lacking = [c for c in declared_columns if c not in parsed.columns]
            if lacking:
                missing[file.relative_path] = lacking
            surplus = [c for c in parsed.columns if c not in declared_columns]
            if surplus:
                extra[file.relative_path] = surplus
        for number, error, _ in parsed.rejects:
            if number == 0:
                file_errors[file.relative_path] = error
        unparseable += len(parsed.rejects)
        rejects = pa.table(
            {
                "_source_row": pa.array([r[0] for r in parsed.rejects], pa.int64()),
                "_parse_error": pa.array([r[1] for r in parsed.rejects], pa.large_string()),
                "_raw_text": pa.array([r[2] for r in parsed.rejects], pa.large_string()),
            }
        )
        table = pa.concat_tables([good, rejects], promote_options="default")
        rows = len(table)
        delivered_at = (
            dt.datetime.fromtimestamp(file.mtime_ns / 1e9, dt.UTC) if file.mtime_ns else loaded_at
        )
        lineage = {
            "_source_file": pa.array([file.relative_path] * rows, pa.large_string()),
            "_delivered_at": pa.array([delivered_at] * rows, pa.timestamp("us", tz="UTC")),
            "_loaded_at": pa.array([loaded_at] * rows, pa.timestamp("us", tz="UTC")),
        }
        if day is not None:
            lineage = {"date": pa.array([day] * rows, pa.date32()), **lineage}
        for name, values in lineage.items():
            table = table.append_column(name, values)
        tables.append(table)
    # Every declared column exists, even when a file lacked it (as nulls: the check reports it).
    combined = pa.concat_tables(tables, promote_options="default")
    for name in ["_parse_error", "_raw_text", *declared_columns]:
        if name not in combined.column_names:
            combined = combined.append_column(name, pa.nulls(len(combined), pa.large_string()))
    return SourceDelivery(combined, missing, extra, file_errors, unparseable)
