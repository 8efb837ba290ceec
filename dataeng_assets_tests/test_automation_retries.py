"""Retries: an I/O failure of the landing zone is retried (backoff and jitter) and the run then
succeeds; a bad delivery is a logic error and fails at once, without a retry."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs
import pytest
from dagster import (
    Backoff,
    DagsterEventType,
    DagsterInstance,
    ExecuteInProcessResult,
    Jitter,
    materialize,
)

from dataeng_assets.definitions import ALL_ASSETS, defs
from dataeng_assets.landing.replay import replay
from dataeng_assets.resources import build_resources
from dataeng_assets.sources import registry
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets_tests.conftest import (
    S3_BUCKET,
    expected_daily_counts,
    local_settings,
    read_table,
)
from dataeng_assets_tests.receivers import free_port, tcp_relay
from dataeng_assets_tests.seaweedfs import S3Server

FLIGHTS = registry()["flights"]
DAY = dt.date(2013, 1, 7)


def _events(result: ExecuteInProcessResult, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def test_raw_steps_retry_io_with_exponential_backoff_and_jitter() -> None:
    repository = defs.get_repository_def()
    for key in repository.asset_graph.get_all_asset_keys():
        if key.path[0] != "raw":
            continue
        policy = repository.assets_defs_by_key[key].op.retry_policy
        assert policy is not None and policy.max_retries >= 1, key
        assert policy.backoff == Backoff.EXPONENTIAL and policy.jitter == Jitter.PLUS_MINUS, key


@pytest.mark.s3
def test_a_landing_zone_that_is_briefly_unreachable_is_retried(
    s3_server: S3Server, tmp_path: Path
) -> None:
    real = ObjectStore(
        root=f"s3://{S3_BUCKET}/{uuid.uuid4().hex}/landing",
        endpoint_url=s3_server.endpoint_url,
        region=s3_server.region,
        access_key_id=s3_server.access_key,
        secret_access_key=s3_server.secret_key,
        allow_http=True,
    )
    replay(*real.filesystem(), DAY, DAY, sources=[FLIGHTS])
    # The run reads through a port where nothing listens yet: connections are refused.
    port = free_port()
    flaky = ObjectStore(**{**real.model_dump(), "endpoint_url": f"http://127.0.0.1:{port}"})
    target = urlparse(s3_server.endpoint_url)
    resources = {
        **build_resources(local_settings(tmp_path / "unused", tmp_path / "lake")),
        "landing": flaky,
    }
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        opened = threading.Event()

        def open_after_first_failure() -> None:
            # As soon as Dagster has scheduled a retry, the landing zone comes back.
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                for record in instance.get_run_records(limit=1):
                    retries = instance.get_records_for_run(
                        record.dagster_run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY
                    ).records
                    if retries:
                        opened.set()
                        return
                time.sleep(0.1)

        watcher = threading.Thread(target=open_after_first_failure, daemon=True)
        watcher.start()
        relay_ready = threading.Event()
        result_holder: dict = {}

        def relay_when_opened() -> None:
            opened.wait(timeout=300)
            with tcp_relay(port, (target.hostname or "127.0.0.1", target.port or 80)):
                relay_ready.set()
                while "result" not in result_holder:
                    time.sleep(0.1)

        relay = threading.Thread(target=relay_when_opened, daemon=True)
        relay.start()
        result = materialize(
            ALL_ASSETS,
            selection="key:raw/flights",
            resources=resources,
            instance=instance,
            partition_key=DAY.isoformat(),
            raise_on_error=False,
        )
        result_holder["result"] = result
        relay.join(timeout=30)

    assert relay_ready.is_set(), "the step never scheduled a retry"
    retries = _events(result, "STEP_UP_FOR_RETRY")
    assert result.success, [e.message for e in _events(result, "STEP_FAILURE")]
    assert 1 <= len(retries) <= 3
    frame = read_table(str(tmp_path / "lake" / "raw" / "flights"))
    assert len(frame) == expected_daily_counts(DAY, DAY)[DAY]


@pytest.mark.parametrize("delivery", [b"", None], ids=["empty file", "no file"])
def test_a_bad_delivery_is_not_retried(delivery: bytes | None, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    replay(pafs.LocalFileSystem(), str(landing), DAY, DAY, sources=[FLIGHTS])
    path = landing / "flights" / f"{DAY}.csv"
    if delivery is None:
        path.unlink()
    else:
        path.write_bytes(delivery)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            ALL_ASSETS,
            selection="key:raw/flights",
            resources=build_resources(local_settings(landing, tmp_path / "lake")),
            instance=instance,
            partition_key=DAY.isoformat(),
            raise_on_error=False,
        )
    assert not result.success
    assert _events(result, "STEP_UP_FOR_RETRY") == []
    assert len(_events(result, "STEP_FAILURE")) == 1
