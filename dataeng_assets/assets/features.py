"""Feature tables built from the cleaned layer."""

import inspect
from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    Failure,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from dataeng_assets.assets import CLEANED, FEATURES, IO_MANAGER_KEY
from dataeng_assets.assets.factory import DAILY_FRESHNESS, code_version
from dataeng_assets.assets.metadata import column_schema
from dataeng_assets.checks import SCHEMA, check_events, check_spec, schema_results_by_day
from dataeng_assets.contracts import load_contract
from dataeng_assets.partitions import DAILY_2013, SINGLE_RUN_BACKFILL
from dataeng_assets.storage.pools import table_pool
from dataeng_assets.transforms import features as flight_features
from dataeng_assets.transforms.conform import evaluate_rules

FLIGHT_DELAY_CONTRACT = load_contract("features/flight_delay.yaml")
FLIGHT_DELAY_KEY = AssetKey([FEATURES, "flight_delay"])

# Each day's rates need the HISTORY_DAYS days before it: the flights input reaches back that far.
# Before 2013-01-01 there is nothing to read, and that is not an error.
_FLIGHTS_WITH_HISTORY = TimeWindowPartitionMapping(
    start_offset=-flight_features.HISTORY_DAYS, allow_nonexistent_upstream_partitions=True
)


@asset(
    key=FLIGHT_DELAY_KEY,
    group_name=FEATURES,
    ins={
        "flights": AssetIn(
            key=AssetKey([CLEANED, "flights"]),
            partition_mapping=_FLIGHTS_WITH_HISTORY,
            metadata={"columns": flight_features.FLIGHT_COLUMNS},
        ),
        "weather": AssetIn(
            key=AssetKey([CLEANED, "weather"]),
            metadata={"columns": flight_features.WEATHER_COLUMNS},
        ),
        "planes": AssetIn(
            key=AssetKey([CLEANED, "planes"]), metadata={"columns": flight_features.PLANE_COLUMNS}
        ),
    },
    partitions_def=DAILY_2013,
    backfill_policy=SINGLE_RUN_BACKFILL,
    io_manager_key=IO_MANAGER_KEY,
    owners=["team:data-platform"],
    kinds={"pandas", "delta"},
    code_version=code_version(
        FLIGHT_DELAY_CONTRACT.source_text, inspect.getsource(flight_features)
    ),
    freshness_policy=DAILY_FRESHNESS,
    pool=table_pool(FLIGHT_DELAY_KEY),
    check_specs=[
        check_spec(
            SCHEMA,
            asset=FLIGHT_DELAY_KEY,
            partitions_def=DAILY_2013,
            blocking=True,
            description="Columns, types and nullability are as the feature contract says.",
        )
    ],
    metadata={"dagster/column_schema": column_schema(FLIGHT_DELAY_CONTRACT, with_lineage=False)},
)
def flight_delay(
    context: AssetExecutionContext,
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
) -> Iterator:
    """One row per flight: schedule, origin weather, plane age and trailing 7-day on-time rates."""
    window = context.partition_time_window
    frame = flight_features.build_flight_delay_features(
        flights, weather, planes, window.start.date(), window.end.date(), FLIGHT_DELAY_CONTRACT
    )
    # Output validation: a feature outside its contract is a bug upstream, so it stops the window.
    broken = evaluate_rules(frame, FLIGHT_DELAY_CONTRACT, {})
    if len(broken):
        raise Failure(
            description=f"features/flight_delay: {len(broken)} rule violation(s), e.g. "
            + "; ".join(broken["reason"].head(3)),
            allow_retries=False,
        )
    yield Output(
        frame,
        metadata={
            "rows_out": len(frame),
            "flights_read_with_history": len(flights),
            "weather_missing": int(frame["temp"].isna().sum()),
            "plane_age_missing": int(frame["plane_age"].isna().sum()),
        },
    )
    yield from check_events(
        context,
        schema_results_by_day(
            FLIGHT_DELAY_KEY, FLIGHT_DELAY_CONTRACT, frame, context.partition_keys
        ),
    )
