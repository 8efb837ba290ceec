"""Daily schedules: at a daily source's delivery deadline, make sure yesterday (NYC) was ingested.

The arrival sensor ingests files as they land; the schedule is the deadline behind it. At
``DELIVERY_DEADLINE`` (New York time) it looks at the previous local day's partition of the
source's ingestion job:

- no file delivered: skipped, with the reason, and a WARN alert (a late delivery reaches a person);
- already ingested (the sensor was faster): skipped, with the reason;
- otherwise: one run of that partition.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from dataeng_assets.assets import RAW
from dataeng_assets.automation.alerts import DELIVERY_MISSING, Alert, AlertChannels
from dataeng_assets.automation.breaker import TRIGGER_TAG, source_tags
from dataeng_assets.automation.landing_state import FileMapper
from dataeng_assets.automation.listing import LandingLister
from dataeng_assets.partitions import DAILY_2013
from dataeng_assets.sources import Source
from dataeng_assets.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

# Upstream delivers a day's files by 06:00 New York time the next morning.
DELIVERY_DEADLINE = dt.time(6, 0)
SCHEDULE = "schedule"


def daily_schedule_name(source: Source) -> str:
    return f"{source.name}_daily"


def previous_local_day(scheduled: dt.datetime, timezone: str) -> str:
    """The partition key of the local day before ``scheduled`` (which may be in any zone)."""
    local = scheduled.astimezone(ZoneInfo(timezone))
    return (local.date() - dt.timedelta(days=1)).isoformat()


def evaluate_daily(
    context: ScheduleEvaluationContext,
    source: Source,
    mapper: FileMapper,
    landing: ObjectStore,
    alerts: AlertChannels,
) -> RunRequest | SkipReason:
    scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    day = previous_local_day(scheduled, DAILY_2013.timezone)
    keys = DAILY_2013.get_partition_keys()
    if day not in keys:
        return SkipReason(f"{day} is not a partition: the partitions cover {keys[0]}..{keys[-1]}")
    stem = source.landing_stem(day)
    files = [o.key for o in LandingLister(landing).list(stem) if mapper.map(o.key) == day]
    if not files:
        reason = (
            f"{source.name} {day}: no file {stem}[_suffix].{mapper.extension} in "
            f"{landing.uri()} at the {DELIVERY_DEADLINE:%H:%M} {DAILY_2013.timezone} deadline"
        )
        alerts.send(
            Alert(
                kind=DELIVERY_MISSING,
                severity="WARN",
                title=reason,
                key=f"missing:{source.name}:{day}",
                source=source.name,
                partition=day,
                asset=f"{RAW}/{source.name}",
            ),
            context.log,
        )
        return SkipReason(reason)
    done = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey([RAW, source.name]), asset_partitions=[day]), limit=1
    )
    if done.records:
        return SkipReason(
            f"{source.name} {day}: already ingested (run {done.records[0].run_id}); "
            f"{len(files)} file(s) delivered"
        )
    return RunRequest(
        run_key=f"{source.name}:{day}:{SCHEDULE}",
        partition_key=day,
        tags={**source_tags([source.name]), TRIGGER_TAG: SCHEDULE},
    )


def build_daily_schedule(
    source: Source,
    job: UnresolvedAssetJobDefinition,
    *,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.RUNNING,
) -> ScheduleDefinition:
    """At the deadline, each day, the previous NYC day's partition of ``job`` (a daily job)."""
    if not source.is_daily:
        raise ValueError(f"{source.name} is a snapshot source: it has no daily partition")
    # The job's partitions are its raw asset's (Dagster infers them from the selection).
    partitions_def = DAILY_2013
    mapper = FileMapper(source, partitions_def.get_partition_keys())

    @schedule(
        name=daily_schedule_name(source),
        job=job,
        # The partitioned job's own cadence (daily, in its time zone), at the deadline.
        cron_schedule=partitions_def.get_cron_schedule(
            minute_of_hour=DELIVERY_DEADLINE.minute, hour_of_day=DELIVERY_DEADLINE.hour
        ),
        execution_timezone=partitions_def.timezone,
        default_status=default_status,
        description=(
            f"At {DELIVERY_DEADLINE:%H:%M} New York time, ingests yesterday's {source.name} "
            "partition if the arrival sensor has not, or says (and alerts) that it is missing."
        ),
    )
    def daily_schedule(
        context: ScheduleEvaluationContext, landing: ObjectStore, alerts: AlertChannels
    ) -> RunRequest | SkipReason:
        return evaluate_daily(context, source, mapper, landing, alerts)

    return daily_schedule
