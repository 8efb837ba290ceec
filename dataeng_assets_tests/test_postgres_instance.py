"""The production instance configuration: run and event storage in the local PostgreSQL."""

import datetime as dt
import shutil
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetKey, DagsterInstance

from dataeng_assets.resources import build_resources
from dataeng_assets_tests.conftest import expected_daily_counts, local_settings, run_window

REPO = Path(__file__).resolve().parent.parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


@pytest.fixture
def postgres_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    try:
        psycopg2.connect(**PG, connect_timeout=5).close()
    except psycopg2.OperationalError as error:  # a clear failure, not a skip: CI must have it
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 (database test) is not reachable: {error}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    for name, value in {
        "DAGSTER_PG_HOST": PG["host"],
        "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_USER": PG["user"],
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": PG["dbname"],
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
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
