"""Typing, conforming and de-duplicating a delivered table against its contract."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dataeng_assets.contracts import LINEAGE_COLUMNS, Contract

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


class ContractViolation(ValueError):
    """Delivered values that cannot be typed as the contract says. Carries the offending cells."""

    def __init__(self, table: str, problems: pd.DataFrame) -> None:
        self.table = table
        self.problems = problems
        lines = [f"{table}: {len(problems)} value(s) cannot be typed as the contract says"]
        for _, row in problems.head(5).iterrows():
            lines.append(
                f"  {row['_source_file']} row {row['_source_row']}: column {row['column']!r} "
                f"value {row['value']!r} ({row['reason']})"
            )
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class CleanResult:
    frame: pd.DataFrame
    rows_in: int
    exact_duplicates_removed: int
    key_duplicates_removed: int

    @property
    def rows_out(self) -> int:
        return len(self.frame)


def _as_missing(values: pd.Series, na_values: frozenset[str]) -> pd.Series:
    """Strings listed as missing (after stripping) become NA; other values are left as they are."""
    if not pd.api.types.is_string_dtype(values):
        return values
    stripped = values.str.strip()
    return stripped.mask(stripped.isin(na_values))


def _cast_column(values: pd.Series, type_name: str) -> pd.Series:
    """Cast one column; unparseable values become NA (the caller reports them)."""
    if type_name == "string":
        return values.astype("str").mask(values.isna())
    if type_name in ("int", "float"):
        numbers = pd.to_numeric(values, errors="coerce")
        if type_name == "float":
            return numbers.astype("float64")
        numbers = numbers.astype("float64")
        # A non-integral value ("12.5") is not an int: treat it like an unparseable one.
        numbers = numbers.where(np.floor(numbers) == numbers)
        return numbers.astype("Int64")
    if type_name == "bool":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean")
        lowered = values.astype("str").str.lower()
        return pd.Series(
            np.select([lowered.isin(_TRUE), lowered.isin(_FALSE)], [True, False], default=None),
            index=values.index,
            dtype="boolean",
        ).mask(values.isna())
    if type_name == "date":
        first = values.dropna().iloc[0] if values.notna().any() else None
        if isinstance(first, dt.date) and not isinstance(first, dt.datetime):
            return values  # already dates (the partition column set by the raw layer)
        return pd.to_datetime(values, errors="coerce", format="ISO8601").dt.date
    if type_name == "timestamp":
        stamps = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        return stamps.dt.as_unit("us")
    raise ValueError(f"unknown type {type_name!r}")


def cast_to_contract(
    frame: pd.DataFrame, contract: Contract, na_values: Iterable[str] = ("", "NA")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type every contract column present in ``frame``.

    Returns the typed frame and the problems: one row per cell that was delivered but could not be
    typed (column, value, reason, and the row's lineage), so that nothing is lost without a trace.
    """
    missing_tokens = frozenset(na_values)
    typed = frame.copy()
    problems: list[pd.DataFrame] = []
    for spec in contract.columns:
        if spec.name not in frame.columns or spec.name in LINEAGE_COLUMNS:
            continue
        delivered = _as_missing(frame[spec.name], missing_tokens)
        cast = _cast_column(delivered, spec.type)
        failed = cast.isna() & delivered.notna()
        if failed.any():
            bad = frame.loc[failed, [c for c in ("_source_file", "_source_row") if c in frame]]
            problems.append(
                bad.assign(
                    column=spec.name,
                    value=delivered[failed].astype("str"),
                    reason=f"not a valid {spec.type}",
                )
            )
        typed[spec.name] = cast
    columns = ["_source_file", "_source_row", "column", "value", "reason"]
    report = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(columns=columns)
    return typed, report


def normalise_keys(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Join keys stripped and upper-cased, so 'ua ' and 'UA' join; blank becomes missing."""
    out = frame.copy()
    for column in columns:
        if column in out:
            values = out[column].str.strip().str.upper()
            out[column] = values.mask(values == "")
    return out


def drop_exact_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows equal in every delivered column (lineage ignored); the first delivered one is kept."""
    data_columns = [c for c in frame.columns if c not in LINEAGE_COLUMNS]
    duplicated = frame.duplicated(subset=data_columns, keep="first")
    return frame.loc[~duplicated], int(duplicated.sum())


def drop_key_duplicates(frame: pd.DataFrame, key: Iterable[str]) -> tuple[pd.DataFrame, int]:
    """Rows sharing a natural key: the last delivered one wins (a correction supersedes)."""
    key = list(key)
    if not key:
        return frame, 0
    order = [c for c in ("_source_file", "_source_row") if c in frame]
    ordered = frame.sort_values(order, kind="stable") if order else frame
    duplicated = ordered.duplicated(subset=key, keep="last")
    return ordered.loc[~duplicated], int(duplicated.sum())


def local_to_utc(
    parts: pd.DataFrame, tz: str = "America/New_York", hint_utc: pd.Series | None = None
) -> pd.Series:
    """UTC timestamps from local year/month/day/hour[/minute] columns.

    In the repeated hour when daylight saving ends, the local time alone is ambiguous: ``hint_utc``
    (a delivered UTC hour) picks the matching reading; without it the first (daylight) reading is
    used. A time skipped when daylight saving starts (02:30 on 10 March) is read one hour later.
    """
    columns = [c for c in ("year", "month", "day", "hour", "minute") if c in parts]
    naive = pd.to_datetime(parts[columns].astype("float64"), errors="coerce")
    first = naive.dt.tz_localize(
        tz, ambiguous=np.ones(len(naive), bool), nonexistent=pd.Timedelta(hours=1)
    ).dt.tz_convert("UTC")
    if hint_utc is None:
        return first.dt.as_unit("us")
    second = naive.dt.tz_localize(
        tz, ambiguous=np.zeros(len(naive), bool), nonexistent=pd.Timedelta(hours=1)
    ).dt.tz_convert("UTC")
    # Only where the two readings differ (the repeated hour) does the hint decide.
    use_second = first.ne(second) & second.dt.floor("h").eq(hint_utc.dt.floor("h")).fillna(False)
    return first.where(~use_second, second).dt.as_unit("us")


def clean_table(
    raw: pd.DataFrame,
    contract: Contract,
    *,
    natural_key: Iterable[str] = (),
    normalise: Iterable[str] = (),
    na_values: Iterable[str] = ("", "NA"),
    transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> CleanResult:
    """Raw (all strings, as delivered) to cleaned: typed, transformed, normalised, de-duplicated.

    Raises ContractViolation when a delivered value cannot be typed: no row is dropped silently.
    """
    typed, problems = cast_to_contract(raw, contract, na_values)
    if len(problems):
        raise ContractViolation(contract.name, problems)
    if transform is not None:
        typed = transform(typed)
    typed = normalise_keys(typed, normalise)
    typed, exact = drop_exact_duplicates(typed)
    typed, by_key = drop_key_duplicates(typed, natural_key)
    lineage = [c for c in LINEAGE_COLUMNS if c in typed]
    out = typed[contract.column_names + lineage].reset_index(drop=True)
    return CleanResult(out, len(raw), exact, by_key)
