"""Flights: the logic beyond typing that the registry entry names (``transform``)."""

from collections.abc import Mapping

import numpy as np
import pandas as pd

from dataeng_assets.transforms.conform import distinct_rows, local_to_utc

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
    out = flights.copy(deep=False)  # copy-on-write: the new columns never reach the caller's frame
    out["sched_dep_at"] = local_to_utc(
        out[["year", "month", "day", "hour", "minute"]], hint_utc=out["time_hour"]
    )
    out["dep_at"] = (
        out["sched_dep_at"] + pd.to_timedelta(out["dep_delay"], unit="min")
    ).dt.as_unit("us")
    out["cancelled"] = out["dep_time"].isna().astype("boolean")

    arrival = _scheduled_arrival(out, references["airports"])
    sched_arr_at = arrival.where(arrival >= out["sched_dep_at"], arrival + DAY)
    out["sched_arr_at"] = sched_arr_at
    out["arr_at"] = (sched_arr_at + pd.to_timedelta(out["arr_delay"], unit="min")).dt.as_unit("us")
    out["block_time"] = (out["arr_at"] - out["dep_at"]).dt.total_seconds() / 60
    return out


def _scheduled_arrival(flights: pd.DataFrame, airports: pd.DataFrame) -> pd.Series:
    """``sched_arr_time`` on the row's local day, read in the destination's zone, as UTC (NaT when
    the destination has no known zone).

    A big day repeats the same few thousand (zone, day, arrival minute) combinations millions of
    times: each is converted once, zone by zone, and spread to its rows, instead of selecting every
    zone's rows out of the whole frame.
    """
    zones = airports.set_index("faa")["tzone"].dropna()
    dest_codes, destinations = pd.factorize(flights["dest"])
    zone_codes, zone_names = pd.factorize(
        pd.Series(destinations).str.strip().str.upper().map(zones)
    )
    zone = np.append(zone_codes, -1)[dest_codes]  # a missing destination (-1) has no zone (-1)
    keys = flights[["year", "month", "day", "sched_arr_time"]].assign(zone=zone)
    groups, representatives = distinct_rows(keys, list(keys.columns))
    distinct = keys.iloc[representatives].reset_index(drop=True)
    arrival = pd.Series(pd.NaT, index=distinct.index, dtype="datetime64[us, UTC]")
    for code, name in enumerate(zone_names):
        rows = distinct.index[distinct["zone"] == code]
        arrival.loc[rows] = _local_clock_to_utc(
            distinct.loc[rows], distinct.loc[rows, "sched_arr_time"], str(name)
        )
    return pd.Series(arrival.array.take(groups), index=flights.index, copy=False)
