"""The arrival sensor of the daily sources: one run per delivered day, from raw to the feature table.

A day of this platform is several daily sources (flights and weather) feeding one feature table.
With a sensor per source, a delivered day took three runs in a row (raw, then cleaned, then
features, each started by the automation sensor after the previous one ended), and each run pays
a process start-up. ``bench/file_to_feature.py`` measured that as most of the wait. So one sensor
watches every daily source and, for each day that changed, requests a single run of the daily job
with everything of that day it can build:

- the raw tables of the sources that changed, and their cleaned and quarantine tables;
- every daily table downstream (features, scorecard) whose daily inputs are all in the run;
- nothing whose reference input (an unpartitioned table such as ``cleaned/planes``) has never been
  built or failed a blocking check: those tables, and all after them, are left to Declarative
  Automation, which waits for them. The first day of a fresh install goes that way.

What the run leaves out (a day where only weather changed, a late correction of March's flights
that reaches the next seven days' features) follows by Declarative Automation, as before. Inside
the run, a failed blocking check stops everything downstream of it (Dagster skips those steps).

Per source, nothing changes: its own cursor (each content once), its own circuit breaker (a run that
ingests several sources counts for each), its own alerts. Snapshot sources keep a sensor each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from dataeng_assets.assets import RAW
from dataeng_assets.automation.alerts import AlertChannels
from dataeng_assets.automation.arrival import ARRIVAL, MAX_PARTITIONS_PER_TICK, tick_source
from dataeng_assets.automation.breaker import TRIGGER_TAG, BreakerPolicy, source_tags
from dataeng_assets.automation.landing_state import (
    ArrivalCursor,
    FileMapper,
    PartitionChange,
    content_signature,
    pack_cursor,
    unpack_cursor,
)
from dataeng_assets.partitions import DAILY_2013
from dataeng_assets.sources import Source
from dataeng_assets.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DAILY_ARRIVAL_SENSOR = "daily_arrival"
DAILY_JOB = "ingest_daily"
_CURSOR_PREFIX = "d1:"


def raw_key(source: Source) -> AssetKey:
    return AssetKey([RAW, source.name])


def build_daily_job(sources: Sequence[Source]) -> UnresolvedAssetJobDefinition:
    """Every daily table from the daily sources' raw tables down: what a day run picks from."""
    return define_asset_job(
        DAILY_JOB,
        selection=AssetSelection.assets(*(raw_key(s) for s in sources)).downstream(),
        description="A delivered day, from the raw tables of its sources to the feature table.",
    )


@dataclass
class DailyArrivalCursor:
    """One arrival cursor per daily source, kept as the per-source sensors kept theirs."""

    sources: dict[str, ArrivalCursor] = field(default_factory=dict)

    def encode(self) -> str:
        document = {name: cursor.encode() for name, cursor in sorted(self.sources.items())}
        return pack_cursor(document, _CURSOR_PREFIX)

    @classmethod
    def decode(cls, text: str | None) -> DailyArrivalCursor:
        if not text:
            return cls()
        document = unpack_cursor(text, _CURSOR_PREFIX, "a daily arrival cursor")
        return cls({name: ArrivalCursor.decode(value) for name, value in document.items()})


def reference_ready(instance: DagsterInstance, graph: BaseAssetGraph, key: AssetKey) -> bool:
    """An unpartitioned input is ready once built and none of its blocking checks failed last."""
    if instance.get_latest_materialization_event(key) is None:
        return False
    blocking = [c.key for c in graph.asset_check_nodes if c.key.asset_key == key and c.blocking]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(blocking)
    return all(
        record.status != AssetCheckExecutionRecordStatus.FAILED for record in latest.values()
    )


def day_selection(
    graph: BaseAssetGraph, raw_keys: Iterable[AssetKey], ready: Callable[[AssetKey], bool]
) -> list[AssetKey]:
    """The raw tables that changed and every daily table after them whose inputs are all either
    in the run or ready reference tables, in the graph's order."""
    selected = set(raw_keys)
    candidates = AssetSelection.assets(*selected).downstream().resolve(graph) - selected
    for key in graph.toposorted_asset_keys:
        if key not in candidates:
            continue
        parents = graph.get(key).parent_keys
        if all(
            p in selected or (graph.get(p).partitions_def is None and ready(p)) for p in parents
        ):
            selected.add(key)
    return [k for k in graph.toposorted_asset_keys if k in selected]


