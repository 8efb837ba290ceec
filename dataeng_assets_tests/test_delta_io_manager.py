"""The Delta IO manager: exact window overwrites, schema rules, pruning and metadata."""

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    InputContext,
    PythonObjectDagsterType,
    build_input_context,
    materialize,
)
from dagster import asset as dagster_asset
from deltalake import DeltaTable

from dataeng_assets.partitions import DAILY_2013, SINGLE_RUN_BACKFILL
from dataeng_assets.resources import build_resources
from dataeng_assets.storage.delta_io_manager import (
    DeferredFrame,
    DeltaLakeIOManager,
)
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets_tests.conftest import (
    FLIGHTS_SELECTION,
    RANGE_END_TAG,
    RANGE_START_TAG,
    expected_daily_counts,
    local_settings,
    read_table,
    run_window,
)

WEEK_START, WEEK_END = dt.date(2013, 1, 1), dt.date(2013, 1, 7)
KEY = ["carrier", "flight", "origin", "sched_dep_at"]


def files_by_day(uri: str) -> dict[str, set[str]]:
    actions = pa.table(DeltaTable(uri).get_add_actions(flatten=True)).to_pydict()
    days: dict[str, set[str]] = {}
    for path, day in zip(actions["path"], actions["partition.date"], strict=True):
        days.setdefault(str(day), set()).add(path)
    return days


def test_rewriting_one_day_of_a_week_leaves_the_other_six_untouched(
    landing_dir: Path, tmp_path: Path
) -> None:
    resources = build_resources(local_settings(landing_dir, tmp_path))
    selection = FLIGHTS_SELECTION
    assert run_window(resources, WEEK_START, WEEK_END, selection).success
    uri = str(tmp_path / "cleaned" / "flights")
    before_files = files_by_day(uri)
    before = read_table(uri)
    assert len(before_files) == 7

    day = dt.date(2013, 1, 4)
    assert run_window(resources, day, day, selection).success

    after_files = files_by_day(uri)
    after = read_table(uri)
    for other in before_files:
        if other != day.isoformat():
            assert after_files[other] == before_files[other], f"{other} was rewritten"
    assert after_files[day.isoformat()] != before_files[day.isoformat()]
    assert len(after) == len(before) == sum(expected_daily_counts(WEEK_START, WEEK_END).values())
    assert not after.duplicated(KEY).any()
    columns = [c for c in before.columns if c not in {"_loaded_at", "_cleaned_at"}]
    pd.testing.assert_frame_equal(
        before[columns].sort_values(KEY).reset_index(drop=True),
        after[columns].sort_values(KEY).reset_index(drop=True),
    )


def _partitioned_asset(key: list[str], build):
    @dagster_asset(
        key=AssetKey(key),
        partitions_def=DAILY_2013,
        backfill_policy=SINGLE_RUN_BACKFILL,
        io_manager_key="lake_io_manager",
    )
    def _asset(context: AssetExecutionContext) -> pd.DataFrame:
        window = context.partition_time_window
        return build(window.start.date(), window.end.date())

    return _asset


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def _good_frame(start: dt.date, end: dt.date) -> pd.DataFrame:
    days = _days(start, end)
    return pd.DataFrame({"date": days, "value": pd.array(range(len(days)), dtype="Int64")})


def _run(asset_def, lake: Path, start: str, end: str, instance=None):
    return materialize(
        [asset_def],
        resources={"lake_io_manager": DeltaLakeIOManager(store=ObjectStore(root=str(lake)))},
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
        raise_on_error=False,
        instance=instance,
    )


def _first_error(result) -> str:
    """The failed step's error with its causes (Dagster wraps an IO manager's exception)."""
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error, messages = failures[0].step_failure_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def test_a_wrong_typed_partition_column_raises_and_leaves_the_table_intact(tmp_path: Path) -> None:
    uri = str(tmp_path / "test" / "values")
    assert _run(
        _partitioned_asset(["test", "values"], _good_frame), tmp_path, "2013-01-01", "2013-01-07"
    ).success
    version, before = DeltaTable(uri).version(), read_table(uri)

    def string_dates(start: dt.date, end: dt.date) -> pd.DataFrame:
        frame = _good_frame(start, end)
        return frame.assign(date=frame["date"].map(dt.date.isoformat))

    result = _run(
        _partitioned_asset(["test", "values"], string_dates), tmp_path, "2013-01-03", "2013-01-03"
    )
    assert not result.success
    message = _first_error(result)
    assert "PartitionWindowError" in message and "must be a date" in message
    assert DeltaTable(uri).version() == version
    pd.testing.assert_frame_equal(read_table(uri), before)


def test_rows_outside_the_window_are_refused(tmp_path: Path) -> None:
    def spills_over(start: dt.date, end: dt.date) -> pd.DataFrame:
        return _good_frame(start, end + dt.timedelta(days=1))

    result = _run(
        _partitioned_asset(["test", "values"], spills_over), tmp_path, "2013-01-01", "2013-01-02"
    )
    assert not result.success
    assert "fall outside the run's window" in _first_error(result)
    assert "2013-01-03" in _first_error(result)


