"""Raw to cleaned: typing, conforming, rule actions, quarantine and de-duplication against a contract.

Every raw row ends in exactly one place: the cleaned table, the quarantine (with its reasons), or the
count of exact duplicates. ``CleanResult`` carries the three, and ``rows_in == rows_out +
rows_quarantined + exact_duplicates_removed`` holds by construction (and is checked on every run).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import ExtensionArray

from dataeng_assets.contracts import (
    CLEANED_AT_COLUMN,
    LINEAGE_COLUMNS,
    PARTITION_COLUMN,
    PLATFORM_COLUMNS,
    ColumnSpec,
    Contract,
    Rule,
)

LOCAL_TZ = "America/New_York"
_STR = pd.StringDtype(na_value=np.nan)  # pandas 3's default "str"
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
QUARANTINE_COLUMNS = [
    "_source_file",
    "_source_row",
    "layer",
    "rules",
    "reasons",
    "record",
    "raw_text",
]
# A transform takes the typed frame and the reference tables it may need (by source name).
Transform = Callable[[pd.DataFrame, Mapping[str, pd.DataFrame]], pd.DataFrame]


class ContractViolation(ValueError):
    """Rows that break a rule whose action is ``fail``: the partition stops, nothing is written."""

    def __init__(self, table: str, failures: pd.DataFrame) -> None:
        self.table = table
        self.failures = failures
        lines = [f"{table}: {len(failures)} row(s) break a rule whose action is 'fail'"]
        for _, row in failures.head(5).iterrows():
            lines.append(
                f"  {row['_source_file']} row {row['_source_row']}: [{row['rule']}] {row['reason']}"
            )
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class CleanResult:
    frame: pd.DataFrame  # the cleaned rows
    quarantine: pd.DataFrame  # one row per quarantined raw row (QUARANTINE_COLUMNS + date)
    rows_in: int
    exact_duplicates_removed: int
    violations: pd.DataFrame  # every rule broken: rule, action, _source_file, _source_row, reason
    rule_counts: dict[str, int] = field(default_factory=dict)
    # Each delivered row's day (the partition column), for each day's row accounting; None when
    # the delivered rows have no day.
    delivered_days: pd.DataFrame | None = None

    @property
    def rows_out(self) -> int:
        return len(self.frame)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + self.rows_quarantined + self.exact_duplicates_removed


def _as_missing(values: pd.Series, na_values: frozenset[str]) -> pd.Series:
    """Strings listed as missing (after stripping) become NA; other values are left as they are."""
    if not pd.api.types.is_string_dtype(values):
        return values
    strings = _arrow_strings(values)
    if strings is not None:
        # The same kernels pandas would call (trim, is_in), on the Arrow data directly, without
        # Series.mask's generic where path (4x slower on a big day).
        stripped = pc.utf8_trim_whitespace(strings)
        blanked = _nulls_where(stripped, _is_token(stripped, na_values))
        return pd.Series(
            values.dtype.__from_arrow__(blanked), index=values.index, name=values.name, copy=False
        )
    stripped = values.str.strip()
    return stripped.mask(stripped.isin(na_values))


def _arrow_strings(values: pd.Series) -> pa.ChunkedArray | None:
    """The column's Arrow data when pandas holds it in Arrow (pandas 3's default str), else None.
    Kept in its chunks: joining them would copy every string."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        return None
    strings = pa.array(values)
    return strings if isinstance(strings, pa.ChunkedArray) else pa.chunked_array([strings])


def _is_token(strings: pa.ChunkedArray, na_values: frozenset[str]) -> pa.ChunkedArray:
    return pc.is_in(strings, value_set=pa.array(sorted(na_values), strings.type))


def _nulls_where(strings: pa.ChunkedArray, missing: pa.ChunkedArray) -> pa.ChunkedArray:
    """``strings`` with the ``missing`` ones null: only the validity bitmaps are new, where
    ``if_else`` would copy every string (the slowest step of typing a big day)."""
    if [len(c) for c in strings.chunks] != [len(c) for c in missing.chunks]:
        return pc.if_else(missing, pa.scalar(None, strings.type), strings)
    chunks = []
    for chunk, blank in zip(strings.chunks, missing.chunks, strict=True):
        valid = pc.and_not(pc.is_valid(chunk), blank)
        if chunk.offset or valid.offset:  # a sliced chunk: the bitmaps would not line up
            chunks.append(pc.if_else(blank, pa.scalar(None, chunk.type), chunk))
        else:
            buffers = [valid.buffers()[1], *chunk.buffers()[1:]]
            chunks.append(pa.Array.from_buffers(chunk.type, len(chunk), buffers))
    return pa.chunked_array(chunks, strings.type)


