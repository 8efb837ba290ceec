"""Quality measures as pure functions: the per-day scorecard and the drift statistics."""

import datetime as dt

import numpy as np
import pandas as pd

# The seed's standards, computed, not promised.
COMPLETENESS_TARGET = 0.999
ACCURACY_TARGET = 0.999  # 1 - quarantine rate
TIMELINESS_SLA_MINUTES = 60.0  # a landed file reaches cleaned within the hour
# Drift: a day against the same weekday of the 4 weeks before (volume), and against the 28 days
# before (distributions, two-sample Kolmogorov-Smirnov statistic).
DRIFT_HISTORY_DAYS = 28
VOLUME_RATIO_BOUNDS = (0.75, 1.25)
KS_THRESHOLD = 0.3
SCORECARD_COLUMNS = [
    "date", "table", "rows_delivered", "rows_cleaned", "rows_quarantined", "duplicates_removed",
    "schema_violations", "completeness", "accuracy", "timeliness_minutes", "timely", "consistent",
    "quality_score",
]  # fmt: skip


def _per_day(frame: pd.DataFrame, days: list[dt.date], value: pd.Series | None = None) -> pd.Series:
    counts = frame.groupby("date").size() if value is None else value.groupby(frame["date"]).sum()
    return counts.reindex(days, fill_value=0).astype("int64")


def build_scorecard(
    table: str,
    raw: pd.DataFrame,
    cleaned: pd.DataFrame,
    quarantine: pd.DataFrame,
    days: list[dt.date],
) -> pd.DataFrame:
    """Per day: completeness, accuracy, timeliness, consistency and a 0-100 quality score.

    - completeness: cleaned rows / distinct delivered rows (exact duplicates and rows superseded by a
      later delivery are not lost, they are expected);
    - accuracy: 1 - the share of delivered rows quarantined for breaking a rule;
    - timeliness: minutes from the last file landing to the cleaned commit, against the SLA;
    - consistency: no schema violation (unparseable lines, untypeable values); target zero;
    - quality score: the mean of the four, as a percentage (timeliness and consistency count 0 or 1).
    """
    rules = quarantine["rules"].astype("str") if len(quarantine) else pd.Series(dtype="str")
    superseded = rules.eq("superseded")
    schema = rules.str.contains(r"parse_error|\.type\b", regex=True)
    delivered = _per_day(raw, days)
    cleaned_rows = _per_day(cleaned, days)
    quarantined = _per_day(quarantine, days)
    superseded_rows = _per_day(quarantine, days, superseded.astype(int))
    schema_violations = _per_day(quarantine, days, schema.astype(int))
    duplicates = delivered - cleaned_rows - quarantined
    distinct = (delivered - duplicates - superseded_rows).clip(lower=0)
    completeness = (cleaned_rows / distinct.where(distinct > 0)).fillna(1.0).clip(upper=1.0)
    accuracy = 1 - ((quarantined - superseded_rows) / delivered.where(delivered > 0)).fillna(0.0)
    landed = raw.groupby("date")["_delivered_at"].max().reindex(days)
    committed = cleaned.groupby("date")["_cleaned_at"].max().reindex(days)
    minutes = (committed - landed).dt.total_seconds() / 60
    timely = minutes.le(TIMELINESS_SLA_MINUTES) & minutes.notna()
    consistent = schema_violations.eq(0)
    score = 100 * (completeness + accuracy + timely.astype(float) + consistent.astype(float)) / 4
    return pd.DataFrame(
        {
            "date": days,
            "table": table,
            "rows_delivered": delivered.to_numpy(),
            "rows_cleaned": cleaned_rows.to_numpy(),
            "rows_quarantined": quarantined.to_numpy(),
            "duplicates_removed": duplicates.to_numpy(),
            "schema_violations": schema_violations.to_numpy(),
            "completeness": completeness.to_numpy(),
            "accuracy": accuracy.to_numpy(),
            "timeliness_minutes": minutes.to_numpy(),
            "timely": timely.to_numpy(),
            "consistent": consistent.to_numpy(),
            "quality_score": score.to_numpy(),
        }
    ).astype(
        {c: "Int64" for c in SCORECARD_COLUMNS[2:7]}
        | {"timely": "boolean", "consistent": "boolean"}
    )


def ks_statistic(sample: np.ndarray, reference: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    sample, reference = np.sort(sample[~np.isnan(sample)]), np.sort(reference[~np.isnan(reference)])
    if not len(sample) or not len(reference):
        return 0.0
    grid = np.concatenate([sample, reference])
    gap = np.searchsorted(sample, grid, side="right") / len(sample) - np.searchsorted(
        reference, grid, side="right"
    ) / len(reference)
    return float(np.abs(gap).max())


def drift_report(frame: pd.DataFrame, days: list[dt.date], columns: list[str]) -> pd.DataFrame:
    """Per day: volume against the same weekday of the 4 weeks before, and KS per column against
    the 28 days before. ``frame`` must hold those days of history too. Days without history get NaN.
    """
    day_numbers = pd.to_datetime(frame["date"]).to_numpy("datetime64[D]").astype("int64")
    order = np.argsort(day_numbers, kind="stable")
    sorted_days = day_numbers[order]
    values = {c: frame[c].to_numpy("float64", na_value=np.nan)[order] for c in columns}

    def rows_between(first: int, last: int) -> slice:  # days first <= d < last, as a slice
        return slice(
            np.searchsorted(sorted_days, first, side="left"),
            np.searchsorted(sorted_days, last, side="left"),
        )

    rows = []
    for current in days:
        today = np.datetime64(current, "D").astype("int64")
        volume = rows_between(today, today + 1)
        count = volume.stop - volume.start
        history_volumes = [
            (s.stop - s.start)
            for s in (rows_between(today - 7 * w, today - 7 * w + 1) for w in range(1, 5))
            if s.stop > s.start
        ]
        record = {
            "date": current,
            "rows": int(count),
            "volume_ratio": count / np.mean(history_volumes) if history_volumes else np.nan,
        }
        history = rows_between(today - DRIFT_HISTORY_DAYS, today)
        for column in columns:
            record[f"ks_{column}"] = (
                ks_statistic(values[column][volume], values[column][history])
                if history.stop > history.start
                else np.nan
            )
        rows.append(record)
    return pd.DataFrame(rows)
