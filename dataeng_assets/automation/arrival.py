"""Arrival sensors: one per source, turning landed files into ingestion runs of ``raw/<source>``.

A tick lists the source's prefix (a folder or S3, the same code after the listing), maps each file to
its partition and compares each partition with the cursor (``landing_state.py``). Partitions whose
content changed are requested as runs: one per day (``DAYS_PER_RUN``, see there why not a range),
a snapshot as one unpartitioned run. Cleaned and feature tables follow by
Declarative Automation (``conditions.py``).

Exactly once per content: the cursor remembers each partition's content signature, so a re-delivery
of the same bytes requests nothing, and a corrected file (new bytes) requests its partition again.
Each run key names the partition, its new and its previous content: if the daemon dies between
launching a run and saving the cursor, the next tick asks for the same key and Dagster drops it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from dataeng_assets.assets import RAW
from dataeng_assets.automation.alerts import (
    CIRCUIT_CLOSED,
    CIRCUIT_OPEN,
    UNMAPPABLE_FILE,
    Alert,
    AlertChannels,
)
from dataeng_assets.automation.breaker import (
    TRIGGER_TAG,
    BreakerPolicy,
    breaker_state,
    source_tags,
)
from dataeng_assets.automation.landing_state import (
    SNAPSHOT,
    ArrivalCursor,
    ArrivalPlan,
    FileMapper,
    PartitionChange,
    content_signature,
    contiguous_ranges,
    plan_arrivals,
)
from dataeng_assets.automation.listing import LandingLister
from dataeng_assets.partitions import DAILY_2013
from dataeng_assets.sources import Source
from dataeng_assets.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

# Dagster's own tags for a run over a partition range (what a single-run backfill sets).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
ARRIVAL = "arrival"
# Per tick at most this many changed partitions are hashed and requested; the rest wait a tick.
MAX_PARTITIONS_PER_TICK = 100
# Days per ingestion run. The assets take any window (a month is one run) and record each day's check
# results on that day, but a failed blocking check fails its step, and everything downstream of it
# in the run, for every day of the run. One day per run keeps each day's fate its own.
DAYS_PER_RUN = 1
_LISTED_IN_ALERT = 20


def ingest_job_name(source: Source) -> str:
    return f"ingest_{source.name}"


def arrival_sensor_name(source: Source) -> str:
    return f"{source.name}_arrival"


def build_ingest_job(source: Source) -> UnresolvedAssetJobDefinition:
    """The raw asset of one source (partitioned like it): what sensors and schedules launch."""
    return define_asset_job(
        ingest_job_name(source),
        selection=AssetSelection.assets(AssetKey([RAW, source.name])),
        # On every run of the job, however launched: the circuit breaker counts these runs.
        tags=source_tags([source.name]),
        description=f"Ingest delivered {source.name} files into raw/{source.name}.",
    )


def _chunks(days: list[str], size: int) -> list[list[str]]:
    return [days[i : i + size] for i in range(0, len(days), size)]


def build_run_requests(
    source: Source, changes: list[PartitionChange], days_per_run: int = DAYS_PER_RUN
) -> list[RunRequest]:
    """One run per range of up to ``days_per_run`` consecutive changed days (or the snapshot)."""
    by_partition = {c.partition: c for c in changes}
    tags = {**source_tags([source.name]), TRIGGER_TAG: ARRIVAL}
    if not source.is_daily:
        if SNAPSHOT not in by_partition:
            return []
        change = by_partition[SNAPSHOT]
        return [
            RunRequest(
                run_key=f"{source.name}:snapshot:{change.content}<{change.previous_content}",
                tags={**tags, "dataeng/files": str(len(change.files))},
            )
        ]
    requests = []
    ranges = contiguous_ranges(by_partition, DAILY_2013.get_partition_keys())
    for group in (chunk for days in ranges for chunk in _chunks(days, days_per_run)):
        group_changes = [by_partition[p] for p in group]
        digest = content_signature(
            (c.partition, f"{c.content}<{c.previous_content}") for c in group_changes
        )
        files = str(sum(len(c.files) for c in group_changes))
        if len(group) == 1:
            requests.append(
                RunRequest(
                    run_key=f"{source.name}:{group[0]}:{digest}",
                    partition_key=group[0],
                    tags={**tags, "dataeng/files": files},
                )
            )
        else:
            requests.append(
                RunRequest(
                    run_key=f"{source.name}:{group[0]}...{group[-1]}:{digest}",
                    tags={
                        **tags,
                        "dataeng/files": files,
                        RANGE_START_TAG: group[0],
                        RANGE_END_TAG: group[-1],
                    },
                )
            )
    return requests


def _summary(plan: ArrivalPlan) -> str:
    parts = []
    if plan.same_content:
        parts.append(
            f"re-delivered with the same content, nothing to run: {', '.join(plan.same_content)}"
        )
    if plan.removed:
        parts.append(f"all files removed (tables keep their data): {', '.join(plan.removed)}")
    if plan.unmapped_total:
        parts.append(f"{plan.unmapped_total} file(s) that map to no partition (reported)")
    if not parts:
        parts.append(f"no new or changed file among {plan.files_listed} listed")
    return "; ".join(parts)


@dataclass
class SourceTick:
    """What one tick found for one source: its changed partitions and its next cursor."""

    changes: list[PartitionChange]
    cursor: ArrivalCursor
    # Why nothing was requested (breaker, same content, nothing new), for the tick's skip reason.
    summary: str


def tick_source(
    context: SensorEvaluationContext,
    source: Source,
    mapper: FileMapper,
    landing: ObjectStore,
    alerts: AlertChannels,
    policy: BreakerPolicy,
    cursor: ArrivalCursor,
    max_partitions: int = MAX_PARTITIONS_PER_TICK,
) -> SourceTick:
    """One source's part of a tick: its breaker, its listing, its changes (and their alerts)."""
    breaker = breaker_state(context.instance, source.name, policy, time.time())
    if breaker.status == "closed" and cursor.breaker_alerted:
        alerts.send(
            Alert(
                kind=CIRCUIT_CLOSED,
                severity="INFO",
                title=f"{source.name}: ingestion works again, circuit closed",
                key=f"circuit:{source.name}",
                source=source.name,
            ),
            context.log,
        )
        cursor.breaker_alerted = None
    elif breaker.status != "closed" and not cursor.breaker_alerted:
        alerts.send(
            Alert(
                kind=CIRCUIT_OPEN,
                severity="ERROR",
                title=breaker.describe(source.name),
                key=f"circuit:{source.name}",
                source=source.name,
                run_id=breaker.last_failed_run,
                run_url=alerts.run_url(breaker.last_failed_run)
                if breaker.last_failed_run
                else None,
                details={"consecutive_failures": breaker.consecutive_failures},
            ),
            context.log,
        )
        cursor.breaker_alerted = breaker.last_failed_run or "?"
    if breaker.blocks:
        # The cursor keeps every file unseen, so they are requested once the breaker lets go.
        return SourceTick([], cursor, breaker.describe(source.name))

    lister = LandingLister(landing)
    objects = lister.list(mapper.prefix)
    # Half-open: a single partition tests the source before the rest follow.
    limit = 1 if breaker.status == "half_open" else max_partitions
    plan = plan_arrivals(mapper, objects, cursor, lister.content_id, limit)

    if plan.unmapped_new:
        listed = [f"{u.key}: {u.reason}" for u in plan.unmapped_new[:_LISTED_IN_ALERT]]
        more = len(plan.unmapped_new) - len(listed)
        for line in listed:
            context.log.warning(f"{source.name}: cannot map {line}")
        alerts.send(
            Alert(
                kind=UNMAPPABLE_FILE,
                severity="WARN",
                title=f"{source.name}: {len(plan.unmapped_new)} delivered file(s) map to no "
                f"partition and were not ingested",
                key=f"unmapped:{source.name}:"
                + content_signature((u.key, u.reason) for u in plan.unmapped_new),
                source=source.name,
                details={
                    "files": listed + ([f"... and {more} more"] if more else []),
                    "expected": mapper.expected,
                },
            ),
            context.log,
        )
    if plan.deferred:
        context.log.info(
            f"{source.name}: {len(plan.deferred)} changed partition(s) left for the next tick"
        )
    return SourceTick(plan.changes, plan.cursor, _summary(plan))


