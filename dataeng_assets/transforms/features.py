"""The flight-delay feature table: pure functions over cleaned flights, weather and planes."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dataeng_assets.contracts import Contract

LOCAL_TZ = "America/New_York"
# DOT's definition: a flight is on time when it arrives less than 15 minutes late. Cancelled and
# diverted flights (no arrival delay) count as not on time, as in DOT's on-time statistics.
ON_TIME_MINUTES = 15
HISTORY_DAYS = 7
WEATHER_FEATURES = ["temp", "humid", "wind_speed", "precip", "visib"]
# The only columns of the cleaned tables the features read: the asset loads just these (a big
# day's cleaned flights have twice as many columns, and reading them back is a cost of the run).
FLIGHT_COLUMNS = [
    "date", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_at", "year",
    "cancelled", "dep_delay", "arr_delay",
]  # fmt: skip
WEATHER_COLUMNS = ["origin", "observed_at", *WEATHER_FEATURES]
PLANE_COLUMNS = ["tailnum", "year"]


def is_on_time(flights: pd.DataFrame) -> pd.Series:
    delay = flights["arr_delay"]
    arrived = delay.notna() & ~flights["cancelled"].fillna(False).astype(bool)
    return (arrived & (delay.fillna(float("inf")) < ON_TIME_MINUTES)).astype(bool)


def trailing_on_time(
    flights: pd.DataFrame, by: list[str], days: int = HISTORY_DAYS, prefix: str = ""
) -> pd.DataFrame:
    """Per group and day d: flights and on-time rate over days d-days .. d-1 (never d itself).

    Each day's counts are shifted forward by 1..days days and summed, so a day's own flights can
    only ever feed later days: point-in-time correct by construction.
    """
    day = pd.to_datetime(flights["date"])
    daily = (
        flights.assign(_day=day, _on_time=is_on_time(flights))
        .groupby([*by, "_day"], observed=True)["_on_time"]
        .agg(["size", "sum"])
        .reset_index()
    )
    shifted = pd.concat(
        [daily.assign(_day=daily["_day"] + pd.Timedelta(days=k)) for k in range(1, days + 1)],
        ignore_index=True,
    )
    window = shifted.groupby([*by, "_day"], observed=True)[["size", "sum"]].sum().reset_index()
    return pd.DataFrame(
        {
            **{column: window[column] for column in by},
            "_day": window["_day"],
            f"{prefix}flights_{days}d": window["size"].astype("Int64"),
            f"{prefix}on_time_rate_{days}d": window["sum"] / window["size"],
        }
    )


def build_flight_delay_features(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    contract: Contract,
) -> pd.DataFrame:
    """One row per flight whose local day is in [start, end).

    ``flights`` must also hold the HISTORY_DAYS days before ``start`` (for the trailing rates);
    ``weather`` the window's observations; ``planes`` the whole reference table.
    """
    day = pd.to_datetime(flights["date"])
    in_window = (day >= pd.Timestamp(start)) & (day < pd.Timestamp(end))
    target = flights.loc[in_window].assign(_day=day[in_window])

    carrier = trailing_on_time(flights, ["carrier"], prefix="carrier_")
    route = trailing_on_time(flights, ["origin", "dest"], prefix="route_")
    out = target.merge(carrier, on=["carrier", "_day"], how="left").merge(
        route, on=["origin", "dest", "_day"], how="left"
    )
    for counts in ("carrier_flights_7d", "route_flights_7d"):
        out[counts] = out[counts].fillna(0).astype("Int64")

    # Origin weather at the scheduled hour (both in UTC, so the repeated November hour is exact).
    observations = weather[["origin", "observed_at", *WEATHER_FEATURES]].drop_duplicates(
        ["origin", "observed_at"], keep="last"
    )
    out["_hour_utc"] = out["sched_dep_at"].dt.floor("h")
    out = out.merge(
        observations.rename(columns={"observed_at": "_hour_utc"}),
        on=["origin", "_hour_utc"],
        how="left",
    )

    build_year = planes[["tailnum", "year"]].rename(columns={"year": "_built"})
    out = out.merge(build_year, on="tailnum", how="left")
    out["plane_age"] = (out["year"] - out["_built"]).astype("Int64")

    local = out["sched_dep_at"].dt.tz_convert(LOCAL_TZ)
    out["sched_hour"] = local.dt.hour.astype("Int64")
    out["weekday"] = local.dt.day_of_week.astype("Int64")
    out["on_time"] = is_on_time(out).astype("boolean")
    return out[contract.column_names].reset_index(drop=True)