def test_new_columns_are_merged_and_changed_types_are_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "test" / "values")
    assert _run(
        _partitioned_asset(["test", "values"], _good_frame), tmp_path, "2013-01-01", "2013-01-03"
    ).success

    def with_extra(start: dt.date, end: dt.date) -> pd.DataFrame:
        return _good_frame(start, end).assign(note="added")

    assert _run(
        _partitioned_asset(["test", "values"], with_extra), tmp_path, "2013-01-03", "2013-01-03"
    ).success
    merged = read_table(uri).sort_values("date")
    assert merged["note"].isna().tolist() == [True, True, False]
    assert merged["note"].iloc[2] == "added" and merged["value"].tolist() == [0, 1, 0]

    def retyped(start: dt.date, end: dt.date) -> pd.DataFrame:
        return _good_frame(start, end).assign(value="text")

    version = DeltaTable(uri).version()
    result = _run(
        _partitioned_asset(["test", "values"], retyped), tmp_path, "2013-01-02", "2013-01-02"
    )
    assert not result.success
    message = _first_error(result)
    assert "incompatible schema change" in message and "value: table has" in message
    assert DeltaTable(uri).version() == version


def test_a_broken_table_is_reported_not_recreated(tmp_path: Path) -> None:
    uri = tmp_path / "test" / "values"
    assert _run(
        _partitioned_asset(["test", "values"], _good_frame), tmp_path, "2013-01-01", "2013-01-02"
    ).success
    log = uri / "_delta_log"
    first_commit = sorted(log.glob("*.json"))[0]
    first_commit.write_text("this is not a delta log")
    result = _run(
        _partitioned_asset(["test", "values"], _good_frame), tmp_path, "2013-01-03", "2013-01-03"
    )
    assert not result.success
    # Nothing was created over the broken table: its damaged log is still the only history.
    assert first_commit.read_text() == "this is not a delta log"


def test_a_window_load_opens_only_that_windows_files(two_weeks_lake: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(two_weeks_lake, lake)
    table_dir = lake / "cleaned" / "flights"
    # Remove every data file outside 2013-01-10: reading any of them would now fail.
    for day_dir in table_dir.glob("date=*"):
        if day_dir.name != "date=2013-01-10":
            shutil.rmtree(day_dir)

    io_manager = DeltaLakeIOManager(store=ObjectStore(root=str(lake)))
    context = build_input_context(
        asset_key=AssetKey(["cleaned", "flights"]),
        partition_key="2013-01-10",
        asset_partitions_def=DAILY_2013,
    )
    frame = io_manager.load_input(context)
    assert set(frame["date"]) == {dt.date(2013, 1, 10)}
    assert (
        len(frame)
        == expected_daily_counts(dt.date(2013, 1, 10), dt.date(2013, 1, 10))[dt.date(2013, 1, 10)]
    )


def test_a_deferred_input_is_read_when_the_step_asks_and_not_before(
    two_weeks_lake: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(two_weeks_lake, lake)
    io_manager = DeltaLakeIOManager(store=ObjectStore(root=str(lake)))

    def context(deferred: bool) -> InputContext:
        return build_input_context(
            asset_key=AssetKey(["cleaned", "flights"]),
            partition_key="2013-01-10",
            asset_partitions_def=DAILY_2013,
            dagster_type=PythonObjectDagsterType(DeferredFrame) if deferred else None,
        )

    deferred = io_manager.load_input(context(deferred=True))
    assert isinstance(deferred, DeferredFrame)
    # The same rows and types as a plain input of that window.
    pd.testing.assert_frame_equal(deferred.load(), io_manager.load_input(context(deferred=False)))

    # Nothing is read until load(): a day whose files go away in between fails only then.
    late = io_manager.load_input(context(deferred=True))
    shutil.rmtree(lake / "cleaned" / "flights" / "date=2013-01-10")
    with pytest.raises(OSError):
        late.load()


def test_output_metadata_describes_the_commit_per_partition(
    landing_dir: Path, tmp_path: Path
) -> None:
    instance = DagsterInstance.ephemeral()
    resources = build_resources(local_settings(landing_dir, tmp_path))
    second_day = dt.date(2013, 1, 2)
    assert run_window(resources, WEEK_START, second_day, "key:raw/flights", instance).success
    expected = expected_daily_counts(WEEK_START, second_day)
    events = instance.fetch_materializations(AssetKey(["raw", "flights"]), limit=10).records
    by_day = {e.partition_key: e.asset_materialization.metadata for e in events}
    assert set(by_day) == {"2013-01-01", "2013-01-02"}
    for day, metadata in by_day.items():
        # Each partition's event has its own rows, files and bytes, not the window's totals.
        assert metadata["dagster/row_count"].value == expected[dt.date.fromisoformat(day)]
        assert metadata["delta/files_written"].value == 1
        assert metadata["delta/bytes_written"].value > 10_000
        assert metadata["dagster/uri"].value == str(tmp_path / "raw" / "flights")
        assert metadata["dagster/table_name"].value == "raw.flights"
        assert (
            metadata["delta/version"].value
            == DeltaTable(str(tmp_path / "raw" / "flights")).version()
        )
    # The column schema, with the contract's descriptions, rides on the window's last event.
    columns = {c.name: c for c in by_day["2013-01-02"]["dagster/column_schema"].schema.columns}
    assert columns["carrier"].type == "string" and columns["carrier"].description
    assert "dagster/column_schema" not in by_day["2013-01-01"]
