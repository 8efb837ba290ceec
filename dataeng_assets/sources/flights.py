"""Flights: the logic beyond typing that the registry entry names (``transform``)."""

from collections.abc import Mapping

import pandas as pd

from dataeng_assets.transforms.conform import local_to_utc

DAY = pd.Timedelta(days=1)


def _local_clock_to_utc(flights: pd.DataFrame, hhmm: pd.Series, tz: str) -> pd.Series:
    """A local HHMM clock time on the row's year/month/day, in ``tz``, as UTC (2400 = midnight)."""
    minutes = (hhmm // 100) * 60 + hhmm % 100
    parts = flights[["year", "month", "day"]].assign(hour=(minutes // 60) % 24, minute=minutes % 60)
    return local_to_utc(parts, tz=tz) + pd.to_timedelta(
        (minutes // 1440).astype("float64"), unit="D"
    )


def build_flight_times(
    flights: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """Real UTC timestamps from the local schedule columns, the block time and the cancelled flag.

    ``sched_dep_at`` comes from year/month/day/hour/minute in America/New_York (the delivered UTC
    ``time_hour`` only disambiguates the repeated hour in November). ``dep_at`` is the scheduled
    departure plus the departure delay, which is right across midnight where the HHMM ``dep_time``
    alone is not. Arrivals are local to the destination: ``sched_arr_at`` reads ``sched_arr_time``
    in the destination airport's time zone (from the airports reference), on the next day when it
    would otherwise come before the departure; it stays null for an airport without a known zone.
    A flight without a departure time never left: ``cancelled``, kept, not dropped.
    """
    out = flights.copy()
    out["sched_dep_at"] = local_to_utc(
        out[["year", "month", "day", "hour", "minute"]], hint_utc=out["time_hour"]
    )
    out["dep_at"] = (
        out["sched_dep_at"] + pd.to_timedelta(out["dep_delay"], unit="min")
    ).dt.as_unit("us")
    out["cancelled"] = out["dep_time"].isna().astype("boolean")

    zones = references["airports"].set_index("faa")["tzone"].dropna()
    dest_zone = out["dest"].str.strip().str.upper().map(zones)
    sched_arr_at = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]")
    for zone, rows in out.groupby(dest_zone).groups.items():
        arrival = _local_clock_to_utc(out.loc[rows], out.loc[rows, "sched_arr_time"], str(zone))
        departure = out.loc[rows, "sched_dep_at"]
        sched_arr_at.loc[rows] = arrival.where(arrival >= departure, arrival + DAY)
    out["sched_arr_at"] = sched_arr_at
    out["arr_at"] = (sched_arr_at + pd.to_timedelta(out["arr_delay"], unit="min")).dt.as_unit("us")
    out["block_time"] = (out["arr_at"] - out["dep_at"]).dt.total_seconds() / 60
    return out
