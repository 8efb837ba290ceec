"""The real assets on real files: landing CSVs -> raw -> cleaned -> features, in local Delta tables."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from dataeng_assets.landing.replay import read_package_table
from dataeng_assets.resources import build_resources
from dataeng_assets_tests.conftest import (
    FIRST_DAY,
    LAST_DAY,
    expected_daily_counts,
    local_settings,
    read_table,
    run_window,
)


def _daily_counts(frame: pd.DataFrame) -> dict[dt.date, int]:
    return {d: int(n) for d, n in frame["date"].value_counts().items()}


def test_raw_and_cleaned_flights_match_the_package_day_by_day(two_weeks_lake: Path) -> None:
    expected = expected_daily_counts(FIRST_DAY, LAST_DAY)
    assert len(expected) == 14 and sum(expected.values()) > 11_000
    raw = read_table(str(two_weeks_lake / "raw" / "flights"))
    cleaned = read_table(str(two_weeks_lake / "cleaned" / "flights"))
    assert _daily_counts(raw) == expected
    assert _daily_counts(cleaned) == expected


def test_raw_rows_carry_their_source_file_and_load_time(two_weeks_lake: Path) -> None:
    raw = read_table(str(two_weeks_lake / "raw" / "flights"))
    assert (raw["_source_file"] == raw["date"].map(lambda d: f"flights/{d.isoformat()}.csv")).all()
    assert raw["_loaded_at"].notna().all() and str(raw["_loaded_at"].dtype) == "datetime64[us, UTC]"
    # Raw keeps values as delivered: the literal NA of the CSV is still there.
    assert (raw["dep_time"] == "NA").sum() > 0


def test_cleaned_flights_have_real_utc_times_and_flag_cancellations(two_weeks_lake: Path) -> None:
    cleaned = read_table(str(two_weeks_lake / "cleaned" / "flights"))
    first = cleaned[
        (cleaned["carrier"] == "UA")
        & (cleaned["flight"] == 1545)
        & (cleaned["date"] == dt.date(2013, 1, 1))
    ].iloc[0]
    # UA 1545 left EWR at 05:15 local (EST, UTC-5) on 2013-01-01, 2 minutes late.
    assert first["sched_dep_at"] == pd.Timestamp("2013-01-01T10:15:00Z")
    assert first["dep_at"] == pd.Timestamp("2013-01-01T10:17:00Z")
    # A departure after midnight (delayed from the evening before) is placed on the next day.
    late = cleaned[(cleaned["dep_time"] < 100) & (cleaned["sched_dep_time"] > 2000)].iloc[0]
    assert late["dep_at"] - late["sched_dep_at"] == pd.Timedelta(minutes=late["dep_delay"])
    assert late["dep_at"].tz_convert("America/New_York").date() > late["date"]

    package = read_package_table("flights").to_pandas()
    in_window = package[(package["month"] == "1") & package["day"].astype(int).between(1, 14)]
    assert int(cleaned["cancelled"].sum()) == int((in_window["dep_time"] == "NA").sum()) > 0
    assert cleaned.loc[cleaned["cancelled"], "dep_at"].isna().all()
    assert (
        str(cleaned["flight"].dtype) == "Int64"
        and str(cleaned["sched_dep_at"].dtype) == "datetime64[us, UTC]"
    )


def test_reference_tables_are_cleaned_snapshots(two_weeks_lake: Path) -> None:
    airlines = read_table(str(two_weeks_lake / "cleaned" / "airlines"))
    planes = read_table(str(two_weeks_lake / "cleaned" / "planes"))
    airports = read_table(str(two_weeks_lake / "cleaned" / "airports"))
    assert len(airlines) == 16 and set(airlines["carrier"]) >= {"UA", "AA", "B6", "DL"}
    assert len(planes) == 3322 and planes["tailnum"].is_unique
    assert len(airports) == 1458 and str(airports["lat"].dtype) == "float64"
    # "NA" in a typed column is missing, not text.
    assert planes["speed"].isna().sum() > 3000


def test_features_have_one_row_per_cleaned_flight(two_weeks_lake: Path) -> None:
    cleaned = read_table(str(two_weeks_lake / "cleaned" / "flights"))
    features = read_table(str(two_weeks_lake / "features" / "flight_delay"))
    key = ["carrier", "flight", "origin", "sched_dep_at"]
    assert len(features) == len(cleaned)
    assert not features.duplicated(key).any()
    assert set(map(tuple, features[key].values)) == set(map(tuple, cleaned[key].values))
    # The first day has no history: no rate, zero flights counted.
    day_one = features[features["date"] == FIRST_DAY]
    assert day_one["carrier_on_time_rate_7d"].isna().all()
    assert (day_one["carrier_flights_7d"] == 0).all()
    later = features[features["date"] == dt.date(2013, 1, 9)]
    assert later["carrier_on_time_rate_7d"].between(0, 1).all()
    # Weather exists for almost every scheduled hour; plane age where the plane is known.
    assert features["temp"].notna().mean() > 0.95
    assert features["plane_age"].notna().mean() > 0.8


# When a row was loaded changes from one run to the next; nothing else may.
LOAD_TIMES = {"_loaded_at", "_cleaned_at", "_delivered_at", "quarantined_at", "run_id"}
ALL_TABLES = [
    *((layer, t) for layer in ("raw", "cleaned", "quarantine")
      for t in ("flights", "weather", "airlines", "airports", "planes")),
    ("features", "flight_delay"),
]  # fmt: skip


def test_running_the_whole_window_again_leaves_the_same_tables(
    two_weeks_lake: Path, landing_dir: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(two_weeks_lake, lake)
    before = {key: read_table(str(lake.joinpath(*key))) for key in ALL_TABLES}
    assert run_window(
        build_resources(local_settings(landing_dir, lake)), FIRST_DAY, LAST_DAY
    ).success
    for key in ALL_TABLES:
        after = read_table(str(lake.joinpath(*key)))
        columns = [c for c in before[key].columns if c not in LOAD_TIMES]
        order = columns[: min(6, len(columns))]
        pd.testing.assert_frame_equal(
            before[key][columns].sort_values(order).reset_index(drop=True),
            after[columns].sort_values(order).reset_index(drop=True),
            obj="/".join(key),
        )
