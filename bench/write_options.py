"""What delta-rs's Parquet writer settings cost: the 4M-row day's tables written with each setting.

    python -m bench.write_options --lake data/bench/full/partition/rows_4000000/bare/lake [--reps 5]

Reads the day's raw, cleaned and feature flights from a lake the benchmark wrote (the bare script's
or a run's), then writes each table again into a new Delta table, once per setting and round, the
settings alternating round by round, as ``overwrite_window`` writes it (batches of 262,144 rows,
partitioned by day). Medians of the write's wall time and the files' size go to
``results/write_options.{json,md}``. A measurement for choosing the IO manager's writer settings,
not a scenario of ``bench.run``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import pyarrow as pa
from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake

from bench.common import RESULTS, WORK, loadavg, machine, now_iso
from dataeng_assets.storage.delta_io_manager import PARTITION_COLUMN, WRITE_BATCH_ROWS

TABLES = ["raw/flights", "cleaned/flights", "features/flight_delay"]


def settings() -> dict[str, WriterProperties | None]:
    return {
        "default (snappy, page statistics)": None,
        # A WriterProperties without a compression writes none: name snappy, the default's.
        "chunk statistics": WriterProperties(
            compression="SNAPPY",
            default_column_properties=ColumnProperties(statistics_enabled="CHUNK"),
        ),
        "lz4_raw": WriterProperties(compression="LZ4_RAW"),
        "zstd(1)": WriterProperties(compression="ZSTD", compression_level=1),
        "uncompressed": WriterProperties(compression="UNCOMPRESSED"),
        "no dictionary": WriterProperties(
            compression="SNAPPY",
            default_column_properties=ColumnProperties(dictionary_enabled=False),
        ),
    }


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.parquet"))


def write_once(data: pa.Table, target: Path, props: WriterProperties | None) -> float:
    shutil.rmtree(target, ignore_errors=True)
    batches = pa.RecordBatchReader.from_batches(
        data.schema, data.to_batches(max_chunksize=WRITE_BATCH_ROWS)
    )
    t0 = time.perf_counter()
    write_deltalake(
        str(target), batches, mode="overwrite", partition_by=[PARTITION_COLUMN],
        schema_mode="merge", writer_properties=props,
    )  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    work = WORK / "write_options"
    options = settings()
    results: dict[str, dict] = {}
    for table in TABLES:
        data = DeltaTable(str(args.lake / table)).to_pyarrow_table()
        runs: dict[str, list[float]] = {name: [] for name in options}
        sizes: dict[str, int] = {}
        for rnd in range(args.reps):
            names = list(options)
            names = names[rnd % len(names) :] + names[: rnd % len(names)]  # rotate the order
            for name in names:
                target = (
                    work / table.replace("/", "_") / name.split(" ")[0].replace("(", "_").strip(")")
                )
                runs[name].append(write_once(data, target, options[name]))
                sizes[name] = size_of(target)
        results[table] = {
            "rows": data.num_rows,
            "arrow_mib": round(data.nbytes / 2**20, 1),
            "settings": {
                name: {
                    "median_s": round(statistics.median(runs[name]), 3),
                    "runs_s": [round(v, 3) for v in runs[name]],
                    "size_mib": round(sizes[name] / 2**20, 1),
                }
                for name in options
            },
        }
        print(table, json.dumps(results[table]["settings"], indent=1), flush=True)
    report = {"measured_at": now_iso(), "load": loadavg(), "machine": machine(),
              "reps": args.reps, "lake": str(args.lake), "tables": results}  # fmt: skip
    (RESULTS / "write_options.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# delta-rs writer settings, the 4M-row day's tables",
        "",
        f"`python -m bench.write_options --reps {args.reps}` ({report['measured_at']}, load "
        f"{report['load']}): each table written as a new Delta table, partitioned by day, in "
        "batches of 262,144 rows; medians, the settings alternating round by round.",
        "",
        "| table | setting | median write (s) | vs default | size (MiB) |",
        "|---|---|---:|---:|---:|",
    ]
    for table, res in results.items():
        base = res["settings"]["default (snappy, page statistics)"]["median_s"]
        for name, r in res["settings"].items():
            lines.append(
                f"| {table} ({res['rows']:,} rows) | {name} | {r['median_s']:.2f} | "
                f"{r['median_s'] / base:.2f} | {r['size_mib']:.1f} |"
            )
    (RESULTS / "write_options.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
