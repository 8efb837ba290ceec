"""Inspect and replay the quarantine.

    python -m dataeng_assets.quarantine list   [--source flights] [--start 2013-01-01] [--end ...]
    python -m dataeng_assets.quarantine replay --source flights [--start ...] [--end ...]

Raw keeps every delivered row, so a quarantined row is never gone: ``replay`` re-runs the cleaning
(with today's contracts and reference data) for the days that hold quarantined rows, and the rows
that now pass return to the cleaned table; the rest stay in quarantine with their (new) reasons.
The days' features and scorecard are rebuilt in the same run. Every step is the ordinary,
idempotent materialization of those partitions, recorded in Dagster like any other run.
"""

import argparse
import datetime as dt
import sys
from collections.abc import Sequence

import pandas as pd
from dagster import AssetKey, AssetSelection, DagsterInstance, materialize
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from dataeng_assets.assets import CLEANED, IO_MANAGER_KEY, QUARANTINE
from dataeng_assets.storage.delta_io_manager import to_pandas

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def read_quarantine(
    resources: dict, source: str, start: dt.date | None = None, end: dt.date | None = None
) -> pd.DataFrame:
    io_manager = resources[IO_MANAGER_KEY]
    try:
        table = DeltaTable(
            io_manager.table_uri([QUARANTINE, source]),
            storage_options=io_manager.store.delta_storage_options(),
        )
    except TableNotFoundError:
        return pd.DataFrame(columns=["date", "rules"])
    frame = to_pandas(table.to_pyarrow_table())
    if "date" in frame and (start or end):
        frame = frame[frame["date"].between(start or dt.date.min, end or dt.date.max)]
    return frame


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows per day and rule."""
    if frame.empty:
        return pd.DataFrame(columns=["date", "rule", "rows"])
    rules = frame.assign(rule=frame["rules"].str.split("; ")).explode("rule")
    by = ["date", "rule"] if "date" in rules else ["rule"]
    return rules.groupby(by).size().rename("rows").reset_index()


def contiguous_ranges(days: Sequence[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """[(start, end)] covering ``days`` with as few inclusive ranges as possible."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def replay_quarantine(
    assets: list,
    resources: dict,
    source: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    instance: DagsterInstance | None = None,
) -> tuple[int, int]:
    """Re-clean the days holding quarantined rows of ``source``. Returns (rows before, rows after)."""
    before = read_quarantine(resources, source, start, end)
    cleaned = AssetSelection.assets(AssetKey([CLEANED, source]))
    selection = cleaned | AssetSelection.assets(AssetKey([QUARANTINE, source]))
    if "date" in before:
        # The days' features and scorecard follow their cleaned data.
        selection = selection | (cleaned.downstream(depth=None) - cleaned)
        ranges = contiguous_ranges(before["date"].tolist())
    else:
        ranges = [(None, None)] if len(before) else []
    for first, last in ranges:
        tags = (
            {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()} if first else {}
        )
        materialize(
            assets, selection=selection, resources=resources, tags=tags, instance=instance,
            raise_on_error=False,
        )  # fmt: skip
    after = read_quarantine(resources, source, start, end)
    return len(before), len(after)


def main(argv: list[str] | None = None) -> int:
    from dataeng_assets.definitions import ALL_ASSETS
    from dataeng_assets.resources import build_resources
    from dataeng_assets.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m dataeng_assets.quarantine")
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("--source", default=None, help="a source of the registry (all for list)")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=None)
    args = parser.parse_args(argv)
    resources = build_resources(load_settings())
    from dataeng_assets.sources import registry

    sources = [args.source] if args.source else list(registry())
    if args.command == "list":
        for source in sources:
            frame = read_quarantine(resources, source, args.start, args.end)
            print(f"== quarantine/{source}: {len(frame)} row(s)")
            if len(frame):
                print(summarise(frame).to_string(index=False))
        return 0
    if not args.source:
        parser.error("replay needs --source")
    with DagsterInstance.get() as instance:
        before, after = replay_quarantine(
            ALL_ASSETS, resources, args.source, args.start, args.end, instance
        )
    print(
        f"quarantine/{args.source}: {before} row(s) before, {after} after; {before - after} returned"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