_ARROW_CASTS = {
    "int": pa.int64(),
    "float": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def _arrow_cast(values: pd.Series, type_name: str) -> pd.Series | None:
    """The whole column cast by Arrow (tens of times faster than pandas), or None when any value
    does not parse: then the per-value path finds which ones."""
    try:
        cast = pc.cast(pa.array(values, from_pandas=True), _ARROW_CASTS[type_name])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return _from_arrow(cast, values.index)


def _from_arrow(cast: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """A cast column as the dtype the contract's type maps to (Int64, float64, timestamp[us]),
    built from the Arrow buffers: ``to_pandas`` and ``__from_arrow__`` copy them twice."""
    if pa.types.is_integer(cast.type):
        if cast.null_count:
            mask = pc.is_null(cast).to_numpy(zero_copy_only=False)
            numbers = pc.fill_null(cast, 0).to_numpy()
        else:
            mask = np.zeros(len(cast), dtype=bool)
            numbers = cast.to_numpy()
        # Positional: the column's own labels (rows may have been dropped before). Copied once,
        # so that the values are pandas' own (writable), not views of Arrow's read-only buffers.
        values = pd.arrays.IntegerArray(np.array(numbers, dtype=np.int64), mask)
        return pd.Series(values, index=index, copy=False)
    if pa.types.is_floating(cast.type):  # nulls become NaN, as to_pandas makes them
        numbers = np.array(cast.to_numpy(zero_copy_only=False), dtype=np.float64)
        return pd.Series(numbers, index=index, copy=False)
    typed = cast.to_pandas()
    typed.index = index
    return typed


def _cast_delivered(
    delivered: pd.Series, type_name: str, na_values: frozenset[str]
) -> tuple[pd.Series, np.ndarray] | None:
    """The fast path of typing a column of Arrow strings: cast as delivered, without stripping.

    Returns the typed column and which values were delivered (not missing), or None when any
    value does not cast: then the column goes the full way (strip, mark missing, cast, find the
    bad values). Arrow's parsers reject surrounding blanks, so a column that casts unstripped
    has none (a padded "NA" fails too), and stripping would change nothing but cost a copy.
    """
    strings = _arrow_strings(delivered)
    if type_name not in _ARROW_CASTS or strings is None:
        return None
    blanked = _nulls_where(strings, _is_token(strings, na_values))
    try:
        cast = pc.cast(blanked, _ARROW_CASTS[type_name])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return _from_arrow(cast, delivered.index), pc.is_valid(blanked).to_numpy(zero_copy_only=False)


_INT64_LIMIT = 2.0**63
_INT64_DIGITS = pa.decimal128(19, 0)


def _digits_to_int(values: pd.Series) -> pd.Series:
    """Strings of digits as Int64; anything else, and anything beyond int64, becomes NA.

    Digits only: "1545.0" is a float where the contract promises an int, i.e. the upstream type
    changed; it is reported, not silently rounded. Parsed exactly as decimals (through float64 an
    integer above 2**53 would be rounded), and a value out of int64's range is a bad value like
    any other, not a crash of the cast.
    """
    digits = values.where(values.str.fullmatch(r"[+-]?\d{1,19}"))
    exact = pc.cast(pa.array(digits, from_pandas=True, type=pa.string()), _INT64_DIGITS)
    low, high = (pa.scalar(v).cast(_INT64_DIGITS) for v in (-(2**63), 2**63 - 1))
    fits = pc.and_(pc.greater_equal(exact, low), pc.less_equal(exact, high))
    return _from_arrow(pc.cast(pc.if_else(fits, exact, None), pa.int64()), values.index)


def _cast_column(values: pd.Series, type_name: str) -> pd.Series:
    """Cast one column; unparseable values become NA (the caller reports them)."""
    if type_name in _ARROW_CASTS and pd.api.types.is_string_dtype(values):
        fast = _arrow_cast(values, type_name)
        if fast is not None:
            return fast
    if type_name == "string":
        if values.dtype == _STR:  # already str, missing values already NA: nothing to redo
            return values
        return values.astype("str").mask(values.isna())
    if type_name == "float":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if type_name == "int":
        if pd.api.types.is_string_dtype(values):
            return _digits_to_int(values)
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        whole = (np.floor(numbers) == numbers) & (numbers.abs() < _INT64_LIMIT)
        return numbers.where(whole).astype("Int64")
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
    typed (row label, column, value, rule, reason), so that nothing is lost without a trace.
    """
    missing_tokens = frozenset(na_values)
    # Shallow: every typed column replaces the delivered one, and copy-on-write keeps the caller's
    # frame untouched, so copying 4M rows of strings first would only double the peak memory.
    typed = frame.copy(deep=False)
    problems: list[pd.DataFrame] = []
    specs = [
        s for s in contract.columns if s.name in frame.columns and s.name not in PLATFORM_COLUMNS
    ]
    columns = [frame[spec.name] for spec in specs]

    def fast_cast(column: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, np.ndarray] | None:
        fast = _cast_delivered(column, spec.type, missing_tokens)
        if fast is None:
            return None
        cast, present = fast
        return cast, np.flatnonzero(cast.isna().to_numpy() & present)

    # The fast casts are Arrow kernels, which release the GIL: the columns are cast on every core
    # at once (each column on its own, so the result is the same as one by one), and each keeps
    # only its failed positions, not a mask of the whole day.
    with ThreadPoolExecutor(max_workers=max(1, min(len(specs), os.cpu_count() or 1))) as pool:
        fast_casts = list(pool.map(fast_cast, columns, specs))
    for spec, column, fast in zip(specs, columns, fast_casts, strict=True):
        if fast is not None:
            cast, failed = fast
        else:
            delivered = _as_missing(column, missing_tokens)
            cast = _cast_column(delivered, spec.type)
            failed = np.flatnonzero(cast.isna().to_numpy() & delivered.notna().to_numpy())
        if len(failed):
            values = _as_missing(column.iloc[failed], missing_tokens).astype("str")
            problems.append(
                pd.DataFrame(
                    {
                        "row": values.index,
                        "rule": f"{spec.name}.type",
                        "action": "drop",
                        "reason": f"{spec.name}: "
                        + values.map(repr)
                        + f" is not a valid {spec.type}",
                    }
                )
            )
        typed[spec.name] = cast
    return typed, _concat(problems)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    columns = ["row", "rule", "action", "reason"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def normalise_keys(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Join keys stripped and upper-cased, so 'ua ' and 'UA' join; blank becomes missing."""
    out = frame.copy(deep=False)  # copy-on-write: the replaced columns never reach the caller's
    for column in columns:
        if column in out:
            values = out[column].str.strip().str.upper()
            out[column] = values.mask(values == "")
    return out


def _codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Each value as a small non-negative integer (missing: one code of its own), and how many
    codes there can be. Integers are offset by their minimum rather than hashed."""
    if pd.api.types.is_signed_integer_dtype(values.dtype):
        missing = values.isna().to_numpy()
        data = values.to_numpy(dtype=np.int64, na_value=0)
        present = data[~missing] if missing.any() else data
        low, high = (int(present.min()), int(present.max())) if len(present) else (0, 0)
        if high - low < 2**31:
            codes = data - low
            codes[missing] = high - low + 1
            return codes, high - low + 2
    codes, uniques = pd.factorize(values)
    return np.where(codes < 0, len(uniques), codes), len(uniques) + 1


def _renumber(key: np.ndarray, bound: int) -> tuple[np.ndarray, int]:
    """Group numbers 0..count-1 for ``key`` (non-negative, below ``bound``), and the count."""
    if bound <= 4 * len(key) + 1024:  # a small key space: a lookup table, not a hash table
        present = np.zeros(bound, dtype=bool)
        present[key] = True
        # int32 and in place: the table can have 16M slots on a 4M-row day (0.25 GiB as int64,
        # twice over with the subtraction).
        lookup = np.cumsum(present, dtype=np.int32)
        lookup -= 1
        return lookup[key].astype(np.int64), int(present.sum())
    # A large key space: numbered in sorted order. Half the time and memory of a hash table
    # (pd.factorize) over a 4M-row day whose keys are nearly all distinct.
    order = np.argsort(key)
    ordered = key[order]
    starts = np.empty(len(key), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    del ordered
    numbers = np.cumsum(starts, dtype=np.int64)
    numbers -= 1
    groups = np.empty_like(numbers)
    groups[order] = numbers
    return groups, int(numbers[-1]) + 1 if len(numbers) else 0


def _repeated(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Which rows share all of ``columns`` with another row (missing equals missing), as a mask.

    What ``DataFrame.duplicated`` compares, without hashing every column over every row: nearly
    all rows of a day are told apart by their first few columns, so each column is encoded only
    over the rows still tied after the ones before it (cheap numeric columns first).
    """
    candidates = np.arange(len(frame))
    groups, count = np.zeros(len(frame), dtype=np.int64), 1
    for column in sorted(columns, key=lambda c: not pd.api.types.is_numeric_dtype(frame[c])):
        if not len(candidates):
            break
        values = frame[column]
        codes, size = _codes(values.iloc[candidates] if len(candidates) < len(values) else values)
        # In place (groups is always this function's own array): on a 4M-row day where every
        # key column must be read over every row, each temporary is 32 MB.
        groups *= size
        groups += codes
        del codes
        groups, count = _renumber(groups, count * size)
        tied = (np.bincount(groups, minlength=count) > 1)[groups]
        candidates, groups = candidates[tied], groups[tied]
    repeated = np.zeros(len(frame), dtype=bool)
    repeated[candidates] = True
    return repeated


def drop_exact_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows equal in every delivered column (lineage ignored); the first delivered one is kept."""
    data_columns = [c for c in frame.columns if c not in PLATFORM_COLUMNS]
    tied = _repeated(frame, data_columns)
    if not tied.any():
        return frame.copy(deep=False), 0
    duplicated = np.zeros(len(frame), dtype=bool)
    # Only the tied rows can be duplicates: pandas' own rule (keep the first) decides among them.
    duplicated[tied] = frame.loc[tied, data_columns].duplicated(keep="first").to_numpy()
    return frame.loc[~duplicated], int(duplicated.sum())


def superseded_rows(frame: pd.DataFrame, key: Iterable[str]) -> pd.Index:
    """Rows sharing a natural key with a later delivery (the last delivered row wins)."""
    key = list(key)
    if not key or frame.empty:
        return frame.index[:0]
    # Only rows whose key repeats can be superseded; sorting just those keeps their delivery order
    # (a stable sort), without reordering the whole frame.
    order = [c for c in ("_source_file", "_source_row") if c in frame]
    tied = frame.loc[_repeated(frame, key), [*dict.fromkeys(key + order)]]
    ordered = tied.sort_values(order, kind="stable") if order else tied
    return ordered.index[ordered.duplicated(subset=key, keep="last")]


def distinct_rows(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by their values in ``columns`` (missing equals missing): a group number per
    row, and one row position of each group."""
    rows = len(frame)
    key, bound = np.zeros(rows, dtype=np.int64), 1
    for column in columns:
        codes, size = _codes(frame[column])
        if bound * size >= 2**62:  # renumber the groups so far before the key could overflow
            key, uniques = pd.factorize(key)
            bound = len(uniques)
        key *= size  # in place: key is this function's own array
        key += codes
        bound *= size
    groups, count = _renumber(key, bound)
    representatives = np.empty(count, dtype=np.intp)
    representatives[groups] = np.arange(rows)  # any row of a group stands for all of it
    return groups, representatives


def _localize(naive: pd.Series, tz: str, daylight: bool) -> pd.Series:
    """Local wall-clock times in ``tz`` as UTC; an ambiguous one read as daylight time or not, a
    skipped one an hour later."""
    ambiguous = np.full(len(naive), daylight)
    localized = naive.dt.tz_localize(tz, ambiguous=ambiguous, nonexistent=pd.Timedelta(hours=1))
    return localized.dt.tz_convert("UTC")


def local_to_utc(
    parts: pd.DataFrame, tz: str = LOCAL_TZ, hint_utc: pd.Series | None = None
) -> pd.Series:
    """UTC timestamps from local year/month/day/hour[/minute] columns (NaT for impossible dates).

    In the repeated hour when daylight saving ends, the local time alone is ambiguous: ``hint_utc``
    (a delivered UTC hour) picks the matching reading; without it the first (daylight) reading is
    used. A time skipped when daylight saving starts (02:30 on 10 March) is read one hour later.
    """
    columns = [c for c in ("year", "month", "day", "hour", "minute") if c in parts]
    # A day has at most 1440 local minutes however many rows it has: each distinct local time is
    # converted once (pandas' own parsing and time-zone rules) and spread to its rows.
    groups, representatives = distinct_rows(parts, columns)
    naive = pd.to_datetime(parts[columns].iloc[representatives].astype("float64"), errors="coerce")
    first = _localize(naive, tz, daylight=True)

    def spread(values: pd.Series) -> pd.Series:
        return pd.Series(values.array.take(groups), index=parts.index, copy=False)

    if hint_utc is None:
        return spread(first).dt.as_unit("us")
    second = _localize(naive, tz, daylight=False)
    # Only where the two readings differ (the repeated hour) does the hint decide.
    differ = np.flatnonzero(first.ne(second).to_numpy()[groups])
    use_second = np.zeros(len(parts), dtype=bool)
    if len(differ):
        reading = pd.Series(second.array.take(groups[differ]))
        hint = hint_utc.iloc[differ].reset_index(drop=True)
        use_second[differ] = reading.dt.floor("h").eq(hint.dt.floor("h")).fillna(False)
    chosen = spread(first)
    if use_second.any():
        chosen = chosen.where(~use_second, spread(second))
    return chosen.dt.as_unit("us")


def _describe(rule: Rule, values: pd.Series | None) -> pd.Series | str:
    if values is None:
        return rule.description
    # Written once per distinct value and shared by its rows: a warn rule that a big day breaks
    # 600k times (a plane missing from the reference) names a few thousand planes, and a string
    # per row held 0.3 GiB until the checks were done.
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    shown = (
        f"{rule.column}: "
        + pd.Series(distinct).map(repr)
        + f" breaks {rule.id} ({rule.description})"
    )
    return pd.Series(shown.to_numpy(dtype=object)[codes], index=values.index, dtype=object)


def _failed_rows(index: pd.Index, output: pd.Series) -> pd.Index:
    """The labels of ``index`` whose check output is False, in ``index`` order.

    Built-in checks skip missing values (nullability is its own rule): a row missing from the
    output, or with a missing outcome, passes. Only the failures are looked up, instead of
    reindexing the whole output onto the frame (a hash lookup of every row, per rule).
    """
    failed = output.index[~output.fillna(True).astype(bool).to_numpy()]
    if not len(failed):
        return index[:0]
    positions = index.get_indexer(failed)
    return index[np.sort(positions[positions >= 0])]


def evaluate_rules(
    frame: pd.DataFrame, contract: Contract, reference_values: Mapping[str, set[Any]]
) -> pd.DataFrame:
    """Every (row, rule) the frame breaks: nullability, column checks, references, row rules."""
    parts = []
    for spec in contract.columns:
        if not spec.nullable and spec.name in frame:
            missing = frame.index[frame[spec.name].isna()]
            if len(missing):
                parts.append(
                    pd.DataFrame(
                        {
                            "row": missing,
                            "rule": f"{spec.name}.not_null",
                            "action": "drop",
                            "reason": f"{spec.name} is required but missing",
                        }
                    )
                )
    for rule in contract.rules:
        target = frame if rule.expression is not None else frame[rule.column]
        output = rule.pandera_check(reference_values)(target).check_output
        if isinstance(output, pd.DataFrame):
            output = output.all(axis=1)
        broken = _failed_rows(frame.index, output)
        if len(broken):
            values = None if rule.expression is not None else frame.loc[broken, rule.column]
            parts.append(
                pd.DataFrame(
                    {
                        "row": broken,
                        "rule": rule.id,
                        "action": rule.action,
                        "reason": _describe(rule, values),
                    }
                )
            )
    return _concat(parts)


def _off_partition(times: pd.Series, days: pd.Series, tz: str) -> np.ndarray:
    """Rows whose time, read in ``tz``, falls on another calendar day than ``days`` says.

    Compared as numpy days: ``.dt.date`` would build a Python date per row (4M objects on a big
    day). The partition column holds few distinct days, so only those are converted; anything in
    it that is not a plain date is compared the slow way, exactly as Python compares it.
    """
    local = times.dt.tz_convert(tz).dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    codes, distinct = pd.factorize(days, use_na_sentinel=False)
    if all(type(day) is dt.date for day in distinct):
        expected = np.array(list(distinct), dtype="datetime64[D]")[codes]
        return ~np.isnat(local) & (local != expected)
    local_day = times.dt.tz_convert(tz).dt.date
    return (local_day.notna() & (local_day != days)).to_numpy()


def partition_rule(frame: pd.DataFrame, time_column: str, tz: str = LOCAL_TZ) -> pd.DataFrame:
    """A row whose time falls on another local day than its file's day is in the wrong partition."""
    wrong = frame.index[_off_partition(frame[time_column], frame[PARTITION_COLUMN], tz)]
    if not len(wrong):
        return _concat([])
    local_day = frame.loc[wrong, time_column].dt.tz_convert(tz).dt.date
    reason = (
        f"{time_column} falls on "
        + local_day.astype(str)
        + ", not on the file's day "
        + frame.loc[wrong, PARTITION_COLUMN].astype(str)
    )
    return pd.DataFrame({"row": wrong, "rule": "in_partition", "action": "drop", "reason": reason})


def hash_pii(values: pd.Series, key: bytes) -> pd.Series:
    """A keyed hash (HMAC-SHA256, hex) of each value: joinable, not reversible without the key."""
    return values.map(
        lambda v: None if pd.isna(v) else hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()
    ).astype("str")


def _records(raw: pd.DataFrame, rows: pd.Index) -> pd.Series:
    """The delivered values of each row, as JSON (platform columns left out).

    ``json.dumps`` of ``{column: value or None}``, written column by column with Arrow for the
    usual case (text of printable ASCII): a day where every row is quarantined stays seconds, not
    minutes. A row with any other character, or a column that is not text, goes through
    ``json.dumps`` itself, so the text is the same either way.
    """
    data_columns = [c for c in raw.columns if c not in PLATFORM_COLUMNS and c != PARTITION_COLUMN]
    subset = raw.loc[rows, data_columns]
    records = _ascii_json_records(subset)
    if records is None:
        return _dumped_records(subset)
    text, plain = records
    if not plain.all():
        text[~plain] = _dumped_records(subset[~plain]).to_numpy()
    return pd.Series(text, index=rows, dtype="str")


def _dumped_records(subset: pd.DataFrame) -> pd.Series:
    values = subset.astype(object).where(subset.notna(), None)
    return pd.Series(
        [
            json.dumps(dict(zip(subset.columns, row, strict=True)))
            for row in values.itertuples(index=False)
        ],
        index=subset.index,
        dtype="str",
    )


def _ascii_json_records(subset: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row as ``json.dumps`` writes it, and whether the row is printable ASCII only (where
    quoting a value is escaping ``\\`` and ``"``); None if a column is not text."""

    def text(value: str) -> pa.Scalar:
        return pa.scalar(value, pa.large_string())

    plain = np.ones(len(subset), dtype=bool)
    pieces: list[pa.Scalar | pa.Array] = [text("{")]
    for index, column in enumerate(subset.columns):
        values = pa.array(subset[column], from_pandas=True)
        if not (pa.types.is_null(values.type) or pa.types.is_string(values.type)
                or pa.types.is_large_string(values.type)):  # fmt: skip
            return None
        values = values.cast(pa.large_string())
        printable = pc.or_(pc.ascii_is_printable(values), pc.equal(pc.binary_length(values), 0))
        plain &= pc.fill_null(printable, True).to_numpy(zero_copy_only=False)
        for special, escaped in (("\\", "\\\\"), ('"', '\\"')):
            if pc.any(pc.match_substring(values, special)).as_py():
                values = pc.replace_substring(values, special, escaped)
        quoted = pc.binary_join_element_wise(text('"'), values, text('"'), text(""))
        pieces += [text((", " if index else "") + json.dumps(column) + ": "),
                   pc.fill_null(quoted, text("null"))]  # fmt: skip
    pieces.append(text("}"))
    if len(pieces) == 2:
        return np.full(len(subset), "{}", dtype=object), plain
    records = pc.binary_join_element_wise(*pieces, text(""))
    return records.to_numpy(zero_copy_only=False), plain


def _joined_by_row(problems: pd.DataFrame, column: str) -> pd.Series:
    """Per row (sorted), its distinct values of ``column`` in order of appearance, joined by "; ".

    Level by level (a row's first value, then the second of the rows that have one, ...) rather
    than a Python function per row: most rows have one problem, and a bad day has millions.
    """
    distinct = problems[["row", column]].drop_duplicates()
    distinct = distinct.iloc[np.argsort(distinct["row"].to_numpy(), kind="stable")]
    rows = distinct["row"].to_numpy()
    values = distinct[column].astype("str").to_numpy(dtype=object)
    level = distinct.groupby("row", sort=False).cumcount().to_numpy()
    first = level == 0
    out_rows, text = rows[first], values[first].copy()
    for depth in range(1, int(level.max()) + 1 if len(level) else 0):
        at = level == depth
        where = np.searchsorted(out_rows, rows[at])
        text[where] = text[where] + "; " + values[at]
    return pd.Series(text, index=pd.Index(out_rows, name="row"), dtype="str")


def build_quarantine(raw: pd.DataFrame, problems: pd.DataFrame, layer: str) -> pd.DataFrame:
    """One quarantine row per raw row with problems: its lineage, rules, reasons and record."""
    if problems.empty:
        out = pd.DataFrame({c: pd.Series(dtype="str") for c in QUARANTINE_COLUMNS})
        out["_source_row"] = out["_source_row"].astype("Int64")
        if PARTITION_COLUMN in raw:
            # Typed even when empty, so the partition column is a date in the Delta table.
            out.insert(0, PARTITION_COLUMN, pd.Series(dtype=pd.ArrowDtype(pa.date32())))
        return out
    rules, reasons = _joined_by_row(problems, "rule"), _joined_by_row(problems, "reason")
    rows = rules.index
    out = pd.DataFrame(index=rows)
    if PARTITION_COLUMN in raw:
        out[PARTITION_COLUMN] = raw.loc[rows, PARTITION_COLUMN]
    out["_source_file"] = raw.loc[rows, "_source_file"].astype("str")
    out["_source_row"] = raw.loc[rows, "_source_row"].astype("Int64")
    out["layer"] = layer
    out["rules"] = rules
    out["reasons"] = reasons
    out["record"] = _records(raw, rows)
    raw_text = (
        raw["_raw_text"] if "_raw_text" in raw else pd.Series(None, index=raw.index, dtype="str")
    )
    out["raw_text"] = raw_text.loc[rows].astype("str")
    return out


def _without(frame: pd.DataFrame, rows: pd.Index | np.ndarray) -> pd.DataFrame:
    """``frame`` without the rows labelled ``rows``. On a good day there are none, and dropping
    nothing would still copy every column (seconds and gigabytes on a 4M-row day)."""
    return frame.drop(index=rows) if len(rows) else frame


def _values_at(column: pd.Series, positions: np.ndarray) -> ExtensionArray | np.ndarray:
    """The column's values at ``positions``, as ``.to_numpy()`` gives them. Arrow strings stay
    Arrow: ``.to_numpy()`` would make a Python str per violation, which pandas then parses back
    into the same str dtype (it leaves an empty object array as object, hence the length test)."""
    taken = column.array.take(positions)
    arrow_strings = isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow"
    return taken if arrow_strings and len(positions) else taken.to_numpy()


def _narrow_delivered_text(raw: pd.DataFrame) -> pd.DataFrame:
    """The delivered text with 32-bit offsets (Arrow ``string``) instead of pandas' 64-bit ones.

    Once typed, a delivered column is only read again for the rows that end in quarantine (their
    record as delivered), so it can be held in less memory: 4 bytes less per value, 0.26 GiB on a
    4M-row day of flights, the strings themselves shared and not copied. A chunk too large for
    32-bit offsets keeps its column as it is.
    """
    narrow = raw.copy(deep=False)  # copy-on-write: the caller's frame keeps its own columns
    for column in raw.columns:
        if column in PLATFORM_COLUMNS or column == PARTITION_COLUMN:
            continue  # lineage is read for every violation, and shared with the cleaned rows
        strings = _arrow_strings(raw[column])
        if strings is None or not pa.types.is_large_string(strings.type):
            continue
        try:
            text = pc.cast(strings, pa.string())
        except pa.ArrowInvalid:
            continue
        narrow[column] = pd.Series(pd.arrays.ArrowExtensionArray(text), index=raw.index, copy=False)
    return narrow


def clean_table(
    raw: pd.DataFrame,
    contract: Contract,
    *,
    natural_key: Iterable[str] = (),
    normalise: Iterable[str] = (),
    na_values: Iterable[str] = ("", "NA"),
    transform: Transform | None = None,
    references: Mapping[str, pd.DataFrame] | None = None,
    time_column: str | None = None,
    pii_key: bytes | None = None,
) -> CleanResult:
    """Raw (all strings, as delivered) to cleaned: typed, transformed, checked, de-duplicated.

    Rows breaking a ``drop`` rule (or not parseable, or not typeable) go to the quarantine with every
    reason; ``warn`` rules are counted; a ``fail`` rule raises ContractViolation.

    A caller that hands the delivered frame over, keeping no reference to it
    (``clean_table(raw.load(), ...)``), gets part of its memory back as soon as it is typed;
    ``CleanResult.delivered_days`` keeps each delivered row's day for the row accounting.
    """
    references = references or {}
    raw = raw.reset_index(drop=True)
    rows_in = len(raw)
    delivered_days = raw[[PARTITION_COLUMN]] if PARTITION_COLUMN in raw else None
    problems: list[pd.DataFrame] = []

    # 1. Lines the raw layer could not parse: quarantined with their text, never typed.
    unparsed = raw["_parse_error"].notna() if "_parse_error" in raw else pd.Series(False, raw.index)
    if unparsed.any():
        problems.append(
            pd.DataFrame(
                {
                    "row": raw.index[unparsed],
                    "rule": "parse_error",
                    "action": "drop",
                    "reason": raw.loc[unparsed, "_parse_error"].astype("str"),
                }
            )
        )
    parsed = raw.loc[~unparsed] if unparsed.any() else raw

    # 2. Values that cannot be typed as the contract says.
    typed, type_problems = cast_to_contract(parsed, contract, na_values)
    del parsed  # a copy of the delivered day when lines were unparseable; typed has what it needs
    # From here on the delivered text is only read for the quarantined rows' records: narrowed,
    # and Arrow's freed memory handed back, before the steps that need the most (the key searches).
    raw = _narrow_delivered_text(raw)
    pa.default_memory_pool().release_unused()
    problems.append(type_problems)
    typed = _without(typed, type_problems["row"].unique())

    # 3. The source's own logic, then the conforming every source gets.
    if transform is not None:
        typed = transform(typed, references)
    typed = normalise_keys(typed, normalise)
    typed, exact_duplicates = drop_exact_duplicates(typed)

    # 4. The contract's rules, with their actions.
    reference_values = {
        rule.id: set(references[rule.reference[0]][rule.reference[1]].dropna())
        for rule in contract.references
        if rule.reference is not None
    }
    missing_refs = [r.reference[0] for r in contract.references if r.reference[0] not in references]
    if missing_refs:
        raise ValueError(
            f"{contract.name}: reference tables not given: {sorted(set(missing_refs))}"
        )
    violations = evaluate_rules(typed, contract, reference_values)
    if time_column is not None and PARTITION_COLUMN in typed:
        violations = _concat([violations, partition_rule(typed, time_column)])
    failing = violations[violations["action"] == "fail"]
    dropped = violations[violations["action"] == "drop"]
    problems.append(dropped)
    kept = _without(typed, dropped["row"].unique())
    del typed  # when rows were dropped, kept is a copy: two typed days would be held to the end

    # 5. The natural key: a later delivery supersedes an earlier one (kept in quarantine).
    superseded = superseded_rows(kept, natural_key)
    if len(superseded):
        problems.append(
            pd.DataFrame(
                {
                    "row": superseded,
                    "rule": "superseded",
                    "action": "drop",
                    "reason": "a later delivery has the same " + ", ".join(natural_key),
                }
            )
        )
    kept = _without(kept, superseded)

    all_problems = _concat(problems)
    every = _concat([all_problems, violations[violations["action"] != "drop"]])
    rows = every["row"].to_numpy(dtype=np.intp)  # raw's labels are its positions (reset above)
    detail = every.assign(
        _source_file=_values_at(raw["_source_file"], rows),
        _source_row=_values_at(raw["_source_row"], rows),
    )
    if PARTITION_COLUMN in raw:  # each violation's day, for the checks of that day
        detail[PARTITION_COLUMN] = _values_at(raw[PARTITION_COLUMN], rows)
    if len(failing):
        raise ContractViolation(contract.name, detail[detail["action"] == "fail"])

    for column in contract.pii_columns:
        if column in kept:
            if pii_key is None:
                raise ValueError(
                    f"{contract.name}: column {column!r} is PII but no hashing key is configured"
                )
            kept[column] = hash_pii(kept[column], pii_key)

    lineage = [c for c in LINEAGE_COLUMNS if c in kept]
    out = kept[contract.column_names + lineage].reset_index(drop=True)
    out[CLEANED_AT_COLUMN[0]] = pd.Timestamp.now(tz="UTC").as_unit("us")
    quarantine = build_quarantine(raw, all_problems, layer="cleaned")
    quarantine.loc[quarantine["rules"] == "parse_error", "layer"] = "raw"
    quarantine = quarantine.reset_index(drop=True)
    result = CleanResult(
        frame=out,
        quarantine=quarantine,
        rows_in=rows_in,
        exact_duplicates_removed=exact_duplicates,
        violations=detail.drop(columns=["row"]),
        rule_counts=detail["rule"].value_counts().to_dict(),
        delivered_days=delivered_days,
    )
    if not result.balanced:  # pragma: no cover - would be a bug in this function
        raise AssertionError(
            f"{contract.name}: row accounting does not balance: {rows_in} in, {result.rows_out} out, "
            f"{result.rows_quarantined} quarantined, {exact_duplicates} duplicates"
        )
    return result
