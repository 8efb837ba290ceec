"""The alert sensor: failed asset checks, failed runs and freshness changes, to a person, once.

A failed asset check does not fail its run (dagster issue #29896), so a run-failure sensor alone
misses it. This sensor reads, for each run that finished since its last tick, the run's asset-check
evaluations and its failure; and the freshness state changes since its last tick.

- Runs are found by their update time (``RunsFilter(updated_after=...)``), not by an event-log
  storage id: on SQLite every run has its own event database, so an integer cursor over check
  evaluations raises there; times work on SQLite and on Postgres alike. A short overlap, with the
  run ids already handled, keeps a run that finishes during a tick from being missed.
- One alert per run: every new failure of that run (checks and the run failure itself) in one
  message, so a corrupted file that fails a blocking check and therefore its run reaches a person
  once, naming the check.
- Once per failure: a failure (asset, check, partition) stays *open* until a later evaluation
  passes; meanwhile it is not alerted again. When it passes, a recovery note is sent.
- A delivery that failed on every try of a channel is retried on the next ticks (bounded).
- Freshness state changes are asset events (mirrored in the index shard on SQLite), so an integer
  storage-id cursor is safe for them.

On its first tick the sensor starts from the newest run: history is not alerted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    EventRecordsFilter,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.storage.dagster_run import RunRecord

from dataeng_assets.automation.alerts import (
    CHECK_FAILED,
    FRESHNESS,
    RECOVERED,
    RUN_FAILED,
    Alert,
    AlertChannels,
    sample_rows,
)

ALERT_SENSOR = "alerts"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"

# A run finishing while a tick reads is caught by the next tick's overlap.
OVERLAP_SECONDS = 300.0
MAX_RUNS_PER_TICK = 200
MAX_SEEN_RUNS = 2000
MAX_OPEN = 5000
MAX_PENDING = 100
PENDING_TICKS = 20
_FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
_LISTED = 20
_COUNT_WORDS = (
    "fail",
    "violat",
    "unparseable",
    "unreadable",
    "missing",
    "quarantin",
    "duplicate",
    "invalid",
)
_SAMPLE_KEYS = ("examples", "sample", "samples", "failure_cases", "failing_rows_sample")


@dataclass
class AlertCursor:
    runs_after: float | None = None  # update time (epoch s) of the newest run handled
    # Runs updated at or before the sensor's first tick are history: never alerted.
    start: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)  # run id -> its update time
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # failure key -> first alert
    freshness_after: int | None = None  # event storage id
    pending: list[dict[str, Any]] = field(default_factory=list)  # deliveries to try again

    def encode(self) -> str:
        return json.dumps(
            {
                "runs_after": self.runs_after,
                "start": self.start,
                "seen": self.seen,
                "open": self.open,
                "freshness_after": self.freshness_after,
                "pending": self.pending,
            },
            separators=(",", ":"),
            default=str,
        )

    @classmethod
    def decode(cls, text: str | None) -> AlertCursor:
        if not text:
            return cls()
        document = json.loads(text)
        return cls(
            runs_after=document.get("runs_after"),
            start=document.get("start") or 0.0,
            seen=dict(document.get("seen") or {}),
            open=dict(document.get("open") or {}),
            freshness_after=document.get("freshness_after"),
            pending=list(document.get("pending") or []),
        )


def _metadata_value(value: Any) -> Any:
    raw = getattr(value, "value", value)
    if isinstance(raw, str | int | float | bool) or raw is None:
        return raw
    try:
        json.dumps(raw)
    except TypeError:
        return str(raw)
    return raw


def check_summary(evaluation: Any, fallback_partition: str | None) -> dict[str, Any]:
    """What a person needs from an asset-check evaluation: what, where, how bad, an example."""
    metadata = {k: _metadata_value(v) for k, v in (evaluation.metadata or {}).items()}
    failing_rows = next(
        (
            int(v)
            for k, v in metadata.items()
            if isinstance(v, int | float)
            and not isinstance(v, bool)
            and any(w in k.lower() for w in _COUNT_WORDS)
        ),
        None,
    )
    sample = next((metadata[k] for k in _SAMPLE_KEYS if metadata.get(k)), None)
    scalars = {k: v for k, v in metadata.items() if isinstance(v, str | int | float | bool)}
    return {
        "asset": evaluation.asset_key.to_user_string(),
        "check": evaluation.check_name,
        "partition": evaluation.partition or fallback_partition,
        "severity": evaluation.severity.value,
        "blocking": bool(evaluation.blocking),
        "passed": evaluation.passed,
        "description": evaluation.description,
        "failing_rows": failing_rows,
        "sample": sample_rows(sample) if sample is not None else None,
        "metadata": dict(list(scalars.items())[:20]),
    }


def run_partition(tags: Mapping[str, str]) -> str | None:
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    if tags.get(RANGE_START_TAG):
        return f"{tags[RANGE_START_TAG]}...{tags.get(RANGE_END_TAG, '')}"
    return None


@dataclass
class RunEvents:
    """What the alert sensor reads of one finished run, in one query of its event log."""

    checks: list[Any]  # AssetCheckEvaluation
    planned_assets: list[str]
    failed_steps: list[dict[str, str]]
    run_failure: str | None

    @classmethod
    def read(cls, instance: DagsterInstance, run_id: str) -> RunEvents:
        records = instance.get_records_for_run(
            run_id,
            of_type={
                DagsterEventType.ASSET_CHECK_EVALUATION,
                DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                DagsterEventType.STEP_FAILURE,
                DagsterEventType.RUN_FAILURE,
            },
        ).records
        events = cls(checks=[], planned_assets=[], failed_steps=[], run_failure=None)
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                events.checks.append(event.asset_check_evaluation_data)
            elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
                if event.asset_key is not None:
                    events.planned_assets.append(event.asset_key.to_user_string())
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                error = event.step_failure_data.error
                # The user's error is the innermost cause; the outer ones are Dagster's wrappers.
                while error is not None and error.cause is not None:
                    error = error.cause
                text = (error.message if error else event.message or "").strip()
                events.failed_steps.append({"step": event.step_key or "", "error": text[:500]})
            elif event.event_type == DagsterEventType.RUN_FAILURE:
                events.run_failure = (event.message or "").strip()[:500]
        return events

    def target(self, job_name: str) -> str:
        """The assets the run was to materialize (its job's name if none)."""
        return ",".join(sorted(set(self.planned_assets))) or job_name


def _check_key(summary: Mapping[str, Any]) -> str:
    return f"check:{summary['asset']}:{summary['check']}:{summary['partition'] or ''}"


def alerts_for_run(
    instance: DagsterInstance, record: RunRecord, cursor: AlertCursor, channels: AlertChannels
) -> list[Alert]:
    """New failures of one finished run (one alert) and what it shows recovered (one note)."""
    run = record.dagster_run
    partition = run_partition(run.tags)
    events = RunEvents.read(instance, run.run_id)
    summaries = [check_summary(evaluation, partition) for evaluation in events.checks]
    url = channels.run_url(run.run_id)
    target = events.target(run.job_name)
    run_key = f"run:{target}:{partition or ''}"
    new_failures = []
    recovered = []
    for summary in summaries:
        key = _check_key(summary)
        if not summary["passed"]:
            if key not in cursor.open:
                new_failures.append(summary)
                cursor.open[key] = {"run_id": run.run_id, "at": record.update_timestamp.timestamp()}
        elif key in cursor.open:
            recovered.append(summary)
            cursor.open.pop(key)

    failed = run.status == DagsterRunStatus.FAILURE
    run_is_new_failure = failed and run_key not in cursor.open
    if failed:
        cursor.open.setdefault(
            run_key, {"run_id": run.run_id, "at": record.update_timestamp.timestamp()}
        )
    elif run_key in cursor.open:
        cursor.open.pop(run_key)
        recovered.append({"asset": target, "check": None, "partition": partition})

    alerts = []
    if new_failures or run_is_new_failure:
        failure = (
            {"failed_steps": events.failed_steps[:_LISTED], "run_failure": events.run_failure}
            if failed
            else {}
        )
        names = sorted({f"{s['asset']}:{s['check']}" for s in new_failures})
        if new_failures:
            title = f"{len(new_failures)} asset check(s) failed: {', '.join(names[:5])}"
            if len(names) > 5:
                title += f" and {len(names) - 5} more"
            if partition:
                title += f" [{partition}]"
            if failed:
                title += " (the run failed)"
        else:
            title = f"run failed: {target}" + (f" [{partition}]" if partition else "")
        worst = "ERROR" if failed or any(s["severity"] == "ERROR" for s in new_failures) else "WARN"
        alerts.append(
            Alert(
                kind=CHECK_FAILED if new_failures else RUN_FAILED,
                severity=worst,
                title=title,
                key=run.run_id,
                asset=new_failures[0]["asset"] if new_failures else target,
                partition=partition,
                run_id=run.run_id,
                run_url=url,
                checks=tuple(new_failures[:_LISTED]),
                details={"job": run.job_name, "run_status": run.status.value, **failure},
            )
        )
    if recovered:
        names = sorted(
            {f"{s['asset']}" + (f":{s['check']}" if s["check"] else "") for s in recovered}
        )
        alerts.append(
            Alert(
                kind=RECOVERED,
                severity="INFO",
                title=f"recovered: {', '.join(names[:5])}"
                + (f" [{partition}]" if partition else ""),
                key=f"recovered:{run.run_id}",
                asset=recovered[0]["asset"],
                partition=partition,
                run_id=run.run_id,
                run_url=url,
                checks=tuple(recovered[:_LISTED]),
            )
        )
    return alerts


def alerts_for_freshness(
    instance: DagsterInstance, cursor: AlertCursor
) -> tuple[list[Alert], int | None]:
    records = instance.get_event_records(
        EventRecordsFilter(
            event_type=DagsterEventType.FRESHNESS_STATE_CHANGE,
            after_cursor=cursor.freshness_after,
        ),
        limit=MAX_RUNS_PER_TICK,
        ascending=True,
    )
    alerts = []
    newest = cursor.freshness_after
    for record in records:
        newest = max(newest or 0, record.storage_id)
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        change = event.event_specific_data
        asset = change.key.to_user_string()
        key = f"freshness:{asset}"
        state = change.new_state.value
        if state in ("FAIL", "WARN") and cursor.open.get(key, {}).get("state") != state:
            cursor.open[key] = {"state": state, "at": change.state_change_timestamp}
            alerts.append(
                Alert(
                    kind=FRESHNESS,
                    severity="ERROR" if state == "FAIL" else "WARN",
                    title=f"{asset} is stale: freshness {change.previous_state.value} -> {state}",
                    key=f"{key}:{change.state_change_timestamp}",
                    asset=asset,
                )
            )
        elif state == "PASS" and key in cursor.open:
            cursor.open.pop(key)
            alerts.append(
                Alert(
                    kind=RECOVERED,
                    severity="INFO",
                    title=f"recovered: {asset} is fresh again",
                    key=f"{key}:{change.state_change_timestamp}",
                    asset=asset,
                )
            )
    return alerts, newest


def _newest_run_time(instance: DagsterInstance) -> float:
    records = instance.get_run_records(limit=1, order_by="update_timestamp", ascending=False)
    return records[0].update_timestamp.timestamp() if records else 0.0


def _newest_freshness_id(instance: DagsterInstance) -> int | None:
    records = instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.FRESHNESS_STATE_CHANGE), limit=1
    )
    return records[0].storage_id if records else None


