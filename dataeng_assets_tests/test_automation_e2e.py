"""End to end: ``dagster dev`` runs the platform by itself.

Files dropped into the landing zone become raw, cleaned and feature partitions with no other action;
the same files dropped again run nothing; a corrupted file reaches a person as exactly one webhook
alert naming the failed check. The time from file to feature partition is printed (not asserted;
``bench/sensor_tick.py --e2e`` keeps it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from dataeng_assets.settings import PROJECT_ROOT
from dataeng_assets_tests.automation_flow import (
    ALERT_SENSOR,
    ARRIVAL_SENSORS,
    AUTOMATION_SENSOR,
    DOCUMENTS,
    deliver_day,
    partition_rows,
    runs,
    sensor_status,
    wait_for_partition,
    wait_for_ticks_after,
    wait_until_quiet,
)
from dataeng_assets_tests.dagster_dev import LOOPBACK, DagsterDev, run_dagster_dev
from dataeng_assets_tests.receivers import HttpReceiver, http_receiver

DAY = dt.date(2013, 1, 1)  # no history needed before it: its features can be built alone
BAD_DAY = dt.date(2013, 1, 2)
# The check that names a corrupted (empty) delivery: raw's blocking files_readable (issue 3).
FAILED_CHECK = ("raw/flights", "files_readable")


def test_the_graphql_documents_match_the_installed_schema() -> None:
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    schema = create_schema().graphql_schema
    for name, document in DOCUMENTS.items():
        assert not validate(schema, parse(document)), name


@pytest.fixture(scope="module")
def hook() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def platform(hook: HttpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    work = tmp_path_factory.mktemp("automation_e2e")
    landing = work / "landing"
    landing.mkdir()
    env = {
        "DATAENG_SENSOR_INTERVAL_SECONDS": "5",
        "DATAENG_ALERT_CHANNELS": "file,log,webhook",
        "DATAENG_ALERT_WEBHOOK_URL": f"{hook.url}/alerts",
        "DATAENG_ALERT_FILE": str(work / "alerts.jsonl"),
    }
    with run_dagster_dev(
        PROJECT_ROOT,
        landing=landing,
        lake=work / "lake",
        work_dir=work,
        extra_env=env,
        startup_timeout=240,
    ) as dev:
        yield dev


def _alerts(hook: HttpReceiver, since: int) -> list[dict]:
    return [r.json() for r in hook.snapshot()[since:]]


@pytest.mark.e2e
def test_the_platform_runs_by_itself(platform: DagsterDev, hook: HttpReceiver) -> None:
    dev = platform
    # Every sensor is on without anyone switching it on, and has looked once (the alert sensor
    # has taken its starting point: nothing before it is alerted).
    for name in (*ARRIVAL_SENSORS, AUTOMATION_SENSOR, ALERT_SENSOR):
        assert sensor_status(dev, name) == "RUNNING", name
    wait_for_ticks_after(dev, [*ARRIVAL_SENSORS, ALERT_SENSOR], after=0)

    # 1. A day's files land: raw, cleaned and features for that day, with no other action.
    dropped = dt.datetime.now(dt.UTC).timestamp()
    deliver_day(dev.landing, DAY)
    committed = wait_for_partition(dev, "features", "flight_delay", DAY, timeout=900)
    print(f"\nfile -> feature partition: {committed - dropped:.1f} s")
    for layer, table in [("raw", "flights"), ("cleaned", "flights"), ("cleaned", "weather")]:
        assert partition_rows(dev.lake, layer, table, DAY) > 0, f"{layer}/{table}"
    settled = wait_until_quiet(dev)
    assert all(r["status"] == "SUCCESS" for r in settled), [
        (r["runId"], r["status"], r["assetSelection"]) for r in settled
    ]
    ingested = {
        name
        for r in settled
        if r["tags"].get("dataeng/source")
        for name in r["tags"]["dataeng/source"].split(",")
    }
    assert ingested == {"flights", "weather", "airlines", "airports", "planes"}

    # 2. The same files again: the sensors notice and run nothing.
    before = {r["runId"] for r in runs(dev)}
    alerts_before = len(hook.snapshot())
    redelivered = dt.datetime.now(dt.UTC).timestamp()
    deliver_day(dev.landing, DAY)
    ticks = wait_for_ticks_after(dev, ARRIVAL_SENSORS, after=redelivered)
    assert "same content" in (ticks["daily_arrival"][-1]["skipReason"] or "")
    wait_for_ticks_after(dev, [AUTOMATION_SENSOR], after=redelivered, count=2)
    wait_until_quiet(dev)
    assert {r["runId"] for r in runs(dev)} == before, "a re-delivery of the same bytes ran"

    # 3. A corrupted file: exactly one alert, naming the failed check.
    (dev.landing / "flights" / f"{BAD_DAY}.csv").write_bytes(b"")
    hook.wait_for(alerts_before + 1, timeout=600)
    wait_until_quiet(dev)
    wait_for_ticks_after(dev, [ALERT_SENSOR], after=dt.datetime.now(dt.UTC).timestamp(), count=2)
    new = _alerts(hook, alerts_before)
    assert len(new) == 1, json.dumps(new, indent=1)
    (alert,) = new
    failed = [(c["asset"], c["check"]) for c in alert["checks"]]
    assert FAILED_CHECK in failed, alert
    assert alert["partition"] == BAD_DAY.isoformat()
    assert alert["run_url"].endswith(f"/runs/{alert['run_id']}")
    bad_run = next(r for r in runs(dev) if r["runId"] == alert["run_id"])
    assert bad_run["status"] == "FAILURE" and bad_run["tags"]["dataeng/source"] == "flights"
    # Nothing flowed downstream of the failed blocking check.
    assert partition_rows(dev.lake, "cleaned", "flights", BAD_DAY) == 0

    # Everything the platform opened still listens on loopback only.
    exposed = [x for x in dev.listening_sockets() if x.address != LOOPBACK]
    assert not exposed, exposed
