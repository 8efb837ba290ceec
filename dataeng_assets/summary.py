"""Print what is in the lake: rows, days, Delta version and location of every table.

python -m dataeng_assets.summary
"""

from __future__ import annotations

import sys

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from dataeng_assets.resources import build_resources
from dataeng_assets.settings import load_settings
from dataeng_assets.storage.delta_io_manager import PARTITION_COLUMN, DeltaLakeIOManager

TABLES = [
    ("raw", ["flights", "weather", "airlines", "airports", "planes"]),
    ("cleaned", ["flights", "weather", "airlines", "airports", "planes"]),
    ("quarantine", ["flights", "weather", "airlines", "airports", "planes"]),
    ("features", ["flight_delay"]),
    ("quality", ["scorecard"]),
]


def table_summaries(io_manager: DeltaLakeIOManager) -> list[dict[str, object]]:
    rows = []
    for layer, names in TABLES:
        for name in names:
            uri = io_manager.table_uri([layer, name])
            try:
                table = DeltaTable(uri, storage_options=io_manager.store.delta_storage_options())
            except TableNotFoundError:
                rows.append({"table": f"{layer}/{name}", "rows": None, "uri": uri})
                continue
            actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
            partitions = actions.get(f"partition.{PARTITION_COLUMN}")
            rows.append(
                {
                    "table": f"{layer}/{name}",
                    "rows": sum(actions["num_records"]),
                    "days": len(set(partitions)) if partitions else None,
                    "version": table.version(),
                    "uri": uri,
                }
            )
    return rows


def main() -> int:
    io_manager = build_resources(load_settings())["lake_io_manager"]
    print(f"{'table':24s} {'rows':>9s} {'days':>5s} {'version':>7s}  location")
    missing = 0
    for row in table_summaries(io_manager):
        if row["rows"] is None:
            missing += 1
            print(
                f"{row['table']:24s} {'-':>9s} {'-':>5s} {'-':>7s}  {row['uri']} (not materialized)"
            )
            continue
        days = "" if row["days"] is None else str(row["days"])
        print(f"{row['table']:24s} {row['rows']:9d} {days:>5s} {row['version']:7d}  {row['uri']}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
