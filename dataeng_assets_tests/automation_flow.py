"""Watching a running ``dagster dev`` work by itself: its sensors' ticks, its runs, its tables.

Used by the end-to-end automation test and by ``bench/sensor_tick.py --e2e``. Everything waits for
an event (a tick after a moment, a run finishing, a partition committed) with a generous deadline;
nothing asserts on time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from dataeng_assets.automation import arrival_sensor_names
from dataeng_assets.landing.replay import replay
from dataeng_assets.sources import registry
from dataeng_assets_tests.dagster_dev import DagsterDev, DagsterDevError

LOCATION = "dataeng_assets"
REPOSITORY = "__repository__"
ARRIVAL_SENSORS = arrival_sensor_names(registry().values())
AUTOMATION_SENSOR = "downstream_automation"
ALERT_SENSOR = "alerts"
TICK_DONE = {"SUCCESS", "SKIPPED", "FAILURE"}
RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}

SENSOR_TICKS_QUERY = """
query SensorTicks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      name
      sensorState {
        status
        ticks(limit: 20) { tickId status timestamp endTimestamp runIds skipReason error { message } }
      }
    }
    ... on Error { message }
  }
}
"""

RUNS_QUERY = """
query Runs($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs {
      results { runId status startTime endTime tags { key value } assetSelection { path } }
    }
    ... on Error { message }
  }
}
"""

DOCUMENTS = {"SENSOR_TICKS_QUERY": SENSOR_TICKS_QUERY, "RUNS_QUERY": RUNS_QUERY}


def sensor_ticks(dev: DagsterDev, name: str) -> list[dict[str, Any]]:
    """The sensor's newest ticks, newest first."""
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "sensorName": name,
    }
    found = dev.graphql(SENSOR_TICKS_QUERY, {"selector": selector})["sensorOrError"]
    if found["__typename"] != "Sensor":
        raise DagsterDevError(f"sensor {name}: {found}")
    return found["sensorState"]["ticks"]


def sensor_status(dev: DagsterDev, name: str) -> str:
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "sensorName": name,
    }
    return dev.graphql(SENSOR_TICKS_QUERY, {"selector": selector})["sensorOrError"]["sensorState"][
        "status"
    ]


def runs(dev: DagsterDev) -> list[dict[str, Any]]:
    result = dev.graphql(RUNS_QUERY, {"limit": 500})["runsOrError"]
    if result["__typename"] != "Runs":
        raise DagsterDevError(f"runs: {result}")
    for run in result["results"]:
        run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
    return result["results"]


def wait_for_ticks_after(
    dev: DagsterDev, names: Iterable[str], after: float, count: int = 1, timeout: float = 300
) -> dict[str, list[dict[str, Any]]]:
    """Wait until each sensor finished ``count`` ticks that started after ``after`` (epoch s)."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    found: dict[str, list[dict[str, Any]]] = {}
    while True:
        dev._check_alive()
        for name in list(pending):
            done = [
                t
                for t in sensor_ticks(dev, name)
                if t["timestamp"] > after and t["status"] in TICK_DONE
            ]
            if len(done) >= count:
                found[name] = done
                pending.remove(name)
        if not pending:
            return found
        if time.monotonic() > deadline:
            raise DagsterDevError(
                f"no {count} tick(s) after {after} for {pending}\n{dev.log_tail()}"
            )
        time.sleep(1)


def wait_until_quiet(dev: DagsterDev, timeout: float = 600) -> list[dict[str, Any]]:
    """Wait until no run is active and, after the last one ended, the automation sensor skipped
    twice (nothing more to do) and the alert sensor looked once (it has seen every run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dev._check_alive()
        every = runs(dev)
        if all(r["status"] in RUN_DONE for r in every):
            last_end = max((r["endTime"] or 0 for r in every), default=0.0)
            automation = [
                t for t in sensor_ticks(dev, AUTOMATION_SENSOR) if t["timestamp"] > last_end
            ]
            alerted = [t for t in sensor_ticks(dev, ALERT_SENSOR) if t["timestamp"] > last_end]
            skipped = [t for t in automation if t["status"] == "SKIPPED"]
            if (
                len(skipped) >= 2
                and len(skipped) == len(automation)
                and any(t["status"] in TICK_DONE for t in alerted)
                and all(r["status"] in RUN_DONE for r in runs(dev))
            ):
                return every
        time.sleep(1)
    raise DagsterDevError(f"dagster dev did not settle\n{dev.log_tail()}")


def partition_rows(lake: Path, layer: str, table: str, day: dt.date) -> int:
    """Rows of ``day`` committed in the Delta table (0 when the table does not exist yet)."""
    try:
        frame = DeltaTable(str(lake / layer / table)).to_pyarrow_table(
            filters=[("date", "=", day)], columns=["date"]
        )
    except TableNotFoundError:
        return 0
    return frame.num_rows


def wait_for_partition(
    dev: DagsterDev, layer: str, table: str, day: dt.date, timeout: float = 600
) -> float:
    """Wait until ``day`` is committed in ``layer/table``; returns when (epoch s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dev._check_alive()
        if partition_rows(dev.lake, layer, table, day):
            return time.time()
        time.sleep(0.5)
    states = {n: sensor_ticks(dev, n)[:3] for n in (*ARRIVAL_SENSORS, AUTOMATION_SENSOR)}
    raise DagsterDevError(
        f"{layer}/{table} {day} not committed after {timeout:.0f}s\nruns: {runs(dev)}\n"
        f"ticks: {states}\n{dev.log_tail()}"
    )


def deliver_day(landing: Path, day: dt.date) -> None:
    """What upstream delivers for a day: the day's files and every snapshot."""
    replay(pafs.LocalFileSystem(), str(landing), day, day)
