"""The circuit breaker per source: real failed runs open it, the arrival sensor stops asking and
alerts once, one run is let through after the cool-down, a success closes it."""

import datetime as dt
import json
import time
from pathlib import Path

from dagster import (
    Config,
    DagsterInstance,
    Definitions,
    Failure,
    OpExecutionContext,
    build_sensor_context,
    job,
    op,
)

from dataeng_assets.automation.alerts import AlertChannels
from dataeng_assets.automation.arrival import build_arrival_sensor, build_ingest_job
from dataeng_assets.automation.breaker import BreakerPolicy, breaker_state, source_tags
from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.landing.replay import replay
from dataeng_assets.resources import build_resources
from dataeng_assets.sources import registry
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets_tests.conftest import local_settings

FLIGHTS = registry()["flights"]
HOUR = BreakerPolicy(failures=3, cooldown=dt.timedelta(hours=1))
NO_COOLDOWN = BreakerPolicy(failures=3, cooldown=dt.timedelta(0))


class IngestConfig(Config):
    fail: bool = True


@op
def ingest(context: OpExecutionContext, config: IngestConfig) -> None:
    if config.fail:
        raise Failure("the landing zone answered 503", allow_retries=False)


@job(tags=source_tags(["flights"]))
def flights_ingestion() -> None:
    """Stands for the flights ingestion: runs tagged with the source, as the real job's are."""
    ingest()


def _run(instance: DagsterInstance, fail: bool) -> None:
    flights_ingestion.execute_in_process(
        instance=instance,
        run_config={"ops": {"ingest": {"config": {"fail": fail}}}},
        raise_on_error=False,
    )


def test_the_breaker_follows_the_run_history() -> None:
    with DagsterInstance.ephemeral() as instance:
        now = time.time()
        assert breaker_state(instance, "flights", HOUR, now).status == "closed"
        _run(instance, fail=True)
        _run(instance, fail=True)
        assert breaker_state(instance, "flights", HOUR, now).status == "closed"
        _run(instance, fail=True)
        state = breaker_state(instance, "flights", HOUR, time.time())
        assert (state.status, state.consecutive_failures) == ("open", 3)
        assert state.blocks and state.retry_at > time.time()
        # After the cool-down: half-open, one run may test the source.
        assert breaker_state(instance, "flights", HOUR, state.retry_at + 1).status == "half_open"
        # That test run in flight: nothing else until it ends.
        instance.create_run_for_job(flights_ingestion, tags=source_tags(["flights"]))
        assert breaker_state(instance, "flights", HOUR, state.retry_at + 1).status == "probing"
        # Another source is not affected.
        assert breaker_state(instance, "weather", HOUR, now).status == "closed"


def test_a_failed_run_of_a_day_counts_for_each_source_it_ingests() -> None:
    """A day run ingests flights and weather together: its failure is each source's failure."""
    with DagsterInstance.ephemeral() as instance:
        for _ in range(3):
            flights_ingestion.execute_in_process(
                instance=instance,
                run_config={"ops": {"ingest": {"config": {"fail": True}}}},
                tags=source_tags(["weather", "flights"]),
                raise_on_error=False,
            )
        for source in ("flights", "weather"):
            state = breaker_state(instance, source, HOUR, time.time())
            assert (state.status, state.consecutive_failures) == ("open", 3), source
        assert breaker_state(instance, "planes", HOUR, time.time()).status == "closed"
        # One good run of flights alone closes flights' breaker, not weather's.
        _run(instance, fail=False)
        assert breaker_state(instance, "flights", HOUR, time.time()).status == "closed"
        assert breaker_state(instance, "weather", HOUR, time.time()).status == "open"


def test_an_open_breaker_stops_requests_alerts_once_and_loses_no_file(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    replay_fs = ObjectStore(root=str(landing)).filesystem()
    replay(*replay_fs, dt.date(2013, 1, 1), dt.date(2013, 1, 3), sources=[FLIGHTS])
    alerts_file = tmp_path / "alerts.jsonl"
    resources = {
        "landing": ObjectStore(root=str(landing)),
        "alerts": AlertChannels(channels=["file"], file_path=str(alerts_file)),
    }
    ingest_job = build_ingest_job(FLIGHTS)
    repository = Definitions(
        assets=ALL_ASSETS,
        jobs=[ingest_job],
        resources={**build_resources(local_settings(landing, tmp_path / "lake")), **resources},
    ).get_repository_def()
    cursor = None

    def tick(policy: BreakerPolicy):
        nonlocal cursor
        sensor = build_arrival_sensor(FLIGHTS, ingest_job, policy=policy)
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, repository_def=repository
        )
        result = sensor.evaluate_tick(context)
        cursor = result.cursor
        return result

    def alerts() -> list[dict]:
        return [json.loads(x) for x in alerts_file.read_text().splitlines()]

    with DagsterInstance.ephemeral() as instance:
        for _ in range(3):
            _run(instance, fail=True)

        blocked = tick(HOUR)
        assert blocked.run_requests == [] and "circuit open" in blocked.skip_message
        (alert,) = alerts()
        assert alert["kind"] == "circuit_open" and alert["source"] == "flights"
        assert tick(HOUR).run_requests == []
        assert len(alerts()) == 1  # alerted once, not on every tick

        # After the cool-down one partition tests the source; the others wait.
        (probe,) = tick(NO_COOLDOWN).run_requests
        assert probe.partition_key == "2013-01-01"
        instance.create_run_for_job(flights_ingestion, tags=source_tags(["flights"]))
        assert "waiting for the test run" in tick(NO_COOLDOWN).skip_message

        # The test run succeeds: closed, a note, and the files that waited are requested.
        for record in instance.get_run_records():
            if record.dagster_run.status.value == "NOT_STARTED":
                instance.delete_run(record.dagster_run.run_id)
        _run(instance, fail=False)
        rest = tick(HOUR).run_requests
        assert sorted(r.partition_key for r in rest) == ["2013-01-02", "2013-01-03"]
        assert [a["kind"] for a in alerts()] == ["circuit_open", "circuit_closed"]
