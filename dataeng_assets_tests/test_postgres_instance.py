"""The production instance configuration: run and event storage in the local PostgreSQL."""

import datetime as dt
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetKey, DagsterInstance

from dataeng_assets.resources import build_resources
from dataeng_assets_tests.conftest import (
    PG,
    expected_daily_counts,
    local_settings,
    run_window,
    use_dagster_home,
)


@pytest.fixture
def postgres_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    use_dagster_home("postgres", tmp_path / "dagster_home", monkeypatch)
    with DagsterInstance.get() as instance:
        yield instance


def test_a_backfill_run_is_recorded_in_postgres(
    postgres_instance, landing_dir: Path, tmp_path: Path
):
    day = dt.date(2013, 1, 3)
    resources = build_resources(local_settings(landing_dir, tmp_path / "lake"))
    result = run_window(resources, day, day, "key:raw/flights", instance=postgres_instance)
    assert result.success
    event = postgres_instance.get_latest_materialization_event(AssetKey(["raw", "flights"]))
    assert event.run_id == result.run_id
    assert (
        event.asset_materialization.metadata["dagster/row_count"].value
        == (expected_daily_counts(day, day)[day])
    )
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cursor.fetchone() == ("SUCCESS",)
