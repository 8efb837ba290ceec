"""The embedded instance's event log (dagster.yaml): Dagster's SQLite event log, one engine per shard."""

import multiprocessing
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    MaterializeResult,
    asset,
    materialize,
)
from dagster._core.events.log import EventLogEntry
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.common import dagsters_own_event_log
from dataeng_assets import instance_event_log
from dataeng_assets.instance_event_log import PooledSqliteEventLogStorage
from dataeng_assets_tests.conftest import REPO, use_dagster_home


@asset(key=["raw", "things"], check_specs=[AssetCheckSpec("row_count", asset=["raw", "things"])])
def raw_things() -> Iterator[MaterializeResult | AssetCheckResult]:
    yield MaterializeResult(metadata={"rows": 3})
    yield AssetCheckResult(check_name="row_count", passed=True, metadata={"rows": 3})


@asset(key=["cleaned", "things"], deps=[raw_things])
def cleaned_things() -> MaterializeResult:
    return MaterializeResult(metadata={"rows": 2})


@contextmanager
def event_log_connections() -> Iterator[list[str]]:
    """The files of the SQLite connections opened meanwhile under history/runs (the event log)."""
    opened: list[str] = []

    def on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        path = dbapi_connection.execute("PRAGMA database_list").fetchall()[0][2]
        if "/history/runs/" in path:
            opened.append(path)

    event.listen(Engine, "connect", on_connect)
    try:
        yield opened
    finally:
        event.remove(Engine, "connect", on_connect)


def run_things(instance: DagsterInstance) -> str:
    result = materialize([raw_things, cleaned_things], instance=instance)
    assert result.success
    return result.run_id


def test_the_embedded_instance_stores_a_runs_events_over_a_few_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_dagster_home("sqlite", tmp_path / "home", monkeypatch)
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        with event_log_connections() as opened:
            run_id = run_things(instance)
        events = instance.all_logs(run_id)

        # Everything a user reads back: the run's events, the assets' latest materializations
        # and the check's evaluation (the last two from the index shard).
        assert len(events) >= 20
        assert events[-1].dagster_event_type == DagsterEventType.RUN_SUCCESS
        latest = instance.get_latest_materialization_event(AssetKey(["cleaned", "things"]))
        assert latest is not None and latest.run_id == run_id
        assert latest.asset_materialization.metadata["rows"].value == 2
        row_count = AssetCheckKey(AssetKey(["raw", "things"]), "row_count")
        checks = storage.get_latest_asset_check_execution_by_key([row_count])
        assert checks[row_count].run_id == run_id

    # In Dagster's default place, one file per run plus the index.
    runs = tmp_path / "home" / "history" / "runs"
    assert (runs / f"{run_id}.db").exists() and (runs / "index.db").exists()
    # One connection per shard, where Dagster's own storage opens one per statement.
    assert sorted(set(opened)) == sorted({str(runs / f"{run_id}.db"), str(runs / "index.db")})
    # Creating a shard takes two connections (Dagster's schema check inspects it on a second).
    assert max(Counter(opened).values()) <= 3, [Path(p).name for p in opened]


def test_dagsters_own_sqlite_event_log_opens_a_connection_per_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the embedded instance's event log saves: the same run on Dagster's own storage."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(dagsters_own_event_log((REPO / "dagster.yaml").read_text()))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        with event_log_connections() as opened:
            run_id = run_things(instance)
        assert len(opened) >= len(instance.all_logs(run_id))


def entry(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=0.0,
    )


def test_engines_of_least_recently_used_shards_are_closed(tmp_path: Path) -> None:
    storage = PooledSqliteEventLogStorage(base_dir=str(tmp_path))
    run_ids = [f"run-{n:02d}" for n in range(instance_event_log.MAX_ENGINES + 5)]
    for run_id in run_ids:
        storage.store_event(entry(run_id, f"hello from {run_id}"))
    assert len(storage._engines) == instance_event_log.MAX_ENGINES
    # An evicted shard opens again and still has its events.
    first = storage.get_logs_for_run(run_ids[0])
    assert [e.user_message for e in first] == [f"hello from {run_ids[0]}"]
    assert list(storage._engines)[-1] == run_ids[0]
    storage.dispose()
    assert storage._engines == {}


def test_connections_are_in_wal_mode_and_sync_at_checkpoints(tmp_path: Path) -> None:
    storage = PooledSqliteEventLogStorage(base_dir=str(tmp_path))
    for _ in range(2):  # the connection after the shard's creation, and the same one reused
        with storage.run_connection("a-run") as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    storage.dispose()


def test_wipe_deletes_the_runs_events_and_the_storage_goes_on(tmp_path: Path) -> None:
    storage = PooledSqliteEventLogStorage(base_dir=str(tmp_path))
    storage.store_event(entry("before", "old"))
    storage.wipe()
    assert not (tmp_path / "before.db").exists()
    assert storage.get_logs_for_run("before") == []
    storage.store_event(entry("after", "new"))
    assert [e.user_message for e in storage.get_logs_for_run("after")] == ["new"]
    storage.dispose()


def _store_in_child() -> None:
    storage = _FORKED["storage"]  # the parent's, with its open connections
    assert storage._engines_pid != os.getpid()
    storage.store_event(entry("shared", "from the child"))


_FORKED: dict[str, PooledSqliteEventLogStorage] = {}


def test_a_forked_process_opens_its_own_connections(tmp_path: Path) -> None:
    storage = PooledSqliteEventLogStorage(base_dir=str(tmp_path))
    storage.store_event(entry("shared", "from the parent"))
    _FORKED["storage"] = storage
    child = multiprocessing.get_context("fork").Process(target=_store_in_child)
    child.start()
    child.join(60)
    assert child.exitcode == 0
    storage.store_event(entry("shared", "from the parent again"))
    assert [e.user_message for e in storage.get_logs_for_run("shared")] == [
        "from the parent",
        "from the child",
        "from the parent again",
    ]
    storage.dispose()


def test_the_event_log_is_in_the_instances_directory_whatever_dagster_home_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Dagster's own: `DagsterInstance.from_config(dir)`, and `dagster dev` without
    DAGSTER_HOME (a temporary home, the working directory's dagster.yaml), use that directory."""
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(home)) as instance:
        run_id = run_things(instance)
        assert instance.event_log_storage._base_dir == str(home / "history" / "runs")
    assert (home / "history" / "runs" / f"{run_id}.db").exists()
    assert not elsewhere.exists()
    PooledSqliteEventLogStorage().dispose()  # never given a directory: nothing to close
