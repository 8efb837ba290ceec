"""Feature tables built from the cleaned layer."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from dataeng_assets.assets import CLEANED, FEATURES, IO_MANAGER_KEY
from dataeng_assets.assets.metadata import column_schema
from dataeng_assets.contracts import load_contract
from dataeng_assets.partitions import DAILY_2013, SINGLE_RUN_BACKFILL
from dataeng_assets.transforms import features as flight_features

FLIGHT_DELAY_CONTRACT = load_contract("features/flight_delay.yaml")

# Each day's rates need the HISTORY_DAYS days before it: the flights input reaches back that far.
# Before 2013-01-01 there is nothing to read, and that is not an error.
_FLIGHTS_WITH_HISTORY = TimeWindowPartitionMapping(
    start_offset=-flight_features.HISTORY_DAYS, allow_nonexistent_upstream_partitions=True
)


@asset(
    key=AssetKey([FEATURES, "flight_delay"]),
    group_name=FEATURES,
    ins={
        "flights": AssetIn(
            key=AssetKey([CLEANED, "flights"]), partition_mapping=_FLIGHTS_WITH_HISTORY
        ),
        "weather": AssetIn(key=AssetKey([CLEANED, "weather"])),
        "planes": AssetIn(key=AssetKey([CLEANED, "planes"])),
    },
    partitions_def=DAILY_2013,
    backfill_policy=SINGLE_RUN_BACKFILL,
    io_manager_key=IO_MANAGER_KEY,
    owners=["team:data-platform"],
    kinds={"pandas", "delta"},
    code_version="1",
    metadata={"dagster/column_schema": column_schema(FLIGHT_DELAY_CONTRACT, with_lineage=False)},
)
def flight_delay(
    context: AssetExecutionContext,
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
) -> Output[pd.DataFrame]:
    """One row per flight: schedule, origin weather, plane age and trailing 7-day on-time rates."""
    window = context.partition_time_window
    frame = flight_features.build_flight_delay_features(
        flights, weather, planes, window.start.date(), window.end.date(), FLIGHT_DELAY_CONTRACT
    )
    FLIGHT_DELAY_CONTRACT.pandera_schema().validate(frame, lazy=True)
    return Output(
        frame,
        metadata={
            "rows_out": len(frame),
            "flights_read_with_history": len(flights),
            "weather_missing": int(frame["temp"].isna().sum()),
            "plane_age_missing": int(frame["plane_age"].isna().sum()),
        },
    )
