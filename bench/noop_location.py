"""Dagster's own cost of a single-run backfill: daily-partitioned assets that do nothing.

    dagster asset materialize -f bench/noop_location.py --select '*' --partition-range 2013-01-01...2013-12-31

``BENCH_NOOP_ASSETS`` (default 8, as many daily assets as the pipeline has: raw, cleaned and
quarantine of two sources, features, the scorecard) chained one after another, with the pipeline's
partitions and backfill policy. Each returns a ``MaterializeResult`` and touches no data, so what is
left is the run: planning, one planned and one materialization event per asset and day, the instance.
``BENCH_NOOP_CHECKS`` (default 0; the pipeline has 29) daily checks, spread over the assets, each
recorded once per day through the pipeline's own ``checks.check_events``: one more event per check
and day. ``BENCH_NOOP_STATIC_ASSETS`` and ``BENCH_NOOP_STATIC_CHECKS`` (default 0; the pipeline has 9
and 36: the reference snapshots and what reads them) add unpartitioned assets and their checks,
recorded once per run whatever its days.
"""

import os

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    asset,
    in_process_executor,
)

from dataeng_assets.checks import check_events, check_spec
from dataeng_assets.partitions import DAILY_2013

COUNT = int(os.environ.get("BENCH_NOOP_ASSETS", "8"))
CHECKS = int(os.environ.get("BENCH_NOOP_CHECKS", "0"))
STATIC = int(os.environ.get("BENCH_NOOP_STATIC_ASSETS", "0"))
STATIC_CHECKS = int(os.environ.get("BENCH_NOOP_STATIC_CHECKS", "0"))


def _build(index: int):
    key = AssetKey(f"noop_{index}")
    names = [f"check_{c}" for c in range(CHECKS) if c % COUNT == index]

    @asset(
        key=key,
        deps=[f"noop_{index - 1}"] if index else [],
        partitions_def=DAILY_2013,
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[check_spec(n, asset=key, partitions_def=DAILY_2013) for n in names],
    )
    def noop(context: AssetExecutionContext):
        context.partition_time_window  # noqa: B018  (what a real asset reads)
        yield MaterializeResult()
        passed = [AssetCheckResult(asset_key=key, check_name=n, passed=True) for n in names]
        yield from check_events(context, {day: passed for day in context.partition_keys})

    return noop


def _build_static(index: int):
    key = AssetKey(f"noop_static_{index}")
    names = [f"check_{c}" for c in range(STATIC_CHECKS) if c % STATIC == index]

    @asset(
        key=key,
        backfill_policy=BackfillPolicy.single_run(),  # what lets the CLI run it with a range
        check_specs=[check_spec(n, asset=key) for n in names],
    )
    def noop_static(context: AssetExecutionContext):
        yield MaterializeResult()
        passed = [AssetCheckResult(asset_key=key, check_name=n, passed=True) for n in names]
        yield from check_events(context, {None: passed})

    return noop_static


defs = Definitions(
    assets=[*(_build(i) for i in range(COUNT)), *(_build_static(i) for i in range(STATIC))],
    executor=in_process_executor,
)