def collect_alerts(
    instance: DagsterInstance, cursor: AlertCursor, channels: AlertChannels
) -> list[Alert]:
    """The alerts due since ``cursor`` (which is advanced in place)."""
    if cursor.runs_after is None:
        cursor.runs_after = cursor.start = _newest_run_time(instance)
        cursor.freshness_after = _newest_freshness_id(instance)
        return []
    since = dt.datetime.fromtimestamp(cursor.runs_after - OVERLAP_SECONDS, dt.UTC)
    records = instance.get_run_records(
        filters=RunsFilter(statuses=_FINISHED, updated_after=since),
        order_by="update_timestamp",
        ascending=True,
        limit=MAX_RUNS_PER_TICK,
    )
    alerts: list[Alert] = []
    for record in records:
        run_id = record.dagster_run.run_id
        updated = record.update_timestamp.timestamp()
        if run_id in cursor.seen or updated <= cursor.start:
            continue
        alerts += alerts_for_run(instance, record, cursor, channels)
        cursor.seen[run_id] = updated
        cursor.runs_after = max(cursor.runs_after, updated)
    fresh, cursor.freshness_after = alerts_for_freshness(instance, cursor)
    alerts += fresh
    _prune(cursor)
    return alerts


def _prune(cursor: AlertCursor) -> None:
    horizon = (cursor.runs_after or 0) - 2 * OVERLAP_SECONDS
    newest = sorted(cursor.seen.items(), key=lambda item: item[1], reverse=True)[:MAX_SEEN_RUNS]
    cursor.seen = {run_id: at for run_id, at in newest if at >= horizon}
    if len(cursor.open) > MAX_OPEN:
        oldest = sorted(cursor.open.items(), key=lambda item: item[1].get("at") or 0)
        cursor.open = dict(oldest[len(cursor.open) - MAX_OPEN :])


