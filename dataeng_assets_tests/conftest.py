"""Shared fixtures: a replayed landing zone, fresh lakes, and a way to run a window of days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
from dagster import AssetSelection, DagsterInstance, ExecuteInProcessResult, materialize
from deltalake import DeltaTable

from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.landing.replay import read_package_table, replay
from dataeng_assets.resources import build_resources
from dataeng_assets.settings import Settings
from dataeng_assets.storage.delta_io_manager import to_pandas
from dataeng_assets_tests.seaweedfs import S3Server, run_seaweedfs

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 1, 14)
S3_BUCKET = "lake"
REFERENCES = ("airlines", "airports", "planes")


def selection_of(*tables: str, layers: tuple[str, ...] = ("raw", "cleaned", "quarantine")) -> str:
    """An asset selection string: the given tables in the given layers (cleaned and quarantine are
    written together, so they are always selected together)."""
    return " or ".join(f"key:{layer}/{table}" for table in tables for layer in layers)


REFERENCES_SELECTION = selection_of(*REFERENCES)
FLIGHTS_SELECTION = selection_of("flights", *REFERENCES)


@cache
def package_flights() -> pd.DataFrame:
    """The package's own flights, for expected counts (read by path, like the replay)."""
    table = read_package_table("flights")
    frame = table.select(["year", "month", "day"]).to_pandas().astype(int)
    frame["date"] = pd.to_datetime(frame[["year", "month", "day"]]).dt.date
    return frame


def expected_daily_counts(start: dt.date, end: dt.date) -> dict[dt.date, int]:
    """Flights per local day in [start, end] according to the package."""
    counts = package_flights()["date"].value_counts()
    return {d: int(n) for d, n in counts.items() if start <= d <= end}


def local_settings(landing: Path | str, lake: Path | str) -> Settings:
    return Settings(
        landing_root=str(landing),
        lake_root=str(lake),
        s3_endpoint_url=None,
        s3_region=None,
        s3_allow_http=False,
        s3_credentials_in_env=False,
    )


def run_window(
    resources: dict,
    start: dt.date,
    end: dt.date,
    selection: AssetSelection | str = "*",
    instance: DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> ExecuteInProcessResult:
    """Materialize ``selection`` for the days start..end (inclusive) in one run, as a backfill does."""
    return materialize(
        ALL_ASSETS,
        selection=selection,
        resources=resources,
        instance=instance,
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
        raise_on_error=raise_on_error,
    )


def read_table(uri: str, storage_options: dict | None = None) -> pd.DataFrame:
    return to_pandas(DeltaTable(uri, storage_options=storage_options).to_pyarrow_table())


PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
REPO = Path(__file__).resolve().parent.parent


def use_dagster_home(kind: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DAGSTER_HOME with the repository's instance config: "sqlite" (dagster.yaml, the embedded
    default) or "postgres" (deploy/dagster.postgres.yaml on the machine's PostgreSQL)."""
    import shutil

    import psycopg2

    home.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    else:
        try:
            psycopg2.connect(**PG, connect_timeout=5).close()
        except psycopg2.OperationalError as error:  # a failure, not a skip: CI must have it
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 (database test) is not reachable: {error}")
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


@pytest.fixture(scope="session")
def landing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first two weeks of January 2013 replayed as CSV files, shared by the session (read-only)."""
    root = tmp_path_factory.mktemp("landing")
    replay(pafs.LocalFileSystem(), str(root), FIRST_DAY, LAST_DAY)
    return root


@pytest.fixture(scope="session")
def two_weeks_lake(tmp_path_factory: pytest.TempPathFactory, landing_dir: Path) -> Path:
    """A lake with every asset materialized for the two weeks, in one single-run backfill."""
    lake = tmp_path_factory.mktemp("lake")
    result = run_window(build_resources(local_settings(landing_dir, lake)), FIRST_DAY, LAST_DAY)
    assert result.success
    return lake


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) on loopback, with its own data folder and credentials."""
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket(S3_BUCKET)
        yield server
