"""Declarative Automation (historical partitions too, blocked by failed blocking checks), the
automation being on by default, and one concurrency pool per Delta table."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from dagster import (
    AssetKey,
    AutomationCondition,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    evaluate_automation_conditions,
    materialize,
)
from dagster._core.definitions.asset_checks.asset_checks_definition import AssetChecksDefinition

from dataeng_assets.automation import AUTOMATION_SENSOR, DOWNSTREAM_CONDITION, automate_assets
from dataeng_assets.definitions import ALL_ASSETS, defs
from dataeng_assets.landing.replay import replay
from dataeng_assets.resources import build_resources
from dataeng_assets.settings import PROJECT_ROOT
from dataeng_assets.storage.pools import table_pool
from dataeng_assets_tests.conftest import local_settings, run_window

RAW_FLIGHTS = AssetKey(["raw", "flights"])
CLEANED_FLIGHTS = AssetKey(["cleaned", "flights"])
FEATURES = AssetKey(["features", "flight_delay"])


def test_everything_downstream_of_raw_is_automated_and_on_by_default() -> None:
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.path[0] == "raw":
            assert node.automation_condition is None, key  # fed by sensors and schedules
        else:
            assert node.parent_keys, key
            assert node.automation_condition == DOWNSTREAM_CONDITION, key
    for sensor in repository.sensor_defs:
        assert sensor.default_status == DefaultSensorStatus.RUNNING, sensor.name
    assert repository.has_sensor_def(AUTOMATION_SENSOR)
    names = {s.name for s in repository.sensor_defs}
    assert {"daily_arrival", "airlines_arrival", "airports_arrival", "planes_arrival"} <= names
    assert "alerts" in names


def _eager_everywhere(assets: list) -> list:
    """The contrast: plain eager(), which only looks at the latest time window."""
    return [
        a.map_asset_specs(
            lambda s: (
                s.replace_attributes(automation_condition=AutomationCondition.eager())
                if s.deps
                else s
            )
        )
        if not isinstance(a, AssetChecksDefinition)
        else a
        for a in assets
    ]


def test_a_late_correction_flows_through_its_historical_partition_unless_blocked(
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    replay(pafs.LocalFileSystem(), str(landing), dt.date(2013, 3, 14), dt.date(2013, 3, 15))
    resources = build_resources(local_settings(landing, tmp_path / "lake"))
    ours = Definitions(assets=automate_assets(ALL_ASSETS), resources=resources)
    eager = Definitions(assets=_eager_everywhere(ALL_ASSETS), resources=resources)
    with DagsterInstance.ephemeral() as instance:
        assert run_window(resources, dt.date(2013, 3, 14), dt.date(2013, 3, 15), instance=instance)
        first = evaluate_automation_conditions(defs=ours, instance=instance)
        first_eager = evaluate_automation_conditions(defs=eager, instance=instance)

        # March 15 is corrected upstream and ingested again, as the arrival sensor does it: a
        # run of that one partition.
        day = landing / "flights" / "2013-03-15.csv"
        day.write_bytes(day.read_bytes().rsplit(b"\n", 2)[0] + b"\n")
        assert materialize(
            ALL_ASSETS,
            selection="key:raw/flights",
            resources=resources,
            instance=instance,
            partition_key="2013-03-15",
        ).success

        second = evaluate_automation_conditions(defs=ours, instance=instance, cursor=first.cursor)
        assert second.get_requested_partitions(CLEANED_FLIGHTS) == {"2013-03-15"}
        # Features wait: a day's rates need the 7 days before it, and 03-08..03-13 were never
        # delivered (any_deps_missing). The end-to-end test follows a day through to features.
        assert second.get_requested_partitions(FEATURES) == set()
        # Plain eager() looks at 2013-12-31 only: the March correction would never flow.
        second_eager = evaluate_automation_conditions(
            defs=eager, instance=instance, cursor=first_eager.cursor
        )
        assert second_eager.get_requested_partitions(CLEANED_FLIGHTS) == set()

        # March 14 is delivered broken: raw is written but its blocking check fails.
        (landing / "flights" / "2013-03-14.csv").write_bytes(b"")
        failed = materialize(
            ALL_ASSETS,
            selection="key:raw/flights",
            resources=resources,
            instance=instance,
            partition_key="2013-03-14",
            raise_on_error=False,
        )
        assert not failed.success
        checks = [
            e.asset_check_evaluation_data
            for e in failed.all_events
            if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        ]
        assert any(c.check_name == "files_readable" and not c.passed for c in checks)
        third = evaluate_automation_conditions(defs=ours, instance=instance, cursor=second.cursor)
        # Nothing flows from a raw partition whose blocking check failed.
        assert "2013-03-14" not in third.get_requested_partitions(CLEANED_FLIGHTS)


def test_after_a_multi_day_run_with_one_bad_day_the_good_days_flow_on(tmp_path: Path) -> None:
    """Checks are recorded per day: a day that passed is not held back by a bad day of its run."""
    start, end = dt.date(2013, 3, 14), dt.date(2013, 3, 15)
    landing = tmp_path / "landing"
    replay(pafs.LocalFileSystem(), str(landing), start, end)
    resources = build_resources(local_settings(landing, tmp_path / "lake"))
    ours = Definitions(assets=automate_assets(ALL_ASSETS), resources=resources)
    with DagsterInstance.ephemeral() as instance:
        assert run_window(resources, start, end, instance=instance)
        first = evaluate_automation_conditions(defs=ours, instance=instance)

        # Both days are delivered again in one two-day run: March 15 corrected, March 14 broken.
        day = landing / "flights" / "2013-03-15.csv"
        day.write_bytes(day.read_bytes().rsplit(b"\n", 2)[0] + b"\n")
        (landing / "flights" / "2013-03-14.csv").write_bytes(b"")
        failed = run_window(
            resources, start, end, "key:raw/flights", instance=instance, raise_on_error=False
        )
        assert not failed.success  # March 14's blocking files_readable check failed

        second = evaluate_automation_conditions(defs=ours, instance=instance, cursor=first.cursor)
        assert second.get_requested_partitions(CLEANED_FLIGHTS) == {"2013-03-15"}


def test_each_table_is_written_by_an_op_in_its_own_pool() -> None:
    repository = defs.get_repository_def()
    pools = {}
    for assets_def in repository.assets_defs_by_key.values():
        if isinstance(assets_def, AssetChecksDefinition) or not assets_def.is_executable:
            continue
        for key in assets_def.keys:
            pools[key] = assets_def.op.pool
            assert assets_def.op.pool == table_pool(min(assets_def.keys, key=lambda k: k.path))
    assert pools[RAW_FLIGHTS] == "lake/raw/flights"
    assert pools[CLEANED_FLIGHTS] == pools[AssetKey(["quarantine", "flights"])]
    # One op per pool: a pool is exactly "the runs that write this table".
    ops = {
        a.op.name: a.op.pool
        for a in automate_assets(ALL_ASSETS)
        if not isinstance(a, AssetChecksDefinition)
    }
    assert len(set(ops.values())) == len(ops)


_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from dagster import DagsterInstance, asset, materialize

    POOL = "lake/test/table"

    @asset(key=["test", "table"], pool=POOL)
    def table() -> int:
        if sys.argv[1] == "hold":
            # Hold the table until the other run's step waits for it (an event, not a time).
            storage = DagsterInstance.get().event_log_storage
            deadline = time.monotonic() + 120
            def waiting():
                info = storage.get_concurrency_info(POOL)
                return [s for s in info.pending_steps if s.assigned_timestamp is None]

            while not waiting():
                if time.monotonic() > deadline:
                    raise TimeoutError("the other run never queued for the pool")
                time.sleep(0.1)
        return 1

    with DagsterInstance.get() as instance:
        result = materialize([table], instance=instance)
        print(result.run_id)
    """
)


