"""The bare script: the pipeline's work for a window of days, with the package's own functions, no Dagster run.

    python -m bench.bare --landing DIR --lake DIR --start 2013-01-01 --end 2013-12-31 [--out F.json]

It is our overhead floor, so it must do the same work as the assets and nothing else: for every source
in the registry, read the window's delivered files (``list_delivered``, ``read_source_delivery``),
write raw, clean it with ``clean_table`` (contract types, rules, quarantine, de-duplication), write
cleaned and quarantine, compute the same checks per day (``raw_check_results``,
``cleaned_results_by_day``), then build the features (``build_flight_delay_features``), validate them and write them, and build
the quality scorecard (``quality.build_scorecard``, ``quality.drift_report``) and write it. Every table
is written the way the IO manager writes it: ``to_arrow``, ``check_window``, the table created once,
``overwrite_window`` (``write_deltalake(mode="overwrite", predicate=<the window>, partition_by=["date"],
schema_mode="merge")`` fed in batches).

What it leaves out is what only an orchestrator does: the run and its event log, materialization
events and metadata, reading each upstream table back from Delta (frames stay in memory here), and
the IO manager's output metadata (a second open of each table to list the files written).

The package's helper modules import Dagster themselves (``settings``, ``storage``, ``checks``), so
this script pays Dagster's import time too; ``bench.run`` measures that import on its own.

If the package changes a signature these calls use, this file is where to adapt (see bench/README).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

T0 = time.perf_counter()

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402
from deltalake import DeltaTable  # noqa: E402
from deltalake.exceptions import TableNotFoundError  # noqa: E402

from bench.common import Timer  # noqa: E402
from dataeng_assets.assets import CLEANED, FEATURES, QUALITY, QUARANTINE, RAW  # noqa: E402
from dataeng_assets.assets.features import FLIGHT_DELAY_CONTRACT, FLIGHT_DELAY_KEY  # noqa: E402
from dataeng_assets.checks import (  # noqa: E402
    cleaned_results,
    cleaned_results_by_day,
    raw_check_results,
    schema_results_by_day,
)
from dataeng_assets.landing.files import list_delivered, read_source_delivery  # noqa: E402
from dataeng_assets.sources import registry  # noqa: E402
from dataeng_assets.storage.delta_io_manager import (  # noqa: E402
    PARTITION_COLUMN,
    check_schema_compatible,
    check_window,
    overwrite_window,
    to_arrow,
    to_pandas,
    window_predicate,
)
from dataeng_assets.transforms import features as flight_features  # noqa: E402
from dataeng_assets.transforms import quality  # noqa: E402
from dataeng_assets.transforms.conform import clean_table, evaluate_rules  # noqa: E402

IMPORTED = time.perf_counter()


class Lake:
    """Delta writes exactly as the IO manager makes them, minus its output metadata."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, layer: str, table: str, frame: pd.DataFrame, window: tuple | None) -> int:
        uri = str(self.root / layer / table)
        data = to_arrow(frame)
        predicate, partition_by = None, None
        if window is not None:
            start, end = window
            check_window(data, start, end, f"{layer}/{table}")
            predicate, partition_by = window_predicate(start, end), [PARTITION_COLUMN]
        try:
            delta = DeltaTable(uri)
        except TableNotFoundError:
            DeltaTable.create(uri, data.schema, mode="ignore", partition_by=partition_by)
            delta = DeltaTable(uri)
        check_schema_compatible(delta, data.schema, f"{layer}/{table}")
        overwrite_window(uri, data, predicate, partition_by)
        return len(data)


def read_raw(source, fs, root: str, days: list[dt.date]):
    """What raw_asset reads: the window's files (the newest one for a snapshot), as strings."""
    contract = source.raw_contract
    files = []
    for day in days if source.is_daily else [None]:
        found = list_delivered(
            fs, root, source.landing_stem(day.isoformat() if day else None), source.format
        )
        if not source.is_daily:
            found = found[-1:]
        if not found:
            raise SystemExit(f"no delivery for {source.name} on {day}")
        files += [(day, f) for f in found]
    loaded_at = dt.datetime.now(dt.UTC)
    deliveries = [
        read_source_delivery(fs, [f], source.format, contract.column_names, loaded_at, day)
        for day, f in files
    ]
    table = pa.concat_tables([d.table for d in deliveries], promote_options="default")
    return deliveries, table


