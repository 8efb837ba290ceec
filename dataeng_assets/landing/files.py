"""Listing and reading delivered files. Every value is read as a string: raw keeps what was sent."""

from __future__ import annotations

import datetime as dt
import io
import json
import posixpath
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
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
    directory, base = posixpath.split(stem)
    selector = pafs.FileSelector(posixpath.join(root, directory), allow_not_found=True)
    ext = "." + EXTENSIONS[fmt]
    found = []
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File or not info.base_name.endswith(ext):
            continue
        name = info.base_name[: -len(ext)]
        if name == base or name.startswith(base + "_"):
            found.append(
                DeliveredFile(
                    path=info.path,
                    relative_path=posixpath.join(directory, info.base_name),
                    size=info.size or 0,
                    mtime_ns=info.mtime_ns,
                )
            )
    return sorted(found, key=lambda f: f.relative_path)


def _all_strings(table: pa.Table) -> pa.Table:
    return pa.table(
        {
            name: column
            if pa.types.is_large_string(column.type)
            else pc.cast(column, pa.large_string())
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )


def read_delivered(fs: pafs.FileSystem, file: DeliveredFile, fmt: str) -> pa.Table:
    """The file's rows with every column as a string (CSV values exactly as written)."""
    with fs.open_input_file(file.path) as handle:
        data = handle.read()
    if not data.strip():
        raise DeliveryError(f"{file.relative_path}: the file is empty (not even a header)")
    try:
        if fmt == "csv":
            columns = _csv_header(data)
            table = pacsv.read_csv(
                io.BytesIO(data),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.large_string() for name in columns},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        elif fmt == "parquet":
            table = pq.read_table(io.BytesIO(data))
        elif fmt == "jsonl":
            # Declared as strings so pyarrow does not guess (it would turn ISO times into timestamps
            # and print them back differently); keys not on the first line are still read.
            first = json.loads(data.split(b"\n", 1)[0])
            schema = pa.schema([(name, pa.large_string()) for name in first])
            table = pajson.read_json(
                io.BytesIO(data),
                parse_options=pajson.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="infer"
                ),
            )
        else:
            raise DeliveryError(f"{file.relative_path}: unknown format {fmt!r}")
    except (pa.ArrowInvalid, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DeliveryError(f"{file.relative_path}: cannot be read as {fmt}: {error}") from error
    return _all_strings(table)


def _csv_header(data: bytes) -> list[str]:
    """Column names from the first line, so that every column can be read as a string."""
    first_line = data.split(b"\n", 1)[0].rstrip(b"\r") + b"\n"
    return pacsv.read_csv(io.BytesIO(first_line)).column_names


def read_source_delivery(
    fs: pafs.FileSystem,
    root: str,
    files: list[DeliveredFile],
    fmt: str,
    required_columns: list[str],
    loaded_at: dt.datetime,
    day: dt.date | None,
) -> tuple[pa.Table, list[str]]:
    """The delivered files of one partition, as strings, with lineage columns added.

    Returns the rows and the extra (undeclared) columns found, which raw keeps as delivered.
    A file missing a declared column is refused with the file and the column named.
    """
    tables = []
    extra: set[str] = set()
    for file in files:
        table = read_delivered(fs, file, fmt)
        missing = [c for c in required_columns if c not in table.column_names]
        if missing:
            raise DeliveryError(
                f"{file.relative_path}: missing declared column(s) {missing}; "
                f"delivered columns are {table.column_names}"
            )
        extra.update(c for c in table.column_names if c not in required_columns)
        rows = len(table)
        lineage = {
            "_source_file": pa.array([file.relative_path] * rows, pa.large_string()),
            "_source_row": pa.array(range(1, rows + 1), pa.int64()),
            "_loaded_at": pa.array([loaded_at] * rows, pa.timestamp("us", tz="UTC")),
        }
        if day is not None:
            lineage = {"date": pa.array([day] * rows, pa.date32()), **lineage}
        for name, values in lineage.items():
            table = table.append_column(name, values)
        tables.append(table)
    return pa.concat_tables(tables, promote_options="default"), sorted(extra)