def test_two_runs_writing_the_same_table_do_not_overlap(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The repository's own instance configuration: pools with a limit of one.
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        holder = subprocess.Popen(
            [sys.executable, "-c", _WORKER, "hold"], env=env, stdout=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while not instance.event_log_storage.get_concurrency_info("lake/test/table").claimed_slots:
            assert holder.poll() is None, "the first run ended before holding the pool"
            assert time.monotonic() < deadline, "the first run never took the pool"
            time.sleep(0.1)
        waiter = subprocess.run(
            [sys.executable, "-c", _WORKER, "wait"], env=env, capture_output=True, text=True
        )
        assert waiter.returncode == 0, waiter.stderr[-3000:]
        held_out, _ = holder.communicate(timeout=120)
        assert holder.returncode == 0

        def step_events(run_id: str) -> dict[str, float]:
            records = instance.get_records_for_run(run_id).records
            found = {}
            for record in records:
                event = record.event_log_entry.dagster_event
                if event is None:
                    continue
                if event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                    found[event.event_type_value] = record.event_log_entry.timestamp
                message = f"{event.message} {record.event_log_entry.user_message}"
                if "blocked by limit for pool lake/test/table" in message:
                    found["BLOCKED"] = record.event_log_entry.timestamp
            return found

        held = step_events(held_out.strip().splitlines()[-1])
        waited = step_events(waiter.stdout.strip().splitlines()[-1])
        assert "BLOCKED" in waited and "BLOCKED" not in held, (held, waiter.stdout[-3000:])
        # The second write started only after the first had finished.
        assert waited["STEP_START"] >= held["STEP_SUCCESS"]


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.postgres.yaml"])
def test_both_instance_configs_limit_each_pool_to_one(config: str) -> None:
    import yaml

    document = yaml.safe_load((PROJECT_ROOT / config).read_text())
    assert document["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert document["run_retries"]["retry_on_asset_or_op_failure"] is False


def test_automation_can_start_switched_off_for_a_quiet_instance() -> None:
    from dataeng_assets.automation import build_automation
    from dataeng_assets.settings import load_settings
    from dataeng_assets.sources import registry

    quiet = build_automation(load_settings({"DATAENG_AUTOMATION": "off"}), registry().values())
    assert {s.default_status for s in quiet.sensors or []} == {DefaultSensorStatus.STOPPED}
    assert {s.default_status.value for s in quiet.schedules or []} == {"STOPPED"}


def test_arrival_sensors_look_at_every_wake_up_of_the_daemon_and_the_others_less_often() -> None:
    from dataeng_assets.automation import arrival_sensor_names, build_automation
    from dataeng_assets.settings import load_settings
    from dataeng_assets.sources import registry

    sources = registry().values()
    intervals = {
        s.name: s.minimum_interval_seconds
        for s in build_automation(load_settings({}), sources).sensors or []
    }
    # Dagster's sensor daemon wakes every 5 s: under that, an arrival sensor ticks every time.
    assert {intervals[name] for name in arrival_sensor_names(sources)} == {4}
    assert intervals[AUTOMATION_SENSOR] == intervals["alerts"] == 30
    tuned = build_automation(
        load_settings({"DATAENG_ARRIVAL_INTERVAL_SECONDS": "60"}), sources
    ).sensors
    assert {s.minimum_interval_seconds for s in tuned or [] if s.name.endswith("_arrival")} == {60}
