"""The daily schedule: the previous New York day at the delivery deadline, skipped with a reason
when the files are missing (and a person told), or when the arrival sensor already ingested it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, Definitions, build_schedule_context

from dataeng_assets.automation.alerts import AlertChannels
from dataeng_assets.automation.arrival import build_ingest_job
from dataeng_assets.automation.schedules import build_daily_schedule
from dataeng_assets.definitions import ALL_ASSETS, defs
from dataeng_assets.landing.replay import replay
from dataeng_assets.resources import build_resources
from dataeng_assets.sources import registry
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets_tests.conftest import local_settings

NYC = ZoneInfo("America/New_York")
FLIGHTS = registry()["flights"]


@pytest.fixture
def setup(tmp_path: Path):
    landing = tmp_path / "landing"
    landing.mkdir()
    job = build_ingest_job(FLIGHTS)
    schedule = build_daily_schedule(FLIGHTS, job)
    resources = {
        **build_resources(local_settings(landing, tmp_path / "lake")),
        "alerts": AlertChannels(channels=["file"], file_path=str(tmp_path / "alerts.jsonl")),
    }
    definitions = Definitions(
        assets=ALL_ASSETS, jobs=[job], schedules=[schedule], resources=resources
    )
    # A persistent instance: a schedule's partitioned request is resolved through its ref.
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        yield schedule, definitions, instance, landing, tmp_path / "alerts.jsonl"


def _tick(schedule, definitions, instance, at: dt.datetime):
    with build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        repository_def=definitions.get_repository_def(),
        resources=definitions.resources,
    ) as context:
        return schedule.evaluate_tick(context)


def test_the_schedules_are_on_and_fire_at_the_new_york_deadline() -> None:
    repository = defs.get_repository_def()
    for name in ("flights_daily", "weather_daily"):
        schedule = repository.get_schedule_def(name)
        assert schedule.cron_schedule == "0 6 * * *"
        assert schedule.execution_timezone == "America/New_York"
        assert schedule.default_status.value == "RUNNING"
        assert schedule.job_name == f"ingest_{name.removesuffix('_daily')}"


def test_yesterday_is_requested_skipped_when_missing_or_already_ingested(setup) -> None:
    schedule, definitions, instance, landing, alerts_file = setup
    morning = dt.datetime(2013, 1, 6, 6, 0, tzinfo=NYC)

    missing = _tick(schedule, definitions, instance, morning)
    assert missing.run_requests == []
    assert "flights 2013-01-05: no file flights/2013-01-05[_suffix].csv" in missing.skip_message
    (alert,) = [json.loads(x) for x in alerts_file.read_text().splitlines()]
    assert alert["kind"] == "delivery_missing" and alert["partition"] == "2013-01-05"

    replay(*ObjectStore(root=str(landing)).filesystem(), morning.date(), morning.date())
    replay(*ObjectStore(root=str(landing)).filesystem(), dt.date(2013, 1, 5), dt.date(2013, 1, 5))
    (request,) = _tick(schedule, definitions, instance, morning).run_requests
    assert request.partition_key == "2013-01-05"

    result = definitions.resolve_job_def("ingest_flights").execute_in_process(
        instance=instance, partition_key="2013-01-05", tags=request.tags
    )
    assert result.success
    done = _tick(schedule, definitions, instance, morning)
    assert done.run_requests == [] and "already ingested" in done.skip_message


def test_the_previous_day_is_the_new_york_day_across_dst_and_the_data_range(setup) -> None:
    schedule, definitions, instance, landing, _ = setup
    replay(*ObjectStore(root=str(landing)).filesystem(), dt.date(2013, 3, 10), dt.date(2013, 3, 10))
    # 06:00 New York on the day after the spring-forward night is 10:00 UTC, not 11:00.
    at = dt.datetime(2013, 3, 11, 10, 0, tzinfo=dt.UTC)
    (request,) = _tick(schedule, definitions, instance, at).run_requests
    assert request.partition_key == "2013-03-10"
    # Today is not in 2013: nothing to ingest, and the reason says so.
    later = _tick(schedule, definitions, instance, dt.datetime(2026, 5, 2, 6, tzinfo=NYC))
    assert "2026-05-01 is not a partition" in later.skip_message
