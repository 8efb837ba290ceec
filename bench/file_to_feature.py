"""From a landed file to its committed feature partition, under ``dagster dev`` with automation on.

    .venv/bin/python -m bench.file_to_feature [--quick] [--out PATH] [--results PATH]
        [--work DIR] [--sensor-interval S] [--samples N] [--prepare-days N] [--timeout 600]

What a user sees: ``dagster dev`` (``dataeng_assets_tests.dagster_dev.run_dagster_dev``, loopback
only) with its own fresh landing zone, lake and DAGSTER_HOME under ``--work``
(``data/bench/file_to_feature/``), ``DATAENG_AUTOMATION=on`` and the sensors' shipped intervals
(the arrival sensors every 4 s, the automation and alert sensors every 30 s;
``--sensor-interval S`` sets the latter, as ``DATAENG_SENSOR_INTERVAL_SECONDS``). Nobody clicks. The code location is a copy taken at the start
(``<work>/src``, first on PYTHONPATH; ``--no-snapshot`` runs the tree in place): every run process
imports the package afresh, and others edit the tree meanwhile.

1. Prepare the state an operator has: the reference snapshots (airlines, airports, planes) and the
   first ``--prepare-days`` days of 2013 (7; 3 with --quick) are delivered and flow through the
   pipeline by themselves; then the platform is left to settle (no run queued or in progress, the
   automation sensor skipping).
2. One sample per day, the days after the prepared ones (7; 3 with --quick): that day's flights and
   weather files land (written beforehand by ``dataeng_assets.landing.replay.replay`` into a staging
   folder, then renamed into the landing zone: the moment of delivery is sharp, as with an upstream
   writing a temporary file and renaming it), and the instance (``DAGSTER_HOME``, read through
   ``DagsterInstance``) is polled until ``features/flight_delay`` has a materialization for that
   day. Sample = the materialization event's timestamp - the end of the delivery. The platform
   settles again before the next day.
3. Per sample, from the instance's runs, event logs and sensor ticks: every run it caused (job,
   assets, partition, who launched it) with its queue time (created -> launched), process start-up
   (launched -> RUN_START in the worker), set-up (-> first step), steps and tear-down; the sensor
   wait (delivery -> first run created); and the critical path to the feature partition, hop by
   hop (the automation sensor's wait between an upstream run ending and the next run's creation).

A sample that takes longer than ``--timeout`` (600 s) is reported as failed, never a hang; the whole
thing stops taking samples before ``--budget`` (3300 s, inside ``bench.run``'s one-hour limit) runs
out. ``dagster dev`` is always stopped (the harness's context manager). The JSON is written after
every sample.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.scheduler.instigation import InstigatorType

from bench.common import WORK, code_state, loadavg, machine, now_iso, percentile, write_json
from dataeng_assets.landing.replay import replay
from dataeng_assets.settings import PROJECT_ROOT, load_settings
from dataeng_assets.sources import registry
from dataeng_assets_tests.automation_flow import (
    ALERT_SENSOR,
    ARRIVAL_SENSORS,
    AUTOMATION_SENSOR,
    wait_for_ticks_after,
    wait_until_quiet,
)
from dataeng_assets_tests.dagster_dev import DagsterDev, DagsterDevError, run_dagster_dev

FEATURE = AssetKey(["features", "flight_delay"])
FIRST_DAY = dt.date(2013, 1, 1)
DAILY_SOURCES = ("flights", "weather")
POLL_S = 0.5
RUN_DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
SENSORS = [*ARRIVAL_SENSORS, AUTOMATION_SENSOR]


class Interrupted(Exception):
    """SIGTERM: leave through the context managers, so that ``dagster dev`` is stopped."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- the instance ---------------------------------------------------------------------------------


def feature_materialized_at(instance: DagsterInstance, day: dt.date) -> float | None:
    """Timestamp of the newest materialization of the feature partition ``day``, or None."""
    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=FEATURE, asset_partitions=[day.isoformat()]), limit=1
    )
    return result.records[0].timestamp if result.records else None