def evaluate_arrivals(
    context: SensorEvaluationContext,
    source: Source,
    mapper: FileMapper,
    landing: ObjectStore,
    alerts: AlertChannels,
    policy: BreakerPolicy,
    max_partitions: int = MAX_PARTITIONS_PER_TICK,
    days_per_run: int = DAYS_PER_RUN,
) -> SensorResult:
    found = tick_source(
        context,
        source,
        mapper,
        landing,
        alerts,
        policy,
        ArrivalCursor.decode(context.cursor),
        max_partitions,
    )
    requests = build_run_requests(source, found.changes, days_per_run)
    return SensorResult(
        run_requests=requests,
        cursor=found.cursor.encode(),
        skip_reason=None if requests else found.summary,
    )


def build_arrival_sensor(
    source: Source,
    job: UnresolvedAssetJobDefinition,
    *,
    minimum_interval_seconds: int = 30,
    policy: BreakerPolicy | None = None,
    days_per_run: int = DAYS_PER_RUN,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """The sensor that watches ``source``'s landing prefix and requests ``job`` runs."""
    mapper = FileMapper(source, DAILY_2013.get_partition_keys() if source.is_daily else None)
    breaker_policy = policy or BreakerPolicy()

    @sensor(
        name=arrival_sensor_name(source),
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Watches {mapper.expected} in the landing zone and ingests each new or corrected "
            f"delivery once (circuit breaker: {breaker_policy.failures} failures, "
            f"{int(breaker_policy.cooldown.total_seconds())} s cool-down)."
        ),
    )
    def arrival_sensor(
        context: SensorEvaluationContext, landing: ObjectStore, alerts: AlertChannels
    ) -> SensorResult:
        return evaluate_arrivals(
            context, source, mapper, landing, alerts, breaker_policy, days_per_run=days_per_run
        )

    return arrival_sensor
