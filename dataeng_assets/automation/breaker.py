"""A circuit breaker per source, read from the run history (no state of its own to lose).

After ``failures`` consecutive failed runs ingesting a source, its arrival sensor stops requesting
runs (the breaker is *open*) and alerts once. After ``cooldown`` it lets one run through
(*half-open*); while that run is in flight nothing else is requested (*probing*). A success closes
the breaker; another failure opens it for another cool-down. Files that arrive meanwhile are not
lost: the sensor leaves its cursor alone while the breaker blocks, so they are picked up later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

# Tags on every run the arrival sensors and the daily schedules request: the sources it ingests
# (comma-separated, for people) and one tag per source (for the breaker: a run may ingest several).
SOURCE_TAG = "dataeng/source"
TRIGGER_TAG = "dataeng/trigger"
_INGESTS_TAG = "dataeng/ingests."


def ingests_tag(source: str) -> str:
    return f"{_INGESTS_TAG}{source}"


def source_tags(sources: Iterable[str]) -> dict[str, str]:
    """The tags of a run that ingests ``sources``: what the breaker of each of them counts."""
    names = sorted(sources)
    return {SOURCE_TAG: ",".join(names), **{ingests_tag(name): "true" for name in names}}


_FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

Status = Literal["closed", "open", "half_open", "probing"]


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 3
    cooldown: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class BreakerState:
    status: Status
    consecutive_failures: int
    last_failed_run: str | None = None
    retry_at: float | None = None

    @property
    def blocks(self) -> bool:
        return self.status in ("open", "probing")

    def describe(self, source: str) -> str:
        if self.status == "closed":
            return f"{source}: circuit closed"
        retry = (
            dt.datetime.fromtimestamp(self.retry_at, dt.UTC).isoformat(timespec="seconds")
            if self.retry_at
            else "?"
        )
        return {
            "open": f"{source}: circuit open after {self.consecutive_failures} consecutive failed "
            f"runs (last {self.last_failed_run}); next try after {retry}",
            "half_open": f"{source}: circuit half-open, one run is let through to test the source",
            "probing": f"{source}: circuit half-open, waiting for the test run to finish",
        }[self.status]


def breaker_state(
    instance: DagsterInstance, source: str, policy: BreakerPolicy, now: float
) -> BreakerState:
    """The breaker of ``source`` from its newest runs that ingest it (newest first). A run that
    ingests several sources counts for each of them."""
    records = instance.get_run_records(
        filters=RunsFilter(tags={ingests_tag(source): "true"}), limit=policy.failures + 10
    )
    failures = 0
    last_failed = None
    for record in records:
        status = record.dagster_run.status
        if status == DagsterRunStatus.CANCELED or status not in _FINISHED:
            continue  # a cancel is a person's decision, not the source failing
        if status == DagsterRunStatus.SUCCESS:
            break
        failures += 1
        last_failed = last_failed or record
    if failures < policy.failures or last_failed is None:
        return BreakerState("closed", failures)
    ended = last_failed.end_time or last_failed.update_timestamp.timestamp()
    retry_at = ended + policy.cooldown.total_seconds()
    in_flight_since_failure = any(
        r.dagster_run.status not in _FINISHED and r.create_timestamp > last_failed.create_timestamp
        for r in records
    )
    if in_flight_since_failure:
        status: Status = "probing"
    elif now < retry_at:
        status = "open"
    else:
        status = "half_open"
    return BreakerState(status, failures, last_failed.dagster_run.run_id, retry_at)