def wait_for_features(
    dev: DagsterDev, instance: DagsterInstance, days: list[dt.date], deadline: float
) -> dict[dt.date, float]:
    """Poll until every day's feature partition is materialized or the deadline (monotonic) passes."""
    found: dict[dt.date, float] = {}
    while True:
        for day in days:
            if day not in found:
                at = feature_materialized_at(instance, day)
                if at is not None:
                    found[day] = at
        if len(found) == len(days) or time.monotonic() > deadline:
            return found
        dev._check_alive()
        time.sleep(POLL_S)


def run_records(instance: DagsterInstance, since: float) -> list[Any]:
    """Runs created at or after ``since`` (epoch s), oldest first."""
    after = dt.datetime.fromtimestamp(since - 0.001, dt.UTC)
    records = instance.get_run_records(RunsFilter(created_after=after))
    return sorted(records, key=lambda rec: rec.create_timestamp.timestamp())


def describe_run(instance: DagsterInstance, record: Any, origin: float) -> dict[str, Any]:
    """One run: who launched it, what it did, and where its time went (seconds; ``*_at`` relative
    to ``origin``, the delivery)."""
    run = record.dagster_run
    tags = run.tags
    first: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = {}
    materialized: dict[str, float] = {}
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        first.setdefault(kind.value, entry.timestamp)
        if kind == DagsterEventType.STEP_START:
            steps.setdefault(event.step_key, {})["start"] = entry.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            steps.setdefault(event.step_key, {})["end"] = entry.timestamp
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            key = event.asset_key.to_user_string() if event.asset_key else "?"
            materialized.setdefault(key, entry.timestamp)

    def at(kind: DagsterEventType) -> float | None:
        return first.get(kind.value)

    created = record.create_timestamp.timestamp()
    launched = at(DagsterEventType.RUN_STARTING) or at(DagsterEventType.RUN_DEQUEUED)
    started = at(DagsterEventType.RUN_START)
    ended = at(DagsterEventType.RUN_SUCCESS) or at(DagsterEventType.RUN_FAILURE) or record.end_time
    step_starts = [s["start"] for s in steps.values() if "start" in s]
    step_ends = [s["end"] for s in steps.values() if "end" in s]
    first_step = min(step_starts, default=None)
    last_step = max(step_ends, default=None)

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    if run.asset_selection:
        assets = sorted(k.to_user_string() for k in run.asset_selection)
    else:
        assets = sorted(materialized)
    partition = tags.get("dagster/partition")
    if partition is None and "dagster/asset_partition_range_start" in tags:
        partition = (
            f"{tags['dagster/asset_partition_range_start']}..."
            f"{tags['dagster/asset_partition_range_end']}"
        )
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "assets": assets,
        "partition": partition,
        "launched_by": tags.get("dagster/sensor_name")
        or tags.get("dagster/schedule_name")
        or ("backfill" if tags.get("dagster/backfill") else "?"),
        "status": run.status.value,
        "created_at": r(created - origin),
        "launched_at": r(None if launched is None else launched - origin),
        "started_at": r(None if started is None else started - origin),
        "ended_at": r(None if ended is None else ended - origin),
        "queue_s": r(span(created, launched)),
        "startup_s": r(span(launched, started)),
        "setup_s": r(span(started, first_step)),
        "steps_s": r(span(first_step, last_step)),
        "teardown_s": r(span(last_step, ended)),
        "total_s": r(span(created, ended)),
        "step_s": {
            k: r(span(v.get("start"), v.get("end")))
            for k, v in sorted(steps.items(), key=lambda kv: kv[1].get("start", 0))
        },
        "materialized_at": {k: r(v - origin) for k, v in materialized.items()},
        # raw seconds, for the critical path
        "_t": {
            "created": created,
            "launched": launched,
            "started": started,
            "first_step": first_step,
            "last_step": last_step,
            "ended": ended,
        },
    }