def build_day_requests(
    changes: dict[str, list[PartitionChange]],
    sources: Sequence[Source],
    graph: BaseAssetGraph,
    ready: Callable[[AssetKey], bool],
) -> list[RunRequest]:
    """One run per changed day, ingesting the sources that changed on it."""
    by_day: dict[str, dict[str, PartitionChange]] = {}
    for name, source_changes in changes.items():
        for change in source_changes:
            by_day.setdefault(change.partition, {})[name] = change
    known = {s.name: s for s in sources}
    # The selection depends only on which sources changed: a tick of 100 days resolves it once
    # per combination, not once per day.
    selections: dict[tuple[str, ...], list[AssetKey]] = {}
    requests = []
    for day in sorted(by_day):
        day_changes = by_day[day]
        names = sorted(day_changes)
        key = tuple(names)
        if key not in selections:
            selections[key] = day_selection(graph, [raw_key(known[n]) for n in names], ready)
        selection = selections[key]
        digest = content_signature(
            (name, f"{c.content}<{c.previous_content}") for name, c in sorted(day_changes.items())
        )
        requests.append(
            RunRequest(
                run_key=f"{'+'.join(names)}:{day}:{digest}",
                partition_key=day,
                asset_selection=selection,
                tags={
                    **source_tags(names),
                    TRIGGER_TAG: ARRIVAL,
                    "dataeng/files": str(sum(len(c.files) for c in day_changes.values())),
                },
            )
        )
    return requests


def evaluate_daily_arrivals(
    context: SensorEvaluationContext,
    sources: Sequence[Source],
    mappers: dict[str, FileMapper],
    landing: ObjectStore,
    alerts: AlertChannels,
    policy: BreakerPolicy,
    max_partitions: int = MAX_PARTITIONS_PER_TICK,
) -> SensorResult:
    cursor = DailyArrivalCursor.decode(context.cursor)
    changes, summaries = {}, []
    for source in sources:
        found = tick_source(
            context,
            source,
            mappers[source.name],
            landing,
            alerts,
            policy,
            cursor.sources.get(source.name) or ArrivalCursor(),
            max_partitions,
        )
        cursor.sources[source.name] = found.cursor
        if found.changes:
            changes[source.name] = found.changes
        else:
            summaries.append(f"{source.name}: {found.summary}")
    graph = context.repository_def.asset_graph
    readiness: dict[AssetKey, bool] = {}

    def ready(key: AssetKey) -> bool:
        if key not in readiness:
            readiness[key] = reference_ready(context.instance, graph, key)
        return readiness[key]

    requests = build_day_requests(changes, sources, graph, ready)
    return SensorResult(
        run_requests=requests,
        cursor=cursor.encode(),
        skip_reason=None if requests else "; ".join(summaries),
    )


def build_daily_arrival_sensor(
    sources: Sequence[Source],
    job: UnresolvedAssetJobDefinition,
    *,
    minimum_interval_seconds: int = 30,
    policy: BreakerPolicy | None = None,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """The sensor that watches every daily source's landing prefix and requests day runs."""
    if not sources or not all(s.is_daily for s in sources):
        raise ValueError("the daily arrival sensor watches daily sources only")
    keys = DAILY_2013.get_partition_keys()
    mappers = {s.name: FileMapper(s, keys) for s in sources}
    breaker_policy = policy or BreakerPolicy()
    watched = ", ".join(m.expected for m in mappers.values())

    @sensor(
        name=DAILY_ARRIVAL_SENSOR,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Watches {watched} in the landing zone; each new or corrected day is one run, from "
            f"raw to features (circuit breaker per source: {breaker_policy.failures} failures, "
            f"{int(breaker_policy.cooldown.total_seconds())} s cool-down)."
        ),
    )
    def daily_arrival(
        context: SensorEvaluationContext, landing: ObjectStore, alerts: AlertChannels
    ) -> SensorResult:
        return evaluate_daily_arrivals(context, sources, mappers, landing, alerts, breaker_policy)

    return daily_arrival