def deliver(
    alerts: Iterable[Alert], cursor: AlertCursor, channels: AlertChannels, log: Any
) -> None:
    """Send new alerts, and retry earlier deliveries that failed; keep what fails again."""
    still_pending = []
    for item in cursor.pending:
        failed = channels.send(Alert.from_dict(item["alert"]), log, only=item["channels"])
        if failed and item["ticks"] + 1 < PENDING_TICKS:
            still_pending.append({**item, "channels": sorted(failed), "ticks": item["ticks"] + 1})
        elif failed:
            log.error(
                f"alert {item['alert']['key']!r} dropped after {PENDING_TICKS} ticks: {failed}"
            )
    for alert in alerts:
        failed = channels.send(alert, log)
        if failed:
            still_pending.append({"alert": alert.to_dict(), "channels": sorted(failed), "ticks": 0})
    cursor.pending = still_pending[-MAX_PENDING:]


def build_alert_sensor(
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    @sensor(
        name=ALERT_SENSOR,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Alerts once per failure (failed asset checks, failed runs, freshness), with a "
            "recovery note when it passes again, on the channels of DATAENG_ALERT_CHANNELS."
        ),
    )
    def alert_sensor(context: SensorEvaluationContext, alerts: AlertChannels) -> SensorResult:
        cursor = AlertCursor.decode(context.cursor)
        found = collect_alerts(context.instance, cursor, alerts)
        deliver(found, cursor, alerts, context.log)
        return SensorResult(
            cursor=cursor.encode(),
            skip_reason=None if found else "no new failure or recovery",
        )

    return alert_sensor