def critical_path(runs: list[dict[str, Any]], origin: float, committed: float) -> dict[str, Any]:
    """Walk back from the run that materialized the feature partition: each run was created after
    the latest end of an earlier run of the sample (its upstream, as far as the automation sensor
    saw) or, for the first, after the delivery. Returns the hops, oldest first, and totals per kind
    of wait; they add up to the sample."""
    feature_runs = [x for x in runs if FEATURE.to_user_string() in x["materialized_at"]]
    if not feature_runs:
        return {}
    current = feature_runs[0]
    chain = []
    while current is not None:
        created = current["_t"]["created"]
        before = [
            x
            for x in runs
            if x is not current and x["_t"]["ended"] is not None and x["_t"]["ended"] <= created
        ]
        upstream = max(before, key=lambda x: x["_t"]["ended"], default=None)
        chain.append((current, upstream))
        current = upstream
    chain.reverse()
    segments = []
    totals = {
        "sensor_wait_s": 0.0,
        "automation_hops_s": 0.0,
        "queue_s": 0.0,
        "startup_s": 0.0,
        "setup_s": 0.0,
        "work_s": 0.0,
        "teardown_s": 0.0,
    }
    for i, (run, upstream) in enumerate(chain):
        t = run["_t"]
        last = i == len(chain) - 1
        end = committed if last else t["ended"]
        wait_from = origin if upstream is None else upstream["_t"]["ended"]
        wait_kind = "sensor_wait_s" if upstream is None else "automation_hops_s"
        created = t["created"]
        launched = t["launched"] or created
        started = t["started"] or launched
        first_step = t["first_step"] or started
        pieces = {
            wait_kind: created - wait_from,
            "queue_s": launched - created,
            "startup_s": started - launched,
            "setup_s": first_step - started,
        }
        if last:
            pieces["work_s"] = end - first_step
        else:
            last_step = t["last_step"] or end
            pieces["work_s"] = last_step - first_step
            pieces["teardown_s"] = end - last_step
        for k, v in pieces.items():
            totals[k] += v
        segments.append(
            {
                "run_id": run["run_id"],
                "job": run["job"],
                "assets": run["assets"],
                **{k: r(v) for k, v in pieces.items()},
            }
        )
    return {
        "runs_on_path": len(chain),
        "segments": segments,
        "totals": {k: r(v) for k, v in totals.items()},
        "sum_s": r(sum(totals.values())),
    }


def sensor_ticks(instance: DagsterInstance, start: float, end: float) -> dict[str, list[dict]]:
    """The ticks of the arrival and automation sensors between ``start`` and ``end`` (epoch s):
    when they began (relative to ``start``), how long they took, what they launched."""
    states = {
        s.instigator_name: s
        for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    }
    out: dict[str, list[dict]] = {}
    for name in SENSORS:
        state = states.get(name)
        if state is None:
            continue
        ticks = instance.get_ticks(
            state.instigator_origin_id, state.selector_id, after=start - 0.001, before=end
        )
        out[name] = [
            {
                "at": r(t.timestamp - start),
                "took_s": r(None if t.end_timestamp is None else t.end_timestamp - t.timestamp),
                "status": t.status.value,
                "runs": len(t.run_ids),
            }
            for t in sorted(ticks, key=lambda t: t.timestamp)
        ]
    return out


def summarise_ticks(ticks: dict[str, list[dict]]) -> dict[str, Any]:
    out = {}
    for name, items in ticks.items():
        took = [t["took_s"] for t in items if t["took_s"] is not None]
        out[name] = {
            "ticks": len(items),
            "median_tick_s": r(statistics.median(took)) if took else None,
            "max_tick_s": r(max(took)) if took else None,
            "launching_ticks_at": [t["at"] for t in items if t["runs"]],
        }
    return out


# --- deliveries -----------------------------------------------------------------------------------


def stage_days(staging: Path, days: list[dt.date]) -> None:
    """Write the sample days' flights and weather files once, outside the landing zone."""
    sources = [registry()[name] for name in DAILY_SOURCES]
    replay(pafs.LocalFileSystem(), str(staging), days[0], days[-1], sources=sources)


