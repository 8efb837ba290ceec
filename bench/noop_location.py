"""Dagster's own cost of a single-run backfill: daily-partitioned assets that do nothing.

    dagster asset materialize -f bench/noop_location.py --select '*' --partition-range 2013-01-01...2013-12-31

``BENCH_NOOP_ASSETS`` (default 8, as many daily assets as the pipeline has: raw, cleaned and
quarantine of two sources, features, the scorecard) chained one after another, with the pipeline's
partitions and backfill policy. Each returns a ``MaterializeResult`` and touches no data, so what is
left is the run: planning, one planned and one materialization event per asset and day, the instance.
"""

import os

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    DailyPartitionsDefinition,
    Definitions,
    MaterializeResult,
    asset,
    in_process_executor,
)

DAILY_2013 = DailyPartitionsDefinition(
    start_date="2013-01-01", end_date="2014-01-01", timezone="America/New_York"
)
COUNT = int(os.environ.get("BENCH_NOOP_ASSETS", "8"))


def _build(index: int):
    @asset(
        name=f"noop_{index}",
        deps=[f"noop_{index - 1}"] if index else [],
        partitions_def=DAILY_2013,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def noop(context: AssetExecutionContext) -> MaterializeResult:
        context.partition_time_window  # noqa: B018  (what a real asset reads)
        return MaterializeResult()

    return noop


defs = Definitions(assets=[_build(i) for i in range(COUNT)], executor=in_process_executor)
