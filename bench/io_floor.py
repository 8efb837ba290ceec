"""The I/O floor: pyarrow reads each delivered CSV of the window and writes it as Parquet, nothing else.

    python -m bench.io_floor --landing DIR --dest DIR --start 2013-01-01 --end 2013-12-31 [--out F.json]

Every file the pipeline reads for the window (flights and weather of each day, the three reference
snapshots), read with pyarrow's multi-threaded CSV reader (types inferred) and written once as
Parquet (one file per input, default compression). No typing by contract, no Delta log, no pandas.
The pipeline reads once and writes four tables (raw, cleaned, quarantine, features), so it cannot get
to 1x of this; the issue's target is 5x.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

T0 = time.perf_counter()

import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

IMPORTED = time.perf_counter()
DAILY = ("flights", "weather")
SNAPSHOTS = ("airlines", "airports", "planes")


def window_files(landing: Path, start: dt.date, end: dt.date) -> list[Path]:
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    files = [landing / s / f"{d.isoformat()}.csv" for s in DAILY for d in days]
    return files + [landing / s / f"{s}.csv" for s in SNAPSHOTS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True, help="inclusive")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = read_s = write_s = 0.0
    for path in window_files(args.landing, args.start, args.end):
        r0 = time.perf_counter()
        table = pacsv.read_csv(path)
        r1 = time.perf_counter()
        target = args.dest / path.parent.name / (path.stem + ".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
        read_s += r1 - r0
        write_s += time.perf_counter() - r1
        rows += len(table)
    report = {
        "import_s": round(IMPORTED - T0, 3),
        "work_s": round(time.perf_counter() - t0, 3),
        "phases_s": {"read": round(read_s, 3), "write": round(write_s, 3)},
        "rows": int(rows),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