def run(landing: Path, lake_root: Path, start: dt.date, end: dt.date, timer: Timer) -> dict:
    """The window [start, end] (inclusive), like one single-run backfill of every asset."""
    fs, root = pafs.LocalFileSystem(), str(landing.resolve())
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    window = (start, end + dt.timedelta(days=1))
    lake = Lake(lake_root)
    sources = list(registry().values())
    cleaned: dict[str, pd.DataFrame] = {}
    counts: dict[str, dict] = {}
    raw_bytes: dict[str, int] = {}
    raw_frames: dict[str, pd.DataFrame] = {}
    quarantines: dict[str, pd.DataFrame] = {}
    pending = list(sources)
    # Reference tables first: a source is cleaned once the tables its contract references are.
    while pending:
        ready = [
            s for s in pending
            if all(r.reference[0] in cleaned for r in s.cleaned_contract.references)
        ]  # fmt: skip
        if not ready:
            raise SystemExit(f"circular references among {[s.name for s in pending]}")
        for source in ready:
            pending.remove(source)
            part = window if source.is_daily else None
            with timer("raw_read"):
                deliveries, table = read_raw(source, fs, root, days)
                raw_bytes[source.name] = table.nbytes
                raw = to_pandas(table)
                del table  # the frame shares its strings; the Arrow offsets would be a second copy
            with timer("raw_checks"):
                for delivery in deliveries:
                    raw_check_results(None, delivery)  # the key only labels the result
            with timer("raw_write"):
                lake.write(RAW, source.name, raw, part)
            if source.is_daily:  # the scorecard reads raw's date and delivery time
                raw_frames[source.name] = raw[["date", "_delivered_at"]]
            contract = source.cleaned_contract
            references = {r.reference[0]: cleaned[r.reference[0]] for r in contract.references}
            with timer("clean"):
                # Handed over as the cleaned asset does (clean_table(raw.load(), ...)): no
                # reference kept here, so clean_table can let the delivered text go once typed.
                handed = [raw]
                del raw
                result = clean_table(
                    handed.pop(),
                    contract,
                    natural_key=source.natural_key,
                    normalise=source.normalise,
                    na_values=source.na_values,
                    transform=source.transform_function(),
                    references=references,
                    time_column=source.time_column if source.is_daily else None,
                    pii_key=os.environ.get("DATAENG_PII_KEY", "").encode() or None
                    if contract.pii_columns
                    else None,
                )
                raw_days = result.delivered_days if source.is_daily else None
            natural_key = list(source.natural_key)
            check_results = (
                # every check once per day, as the assets record them
                partial(cleaned_results_by_day, None, result, raw_days, contract, natural_key,
                        references, [d.isoformat() for d in days])
                if source.is_daily
                else partial(cleaned_results, None, result, contract, natural_key, references)
            )  # fmt: skip
            quarantine = result.quarantine.assign(
                run_id="bare", quarantined_at=pd.Timestamp.now(tz="UTC").as_unit("us")
            )
            # As the cleaned asset does: the checks measured on another thread while the outputs
            # are written (delta-rs writes without the GIL), one phase for both.
            with timer("cleaned_write_and_checks"), ThreadPoolExecutor(max_workers=1) as pool:
                checked = pool.submit(check_results)
                lake.write(CLEANED, source.name, result.frame, part)
                lake.write(QUARANTINE, source.name, quarantine, part)
                checked.result()
            cleaned[source.name] = result.frame
            quarantines[source.name] = quarantine
            counts[source.name] = {
                "rows_in": result.rows_in,
                "rows_out": result.rows_out,
                "rows_quarantined": result.rows_quarantined,
            }
    with timer("features"):
        frame = flight_features.build_flight_delay_features(
            cleaned["flights"], cleaned["weather"], cleaned["planes"], window[0], window[1],
            FLIGHT_DELAY_CONTRACT,
        )  # fmt: skip
        broken = evaluate_rules(frame, FLIGHT_DELAY_CONTRACT, {})
        if len(broken):
            raise SystemExit(f"features: {len(broken)} rule violation(s)")
        schema_results_by_day(
            FLIGHT_DELAY_KEY, FLIGHT_DELAY_CONTRACT, frame, [d.isoformat() for d in days]
        )
    with timer("features_write"):
        lake.write(FEATURES, "flight_delay", frame, window)
    counts["features"] = {"rows_out": len(frame)}
    with timer("scorecard"):
        cards = []
        for source in (s for s in sources if s.is_daily):
            card = quality.build_scorecard(
                source.name, raw_frames[source.name], cleaned[source.name],
                quarantines[source.name], days,
            )  # fmt: skip
            quality.drift_report(cleaned[source.name], days, list(source.drift_columns))
            cards.append(card)
        lake.write(QUALITY, "scorecard", pd.concat(cards, ignore_index=True), window)
    flights_raw = raw_bytes.get("flights", 0)
    return {
        "counts": counts,
        "raw_arrow_bytes": raw_bytes,
        "flights_raw_arrow_bytes": flights_raw,
        "flights_cleaned_arrow_bytes": to_arrow(cleaned["flights"]).nbytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True, help="inclusive")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    timer = Timer()
    t0 = time.perf_counter()
    facts = run(args.landing, args.lake, args.start, args.end, timer)
    done = time.perf_counter()
    report = {
        "import_s": round(IMPORTED - T0, 3),
        "package": flight_features.__file__,
        "work_s": round(done - t0, 3),
        "phases_s": timer.phases,
        **facts,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
