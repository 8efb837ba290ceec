"""The flight-delay features as pure functions: point-in-time correctness above all."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from dataeng_assets.contracts import load_contract
from dataeng_assets.transforms.features import (
    FLIGHT_COLUMNS,
    PLANE_COLUMNS,
    WEATHER_COLUMNS,
    build_flight_delay_features,
    is_on_time,
)
from dataeng_assets_tests.conftest import read_table

CONTRACT = load_contract("features/flight_delay.yaml")
DAY = dt.date(2013, 1, 10)
RATES = [
    "carrier_on_time_rate_7d",
    "carrier_flights_7d",
    "route_on_time_rate_7d",
    "route_flights_7d",
]
KEY = ["carrier", "flight", "origin", "sched_dep_at"]


@pytest.fixture(scope="module")
def inputs(two_weeks_lake: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (
        read_table(str(two_weeks_lake / "cleaned" / "flights")),
        read_table(str(two_weeks_lake / "cleaned" / "weather")),
        read_table(str(two_weeks_lake / "cleaned" / "planes")),
    )


def _features_for_day(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame
) -> pd.DataFrame:
    frame = build_flight_delay_features(
        flights, weather, planes, DAY, DAY + dt.timedelta(days=1), CONTRACT
    )
    return frame.sort_values(KEY).reset_index(drop=True)


def _make_everything_late(flights: pd.DataFrame, days: pd.Series) -> pd.DataFrame:
    return flights.assign(arr_delay=flights["arr_delay"].mask(days, 500.0))


def test_the_declared_input_columns_are_all_the_features_need(inputs) -> None:
    """The asset loads only these columns of the cleaned tables: the features come out the same."""
    flights, weather, planes = inputs
    whole = _features_for_day(flights, weather, planes)
    pruned = _features_for_day(
        flights[FLIGHT_COLUMNS], weather[WEATHER_COLUMNS], planes[PLANE_COLUMNS]
    )
    assert len(whole) > 0
    pd.testing.assert_frame_equal(pruned, whole)


def test_nothing_from_the_same_or_a_later_day_leaks_into_the_rates(inputs) -> None:
    flights, weather, planes = inputs
    baseline = _features_for_day(flights, weather, planes)
    assert len(baseline) > 800

    same_or_later = flights["date"] >= DAY
    changed = _make_everything_late(flights, same_or_later)
    # Extra flights on the day itself must not be counted in that day's history either.
    extra = flights[flights["date"] == DAY].assign(flight=flights["flight"] + 10_000)
    changed = pd.concat([changed, extra], ignore_index=True)
    after = _features_for_day(changed, weather, planes)
    after = after[after["flight"] < 10_000].reset_index(drop=True)
    pd.testing.assert_frame_equal(baseline[RATES], after[RATES])
    # The labels did change: the mutation reached the day's own rows, just not its rates.
    assert (after["arr_delay"] == 500.0).all() and not baseline["arr_delay"].eq(500.0).all()


def test_the_seven_days_before_do_count_and_the_eighth_does_not(inputs) -> None:
    flights, weather, planes = inputs
    baseline = _features_for_day(flights, weather, planes)

    day_before = flights["date"] == DAY - dt.timedelta(days=1)
    changed = _features_for_day(_make_everything_late(flights, day_before), weather, planes)
    lower = changed["carrier_on_time_rate_7d"] < baseline["carrier_on_time_rate_7d"]
    assert (changed["carrier_on_time_rate_7d"] <= baseline["carrier_on_time_rate_7d"]).all()
    assert lower.mean() > 0.9  # every carrier that flew on the day before (a rare one may not)

    eighth = flights["date"] == DAY - dt.timedelta(days=8)
    untouched = _features_for_day(_make_everything_late(flights, eighth), weather, planes)
    pd.testing.assert_frame_equal(baseline[RATES], untouched[RATES])


def test_rates_equal_a_direct_count(inputs) -> None:
    flights, weather, planes = inputs
    features = _features_for_day(flights, weather, planes)
    history = flights[(flights["date"] >= DAY - dt.timedelta(days=7)) & (flights["date"] < DAY)]
    for carrier in ("UA", "B6", "EV"):
        mine = history[history["carrier"] == carrier]
        row = features[features["carrier"] == carrier].iloc[0]
        assert row["carrier_flights_7d"] == len(mine)
        assert row["carrier_on_time_rate_7d"] == pytest.approx(is_on_time(mine).mean())
    route = history[(history["origin"] == "JFK") & (history["dest"] == "LAX")]
    row = features[(features["origin"] == "JFK") & (features["dest"] == "LAX")].iloc[0]
    assert row["route_flights_7d"] == len(route)
    assert row["route_on_time_rate_7d"] == pytest.approx(is_on_time(route).mean())


def test_weather_is_the_origins_at_the_scheduled_hour(inputs) -> None:
    flights, weather, planes = inputs
    features = _features_for_day(flights, weather, planes)
    row = features[features["temp"].notna()].iloc[0]
    hour = row["sched_dep_at"].floor("h")
    observed = weather[(weather["origin"] == row["origin"]) & (weather["observed_at"] == hour)]
    assert len(observed) == 1 and observed["temp"].iloc[0] == row["temp"]
    local = row["sched_dep_at"].tz_convert("America/New_York")
    assert row["sched_hour"] == local.hour and row["weekday"] == local.day_of_week


def test_cancelled_and_diverted_flights_are_not_on_time() -> None:
    flights = pd.DataFrame(
        {
            "arr_delay": [-5.0, 14.0, 15.0, None, None],
            "cancelled": pd.array([False, False, False, True, False], dtype="boolean"),
        }
    )
    assert is_on_time(flights).tolist() == [True, True, False, False, False]
