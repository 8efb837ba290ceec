"""The same assets on S3 (a real SeaweedFS server on loopback): read back equal to the local run."""

import datetime as dt
import threading
import uuid
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, EnvVar, build_output_context
from deltalake import DeltaTable

from dataeng_assets.landing.replay import main as replay_main
from dataeng_assets.partitions import DAILY_2013
from dataeng_assets.resources import build_resources
from dataeng_assets.settings import load_settings
from dataeng_assets.storage.delta_io_manager import DeltaLakeIOManager
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets_tests.conftest import (
    S3_BUCKET,
    local_settings,
    read_table,
    run_window,
    selection_of,
)
from dataeng_assets_tests.seaweedfs import S3Server

pytestmark = pytest.mark.s3

START, END = dt.date(2013, 1, 6), dt.date(2013, 1, 8)
# When a row was loaded differs between two loads; the data itself must not.
LOAD_TIMES = {"_loaded_at", "_cleaned_at", "_delivered_at", "quarantined_at", "run_id"}
TABLES = [
    ("raw", "flights"), ("raw", "weather"), ("raw", "planes"),
    ("cleaned", "flights"), ("cleaned", "weather"), ("cleaned", "airports"),
    ("features", "flight_delay"),
]  # fmt: skip


@pytest.fixture
def s3_environment(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment a user sets to move to S3; returns a fresh prefix in the bucket."""
    prefix = f"s3://{S3_BUCKET}/{uuid.uuid4().hex}"
    for name, value in {
        "DATAENG_LANDING_ROOT": f"{prefix}/landing",
        "DATAENG_LAKE_ROOT": f"{prefix}/lake",
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_REGION": s3_server.region,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
    }.items():
        monkeypatch.setenv(name, value)
    return prefix


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a stable order, without the load time (which differs between two loads)."""
    columns = [c for c in frame.columns if c not in LOAD_TIMES]
    return frame[columns].sort_values(columns[:6]).reset_index(drop=True)


def test_the_pipeline_on_s3_reads_back_equal_to_the_local_run(
    s3_environment: str, s3_server: S3Server, landing_dir: Path, tmp_path: Path
) -> None:
    assert replay_main(["--start", START.isoformat(), "--end", END.isoformat()]) == 0
    settings = load_settings()
    assert settings.lake_root == f"{s3_environment}/lake" and settings.uses_s3
    resources = build_resources(settings)
    # The secrets reach Dagster as EnvVar references, not as plain values in the config.
    store = resources["lake_io_manager"].store
    assert isinstance(store.secret_access_key, EnvVar)
    assert store.secret_access_key == "AWS_SECRET_ACCESS_KEY"  # the name, not the value
    assert run_window(resources, START, END).success
    assert run_window(build_resources(local_settings(landing_dir, tmp_path)), START, END).success

    options = s3_server.storage_options()
    for layer, table in TABLES:
        on_s3 = read_table(f"{s3_environment}/lake/{layer}/{table}", options)
        local = read_table(str(tmp_path / layer / table))
        assert len(on_s3) > 0, (layer, table)
        pd.testing.assert_frame_equal(
            _comparable(on_s3), _comparable(local), obj=f"{layer}/{table}"
        )


def test_rewriting_a_day_on_s3_keeps_the_other_days(
    s3_environment: str, s3_server: S3Server
) -> None:
    assert replay_main(["--start", START.isoformat(), "--end", END.isoformat()]) == 0
    resources = build_resources(load_settings())
    selection = selection_of("flights", layers=("raw",))
    assert run_window(resources, START, END, selection).success
    uri = f"{s3_environment}/lake/raw/flights"
    options = s3_server.storage_options()
    before = read_table(uri, options)
    files_before = set(DeltaTable(uri, storage_options=options).file_uris())
    assert run_window(resources, END, END, selection).success
    after = read_table(uri, options)
    files_after = set(DeltaTable(uri, storage_options=options).file_uris())
    assert len(after) == len(before) and not after.duplicated(["_source_file", "_source_row"]).any()
    kept = {f for f in files_before if f"date={END}" not in f}
    assert kept <= files_after and len(files_after - files_before) == 1


def test_two_runs_creating_a_new_table_at_once_lose_no_partition(s3_server: S3Server) -> None:
    """Both writers race on the empty version 0 and on their first commit; the IO manager retries."""
    store = ObjectStore(
        root=f"s3://{S3_BUCKET}/{uuid.uuid4().hex}",
        endpoint_url=s3_server.endpoint_url,
        region=s3_server.region,
        access_key_id=s3_server.access_key,
        secret_access_key=s3_server.secret_key,
        allow_http=True,
    )
    io_manager = DeltaLakeIOManager(store=store)
    errors: list[BaseException] = []
    rounds, writers = 4, 3

    def write(table: str, day: dt.date, barrier: threading.Barrier) -> None:
        context = build_output_context(
            asset_key=AssetKey(["race", table]),
            partition_key=day.isoformat(),
            asset_partitions_def=DAILY_2013,
        )
        frame = pd.DataFrame({"date": [day] * 3, "value": pd.array([1, 2, 3], dtype="Int64")})
        barrier.wait()
        try:
            io_manager.handle_output(context, frame)
        except BaseException as error:  # collected: a thread's exception would vanish
            errors.append(error)

    for round_ in range(rounds):
        barrier = threading.Barrier(writers)
        days = [dt.date(2013, 2, 1) + dt.timedelta(days=i) for i in range(writers)]
        threads = [
            threading.Thread(target=write, args=(f"t{round_}", day, barrier)) for day in days
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        table = read_table(store.uri("race", f"t{round_}"), s3_server.storage_options())
        assert table["date"].value_counts().to_dict() == dict.fromkeys(days, 3)
