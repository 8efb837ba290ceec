"""Weather: the logic beyond typing that the registry entry names (``transform``)."""

from collections.abc import Mapping

import pandas as pd

from dataeng_assets.transforms.conform import local_to_utc


def build_observation_time(
    weather: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """``observed_at`` in UTC from the local year/month/day/hour.

    The hour repeated when daylight saving ends (2013-11-03 01:00) is delivered twice per airport;
    the delivered ``time_hour`` tells the two readings apart, so both observations are kept.
    """
    out = weather.copy(deep=False)  # copy-on-write: the new column never reaches the caller
    out["observed_at"] = local_to_utc(
        out[["year", "month", "day", "hour"]], hint_utc=out["time_hour"]
    )
    return out