def deliver_staged(staging: Path, landing: Path, day: dt.date) -> list[str]:
    """Rename the day's staged files into the landing zone (each rename is atomic)."""
    moved = []
    for name in DAILY_SOURCES:
        for path in sorted((staging / name).glob(f"{day.isoformat()}*")):
            dest = landing / name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            moved.append(f"{name}/{path.name}")
    if len(moved) < len(DAILY_SOURCES):
        raise RuntimeError(f"{day}: staged files missing, found {moved}")
    return moved


def snapshot(src: Path, dest: Path) -> Path:
    """A copy of the code location, so that every run of the measurement imports one version of
    the code (others edit the tree meanwhile; each Dagster run is a fresh process that imports
    the package again)."""
    shutil.copytree(
        src / "dataeng_assets",
        dest / "dataeng_assets",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("dagster.yaml", "workspace.yaml", "pyproject.toml"):
        if (src / name).exists():
            shutil.copy(src / name, dest / name)
    return dest


# --- the benchmark --------------------------------------------------------------------------------


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def deadline(self, seconds: float) -> float:
        """A monotonic deadline ``seconds`` away, never past the budget."""
        return min(time.monotonic() + seconds, self.end)


def settle(dev: DagsterDev, budget: Budget, timeout: float) -> float:
    """Wait until nothing runs and the automation sensor skips; returns how long it took."""
    t0 = time.monotonic()
    wait_until_quiet(dev, timeout=max(30.0, min(timeout, budget.left())))
    return time.monotonic() - t0


def prepare(
    dev: DagsterDev, instance: DagsterInstance, days: list[dt.date], budget: Budget, timeout: float
) -> dict[str, Any]:
    """Reference snapshots and the first days delivered at once, as an operator starts; wait until
    every day's feature partition is committed and the platform is idle."""
    t0 = time.time()
    replay(pafs.LocalFileSystem(), str(dev.landing), days[0], days[-1])
    delivered = time.time()
    found = wait_for_features(dev, instance, days, budget.deadline(timeout))
    missing = [d.isoformat() for d in days if d not in found]
    settle_s = None if missing else settle(dev, budget, timeout)
    records = run_records(instance, t0)
    failed = [
        (rec.dagster_run.job_name, rec.dagster_run.status.value)
        for rec in records
        if rec.dagster_run.status != DagsterRunStatus.SUCCESS
    ]
    return {
        "days": [days[0].isoformat(), days[-1].isoformat()],
        "delivery_s": r(delivered - t0),
        "all_features_committed_s": r(max(found.values()) - delivered) if found else None,
        "settle_s": r(settle_s),
        "runs": len(records),
        "runs_by_job": _count(rec.dagster_run.job_name for rec in records),
        "runs_not_successful": failed,
        "missing_feature_partitions": missing,
    }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def sample(
    dev: DagsterDev,
    instance: DagsterInstance,
    staging: Path,
    day: dt.date,
    budget: Budget,
    timeout: float,
    settle_timeout: float,
) -> dict[str, Any]:
    load_before = loadavg()
    t0 = time.time()
    files = deliver_staged(staging, dev.landing, day)
    delivered = time.time()
    found = wait_for_features(dev, instance, [day], budget.deadline(timeout))
    committed = found.get(day)
    seen = time.time()
    result: dict[str, Any] = {
        "day": day.isoformat(),
        "ok": committed is not None,
        "seconds": r(None if committed is None else committed - delivered),
        "files": files,
        "delivery_s": r(delivered - t0, 4),
        "delivered_at": dt.datetime.fromtimestamp(delivered, dt.UTC).isoformat(),
        "poll_lag_s": r(None if committed is None else seen - committed),
        "loadavg_before": load_before,
        "loadavg_at_commit": loadavg(),
    }
    if committed is None:
        result["error"] = f"no features/flight_delay {day} after {timeout:.0f} s (or budget)"
    ticks = sensor_ticks(instance, delivered, committed or time.time())
    try:
        result["settle_s"] = r(settle(dev, budget, settle_timeout))
    except DagsterDevError as exc:
        result["settle_error"] = str(exc)[:2000]
    runs = [describe_run(instance, rec, delivered) for rec in run_records(instance, t0)]
    path = critical_path(runs, delivered, committed) if committed else {}
    result.update(
        {
            "runs": len(runs),
            "runs_by_job": _count(x["job"] for x in runs),
            "runs_before_commit": sum(
                1 for x in runs if committed and x["_t"]["created"] <= committed
            ),
            "sensor_wait_s": r(
                min((x["_t"]["created"] for x in runs), default=delivered) - delivered
            )
            if runs
            else None,
            "critical_path": path,
            "sensor_ticks": summarise_ticks(ticks),
            "ticks_until_commit": ticks,
            "run_detail": [{k: v for k, v in x.items() if k != "_t"} for x in runs],
        }
    )
    return result


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [s for s in samples if s["ok"]]
    values = [s["seconds"] for s in ok]

    def med(key: str) -> float | None:
        found = [s["critical_path"]["totals"][key] for s in ok if s.get("critical_path")]
        return r(statistics.median(found)) if found else None

    keys = ("sensor_wait_s", "automation_hops_s", "queue_s", "startup_s", "setup_s", "work_s",
            "teardown_s")  # fmt: skip
    runs = [s["runs"] for s in samples if "runs" in s]
    return {
        "p50_s": r(statistics.median(values)) if values else None,
        "p95_s": r(percentile(values, 95)) if values else None,
        "min_s": r(min(values)) if values else None,
        "max_s": r(max(values)) if values else None,
        "samples_s": [s["seconds"] for s in samples],
        "samples_ok": len(ok),
        "samples_failed": len(samples) - len(ok),
        "runs_per_sample": runs,
        "critical_path_median_s": {k: med(k) for k in keys},
        "runs_on_critical_path": [
            s["critical_path"].get("runs_on_path") for s in ok if s.get("critical_path")
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON result")
    parser.add_argument("--results", type=Path, default=None, help="a copy of the JSON result")
    parser.add_argument("--quick", action="store_true", help="3 prepared days, 3 samples")
    parser.add_argument("--work", type=Path, default=WORK / "file_to_feature")
    parser.add_argument(
        "--sensor-interval",
        type=int,
        default=None,
        help="DATAENG_SENSOR_INTERVAL_SECONDS (default: the shipped 30 s)",
    )
    parser.add_argument("--samples", type=int, default=None, help="default 7 (3 with --quick)")
    parser.add_argument("--prepare-days", type=int, default=None, help="default 7 (3 --quick)")
    parser.add_argument("--timeout", type=float, default=600, help="per sample, seconds")
    parser.add_argument("--prepare-timeout", type=float, default=1800, help="seconds")
    parser.add_argument("--settle-timeout", type=float, default=600, help="seconds")
    parser.add_argument(
        "--no-snapshot", action="store_true", help="run the tree in place, not a copy of it"
    )
    parser.add_argument("--budget", type=float, default=3300, help="whole run, seconds")
    args = parser.parse_args(argv)
    n_samples = args.samples or (3 if args.quick else 7)
    n_prepared = args.prepare_days or (3 if args.quick else 7)
    prepared = [FIRST_DAY + dt.timedelta(days=i) for i in range(n_prepared)]
    days = [prepared[-1] + dt.timedelta(days=i + 1) for i in range(n_samples)]
    budget = Budget(args.budget)
    signal.signal(signal.SIGTERM, _on_sigterm)

    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    landing, lake, staging = work / "landing", work / "lake", work / "staging"
    for folder in (landing, lake, staging):
        folder.mkdir(parents=True)
    stage_days(staging, days)
    src = PROJECT_ROOT if args.no_snapshot else snapshot(PROJECT_ROOT, work / "src")
    python_path = [str(src), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    extra_env = {
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
        "DATAENG_AUTOMATION": "on",
        "DATAENG_ALERT_CHANNELS": "file,log",
        "DATAENG_ALERT_FILE": str(work / "alerts.jsonl"),
    }
    if args.sensor_interval is not None:
        extra_env["DATAENG_SENSOR_INTERVAL_SECONDS"] = str(args.sensor_interval)
    shipped = load_settings({})
    result: dict[str, Any] = {
        "benchmark": "file_to_feature",
        "at": now_iso(),
        "mode": "quick" if args.quick else "full",
        "command": "python -m bench.file_to_feature " + " ".join(argv or sys.argv[1:]),
        "sensor_interval_s": args.sensor_interval or shipped.sensor_interval_seconds,
        "arrival_interval_s": shipped.arrival_interval_seconds,
        "code": code_state(src),
        "work": str(work),
        "env": extra_env,
        "machine": machine(),
        "notes": [
            "sample = features/flight_delay materialization event timestamp - end of the delivery "
            "(the day's flights and weather files renamed into the landing zone)",
            "dagster dev with its own SQLite DAGSTER_HOME (the repository's dagster.yaml), "
            "QueuedRunCoordinator (4 runs at once), one op per table pool",
            "critical path: from the run that committed the feature partition back through the "
            "run whose end came last before each run's creation; sensor_wait = delivery -> first "
            "run created, automation_hops = upstream run ended -> next run created, queue = "
            "created -> RUN_STARTING, startup = RUN_STARTING -> RUN_START (worker process, code "
            "location import), setup = RUN_START -> first step, work = steps (to the "
            "materialization for the last run)",
        ],
        "prepared_days": [prepared[0].isoformat(), prepared[-1].isoformat()],
        "sample_days": [d.isoformat() for d in days],
        "per_sample": [],
    }

    def save() -> None:
        result.update(summarise(result["per_sample"]))
        result["finished_at"] = now_iso()
        write_json(args.out, result)
        if args.results:
            write_json(args.results, result)

    rc = 0
    started = time.monotonic()
    try:
        with run_dagster_dev(
            src,
            landing=landing,
            lake=lake,
            work_dir=work,
            extra_env=extra_env,
            startup_timeout=300,
        ) as dev:
            result["dagster_dev_ready_s"] = r(time.monotonic() - started)
            result["dagster_dev_log"] = str(dev.log_path)
            print(
                f"dagster dev at {dev.url}, ready in {result['dagster_dev_ready_s']} s", flush=True
            )
            instance = DagsterInstance.from_config(str(dev.home))
            try:
                # The alert sensor takes its starting point, every arrival sensor has looked once.
                wait_for_ticks_after(dev, [*ARRIVAL_SENSORS, ALERT_SENSOR], after=0)
                print(f"preparing {prepared[0]}..{prepared[-1]}", flush=True)
                result["prepare"] = prepare(dev, instance, prepared, budget, args.prepare_timeout)
                print(f"prepared: {result['prepare']}", flush=True)
                if result["prepare"]["missing_feature_partitions"]:
                    raise RuntimeError(f"preparation incomplete: {result['prepare']}")
                for day in days:
                    if budget.left() < 120:
                        result["notes"].append(f"budget exhausted before {day}: stopped")
                        break
                    one = sample(
                        dev, instance, staging, day, budget, args.timeout, args.settle_timeout
                    )
                    result["per_sample"].append(one)
                    path = one.get("critical_path", {}).get("totals")
                    print(
                        f"{day}: {one['seconds']} s, {one['runs']} runs "
                        f"({one['runs_by_job']}), path {path}, settle {one.get('settle_s')}",
                        flush=True,
                    )
                    save()
                    if "settle_error" in one:
                        result["notes"].append(f"{day}: did not settle, stopped")
                        break
                exposed = [x for x in dev.listening_sockets() if not x.is_loopback_v4]
                result["listeners"] = sorted(
                    {f"{x.address}:{x.port}" for x in dev.listening_sockets()}
                )
                if exposed:
                    result["notes"].append(f"LISTENING BEYOND LOOPBACK: {exposed}")
                    rc = 1
            finally:
                instance.dispose()
    except (Exception, Interrupted) as exc:  # the JSON says what happened
        result["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        result["traceback"] = traceback.format_exc()[-4000:]
        print(result["traceback"], file=sys.stderr, flush=True)
        rc = 1
    result["wall_s"] = r(time.monotonic() - started)
    save()
    print(
        f"p50 {result['p50_s']} s, p95 {result['p95_s']} s, samples {result['samples_s']} "
        f"-> {args.out}",
        flush=True,
    )
    return rc if result["samples_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
