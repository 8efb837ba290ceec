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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dataeng_assets.contracts import (
    CLEANED_AT_COLUMN,
    LINEAGE_COLUMNS,
    PARTITION_COLUMN,
    PLATFORM_COLUMNS,
    Contract,
    Rule,
)

LOCAL_TZ = "America/New_York"
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
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        # pandas 3's default str keeps Arrow data: the same kernels pandas would call (trim, is_in)
        # run on it directly, without Series.mask's generic where path (4x slower on a big day).
        stripped = pc.utf8_trim_whitespace(pa.array(values))
        missing = pc.is_in(stripped, value_set=pa.array(sorted(na_values), stripped.type))
        blanked = pc.if_else(missing, pa.scalar(None, stripped.type), stripped)
        return pd.Series(values.dtype.__from_arrow__(blanked), index=values.index, name=values.name)
    stripped = values.str.strip()
    return stripped.mask(stripped.isin(na_values))


_ARROW_CASTS = {
    "int": (pa.int64(), pd.Int64Dtype()),
    "float": (pa.float64(), None),
    "timestamp": (pa.timestamp("us", tz="UTC"), None),
}


def _arrow_cast(values: pd.Series, type_name: str) -> pd.Series | None:
    """The whole column cast by Arrow (tens of times faster than pandas), or None when any value
    does not parse: then the per-value path finds which ones."""
    target, dtype = _ARROW_CASTS[type_name]
    try:
        cast = pc.cast(pa.array(values, from_pandas=True), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    typed = cast.to_pandas(types_mapper={target: dtype}.get if dtype else None)
    # Positional: the column's own labels (rows may have been dropped before) replace 0..n-1.
    typed.index = values.index
    return typed


def _cast_column(values: pd.Series, type_name: str) -> pd.Series:
    """Cast one column; unparseable values become NA (the caller reports them)."""
    if type_name in _ARROW_CASTS and pd.api.types.is_string_dtype(values):
        fast = _arrow_cast(values, type_name)
        if fast is not None:
            return fast
    if type_name == "string":
        return values.astype("str").mask(values.isna())
    if type_name == "float":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if type_name == "int":
        if pd.api.types.is_string_dtype(values):
            # Digits only: "1545.0" is a float where the contract promises an int, i.e. the
            # upstream type changed; it is reported, not silently rounded.
            values = values.where(values.str.fullmatch(r"[+-]?\d+"))
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        return numbers.where(np.floor(numbers) == numbers).astype("Int64")
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
    for spec in contract.columns:
        if spec.name not in frame.columns or spec.name in PLATFORM_COLUMNS:
            continue
        delivered = _as_missing(frame[spec.name], missing_tokens)
        cast = _cast_column(delivered, spec.type)
        failed = cast.isna() & delivered.notna()
        if failed.any():
            values = delivered[failed].astype("str")
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


def drop_exact_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows equal in every delivered column (lineage ignored); the first delivered one is kept."""
    data_columns = [c for c in frame.columns if c not in PLATFORM_COLUMNS]
    duplicated = frame.duplicated(subset=data_columns, keep="first")
    return frame.loc[~duplicated], int(duplicated.sum())


def superseded_rows(frame: pd.DataFrame, key: Iterable[str]) -> pd.Index:
    """Rows sharing a natural key with a later delivery (the last delivered row wins)."""
    key = list(key)
    if not key or frame.empty:
        return frame.index[:0]
    order = [c for c in ("_source_file", "_source_row") if c in frame]
    ordered = frame.sort_values(order, kind="stable") if order else frame
    return ordered.index[ordered.duplicated(subset=key, keep="last")]


def local_to_utc(
    parts: pd.DataFrame, tz: str = LOCAL_TZ, hint_utc: pd.Series | None = None
) -> pd.Series:
    """UTC timestamps from local year/month/day/hour[/minute] columns (NaT for impossible dates).

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


def _describe(rule: Rule, values: pd.Series | None) -> pd.Series | str:
    if values is None:
        return rule.description
    return f"{rule.column}: " + values.map(repr) + f" breaks {rule.id} ({rule.description})"


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
        # Built-in checks skip missing values (nullability is its own rule): those rows pass.
        passed = output.reindex(frame.index, fill_value=True).fillna(True).astype(bool)
        broken = frame.index[~passed.to_numpy()]
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


def partition_rule(frame: pd.DataFrame, time_column: str, tz: str = LOCAL_TZ) -> pd.DataFrame:
    """A row whose time falls on another local day than its file's day is in the wrong partition."""
    local_day = frame[time_column].dt.tz_convert(tz).dt.date
    wrong = frame.index[local_day.notna() & (local_day != frame[PARTITION_COLUMN])]
    if not len(wrong):
        return _concat([])
    reason = (
        f"{time_column} falls on "
        + local_day[wrong].astype(str)
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
    """The delivered values of each row, as JSON (platform columns left out)."""
    data_columns = [c for c in raw.columns if c not in PLATFORM_COLUMNS and c != PARTITION_COLUMN]
    subset = (
        raw.loc[rows, data_columns].astype(object).where(raw.loc[rows, data_columns].notna(), None)
    )
    return pd.Series(
        [
            json.dumps(dict(zip(data_columns, values, strict=True)))
            for values in subset.itertuples(index=False)
        ],
        index=rows,
        dtype="str",
    )


def build_quarantine(raw: pd.DataFrame, problems: pd.DataFrame, layer: str) -> pd.DataFrame:
    """One quarantine row per raw row with problems: its lineage, rules, reasons and record."""
    if problems.empty:
        out = pd.DataFrame({c: pd.Series(dtype="str") for c in QUARANTINE_COLUMNS})
        out["_source_row"] = out["_source_row"].astype("Int64")
        if PARTITION_COLUMN in raw:
            # Typed even when empty, so the partition column is a date in the Delta table.
            out.insert(0, PARTITION_COLUMN, pd.Series(dtype=pd.ArrowDtype(pa.date32())))
        return out
    grouped = problems.groupby("row", sort=True).agg(
        rules=("rule", lambda r: "; ".join(dict.fromkeys(r))),
        reasons=("reason", lambda r: "; ".join(dict.fromkeys(r))),
    )
    rows = grouped.index
    out = pd.DataFrame(index=rows)
    if PARTITION_COLUMN in raw:
        out[PARTITION_COLUMN] = raw.loc[rows, PARTITION_COLUMN]
    out["_source_file"] = raw.loc[rows, "_source_file"].astype("str")
    out["_source_row"] = raw.loc[rows, "_source_row"].astype("Int64")
    out["layer"] = layer
    out["rules"] = grouped["rules"].astype("str")
    out["reasons"] = grouped["reasons"].astype("str")
    out["record"] = _records(raw, rows)
    raw_text = (
        raw["_raw_text"] if "_raw_text" in raw else pd.Series(None, index=raw.index, dtype="str")
    )
    out["raw_text"] = raw_text.loc[rows].astype("str")
    return out


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
    """
    references = references or {}
    raw = raw.reset_index(drop=True)
    rows_in = len(raw)
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
    parsed = raw.loc[~unparsed]

    # 2. Values that cannot be typed as the contract says.
    typed, type_problems = cast_to_contract(parsed, contract, na_values)
    problems.append(type_problems)
    typed = typed.drop(index=type_problems["row"].unique())

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
    kept = typed.drop(index=dropped["row"].unique())

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
    kept = kept.drop(index=superseded)

    all_problems = _concat(problems)
    every = _concat([all_problems, violations[violations["action"] != "drop"]])
    detail = every.assign(
        _source_file=raw.loc[every["row"], "_source_file"].to_numpy(),
        _source_row=raw.loc[every["row"], "_source_row"].to_numpy(),
    )
    if PARTITION_COLUMN in raw:  # each violation's day, for the checks of that day
        detail[PARTITION_COLUMN] = raw.loc[every["row"], PARTITION_COLUMN].to_numpy()
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
    )
    if not result.balanced:  # pragma: no cover - would be a bug in this function
        raise AssertionError(
            f"{contract.name}: row accounting does not balance: {rows_in} in, {result.rows_out} out, "
            f"{result.rows_quarantined} quarantined, {exact_duplicates} duplicates"
        )
    return result
