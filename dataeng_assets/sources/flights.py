"""Flights: the logic beyond typing that the registry entry names (``transform``)."""

from __future__ import annotations

import pandas as pd

from dataeng_assets.transforms.conform import local_to_utc


def build_flight_times(flights: pd.DataFrame) -> pd.DataFrame:
    """Real UTC timestamps from the local schedule columns, and the cancelled flag.

    ``sched_dep_at`` comes from year/month/day/hour/minute in America/New_York (the delivered UTC
    ``time_hour`` only disambiguates the repeated hour in November). ``dep_at`` is the scheduled
    departure plus the departure delay, which is right across midnight where the HHMM ``dep_time``
    alone is not. A flight without a departure time never left: ``cancelled``, kept, not dropped.
    """
    out = flights.copy()
    out["sched_dep_at"] = local_to_utc(
        out[["year", "month", "day", "hour", "minute"]], hint_utc=out["time_hour"]
    )
    delay = pd.to_timedelta(out["dep_delay"], unit="min")
    out["dep_at"] = (out["sched_dep_at"] + delay).dt.as_unit("us")
    out["cancelled"] = out["dep_time"].isna().astype("boolean")
    return out
