"""Asset checks built from the contracts by one factory, and their results from a layer's outcome.

Cheap checks are computed inline, while the asset materializes, from what the layer already knows
(the delivery, the CleanResult); they cost no extra read. ``blocking=True`` where bad data must not
flow downstream: a failed blocking check stops the assets after it in the run, and Declarative
Automation waits for it to pass.

A daily asset's checks are partitioned like it: every day gets its own result, whether the run
covers one day or a year (``check_events``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    Output,
    PartitionsDefinition,
    PreviewWarning,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from dataeng_assets.contracts import PARTITION_COLUMN, Contract
from dataeng_assets.landing.files import SourceDelivery
from dataeng_assets.transforms.conform import CleanResult

# Raw: what was delivered.
FILES_READABLE = "files_readable"
COLUMNS_PRESENT = "columns_present"
NO_EXTRA_COLUMNS = "no_extra_columns"
LINES_PARSEABLE = "lines_parseable"
# Cleaned: what the contract says.
SCHEMA = "schema"
ROW_ACCOUNTING = "row_accounting"
COMPLETENESS = "completeness"
COMPLETENESS_FLOOR = "completeness_floor"
KEY_UNIQUE = "key_unique"
REFERENTIAL_INTEGRITY = "referential_integrity"
VALUE_RULES = "value_rules"
QUARANTINE_RATE = "quarantine_rate"

# The seed's targets: at least 99.9% of the distinct delivered rows reach cleaned, and at most 0.1%
# of the rows end in quarantine. Missing the target alerts a person (ERROR) but does not stop the
# day: one genuine defect in a 72-row weather day is already 1.4%. Losing more than 5% of a day
# means something systematic (a changed type upstream, a broken reference): that stops the day.
COMPLETENESS_TARGET = 0.999
COMPLETENESS_FLOOR_TARGET = 0.95
QUARANTINE_RATE_TARGET = 0.001
SAMPLE_ROWS = 5


def check_spec(
    name: str, *, asset: AssetKey, partitions_def: PartitionsDefinition | None = None, **kwargs: Any
) -> AssetCheckSpec:
    """An AssetCheckSpec. Partitioned checks are a preview in Dagster 1.13, used knowingly (see
    docs/quality.md), so the preview warning is not repeated at every import of the code location."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(name, asset=asset, partitions_def=partitions_def, **kwargs)


def build_raw_check_specs(
    key: AssetKey, partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    """Partitioned like the asset: each day has its own result (see ``check_events``)."""
    return [
        check_spec(FILES_READABLE, asset=key, partitions_def=partitions_def, blocking=True,
                       description="Every delivered file could be read (not empty, decodable)."),
        check_spec(COLUMNS_PRESENT, asset=key, partitions_def=partitions_def, blocking=True,
                       description="Every delivered file has every column the raw contract declares."),
        check_spec(NO_EXTRA_COLUMNS, asset=key, partitions_def=partitions_def,
                       description="No file has columns the contract does not declare (kept in raw)."),
        check_spec(LINES_PARSEABLE, asset=key, partitions_def=partitions_def,
                       description="Every line parsed; unparseable ones go to quarantine with their text."),
    ]  # fmt: skip


def build_cleaned_check_specs(
    key: AssetKey, partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    return [
        check_spec(SCHEMA, asset=key, partitions_def=partitions_def, blocking=True,
                       description="Columns, types and nullability are as the contract says."),
        check_spec(ROW_ACCOUNTING, asset=key, partitions_def=partitions_def, blocking=True,
                       description="Rows in = rows out + rows quarantined + exact duplicates removed."),
        check_spec(COMPLETENESS, asset=key, partitions_def=partitions_def,
                       description=f"At least {COMPLETENESS_TARGET:.1%} of distinct delivered rows reach cleaned."),
        check_spec(COMPLETENESS_FLOOR, asset=key, partitions_def=partitions_def, blocking=True,
                       description=f"At least {COMPLETENESS_FLOOR_TARGET:.0%} of distinct delivered rows reach "
                       "cleaned; below that the loss is systematic and the day stops."),
        check_spec(KEY_UNIQUE, asset=key, partitions_def=partitions_def, blocking=True,
                       description="The natural key is unique."),
        check_spec(REFERENTIAL_INTEGRITY, asset=key, partitions_def=partitions_def,
                       description="Keys found in their reference tables, within each reference's tolerance."),
        check_spec(VALUE_RULES, asset=key, partitions_def=partitions_def,
                       description="Warn-only rules broken by no more rows than each rule tolerates."),
        check_spec(QUARANTINE_RATE, asset=key, partitions_def=partitions_def,
                       description=f"At most {QUARANTINE_RATE_TARGET:.1%} of rows quarantined."),
    ]  # fmt: skip


def schema_failures(contract: Contract, frame: pd.DataFrame) -> pd.DataFrame:
    """pandera's failure cases of the contract's columns, types and nullability (no rules).

    pandera checks a ``date`` column value by value in Python (seconds for a few million rows), so
    date columns are checked here instead, in one Arrow conversion, and reported the same way.
    """
    dates = [c for c in contract.columns if c.type == "date" and not c.pii and c.name in frame]
    schema = contract.pandera_schema(with_rules=False).remove_columns([c.name for c in dates])
    found = [_date_failures(frame[c.name], c.name, c.nullable) for c in dates]
    try:
        # The schema coerces nothing, so validating in place changes nothing in the frame; the
        # default deep copy was 2 s of a 4M-row day (bench/results/profile.md).
        schema.validate(frame, lazy=True, inplace=True)
    except pandera.errors.SchemaErrors as error:
        found.append(error.failure_cases)
    found = [f for f in found if len(f)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def _date_failures(values: pd.Series, column: str, nullable: bool) -> pd.DataFrame:
    """pandera-shaped failure cases of a column that must hold dates (``datetime.date``)."""

    def failure(check: str, case: Any, index: Any) -> pd.DataFrame:
        return pd.DataFrame(
            {"schema_context": "Column", "column": column, "check": check,
             "check_number": None, "failure_case": case, "index": index}
        )  # fmt: skip

    try:
        typed = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        typed = None
    if typed is None or not (pa.types.is_date32(typed.type) or pa.types.is_null(typed.type)):
        return failure("dtype('date')", [str(values.dtype)], [None])
    if not nullable and typed.null_count:
        rows = np.flatnonzero(pd.isna(values).to_numpy())
        return failure("not_nullable", [None] * len(rows), rows)
    return pd.DataFrame()


def schema_check_result(
    key: AssetKey | None,
    contract: Contract,
    frame: pd.DataFrame | None = None,
    failures: pd.DataFrame | None = None,
) -> AssetCheckResult:
    """The frame has the contract's columns, types and nullability (rules are checked elsewhere)."""
    if failures is None:
        failures = schema_failures(contract, frame if frame is not None else pd.DataFrame())
    return AssetCheckResult(
        asset_key=key,
        check_name=SCHEMA,
        passed=failures.empty,
        metadata={
            "failures": len(failures),
            "examples": MetadataValue.json(
                failures.head(SAMPLE_ROWS).astype(str).to_dict("records")
            ),
        },
    )


def day_names(days: pd.Series) -> np.ndarray:
    """Each row's day as its partition key ("2013-01-08"), naming each distinct day once (a
    column-wide ``astype(str)`` of dates costs seconds for a year)."""
    codes, uniques = pd.factorize(days)
    names = [pd.Timestamp(day).strftime("%Y-%m-%d") for day in uniques]
    return np.array([*names, None], dtype=object)[codes]  # a missing day (-1) has no name


def rows_per_day(days: pd.Series) -> dict[str, int]:
    """How many rows each day has, by partition key (each distinct day named once, as in
    ``day_names``; missing days are not counted)."""
    codes, uniques = pd.factorize(days)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return {
        pd.Timestamp(day).strftime("%Y-%m-%d"): int(n)
        for day, n in zip(uniques, counts, strict=True)
    }


def schema_failures_by_day(
    failures: pd.DataFrame, frame: pd.DataFrame, days: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """One validation of the window, its failures told per day: a row's failure goes to the row's
    day, a column's (missing, wrong type) to every day."""
    if failures.empty:
        return {day: failures for day in days}
    index = pd.to_numeric(failures["index"], errors="coerce")
    whole = failures[index.isna()]
    row_days = day_names(frame[PARTITION_COLUMN])
    by_row = failures[index.notna()]
    by_row_day = pd.Series(
        row_days[index[index.notna()].astype("int64").to_numpy()], index=by_row.index
    )
    return {day: pd.concat([whole, by_row[by_row_day == day]]) for day in days}


def schema_results_by_day(
    key: AssetKey | None, contract: Contract, frame: pd.DataFrame, days: Sequence[str]
) -> dict[str, list[AssetCheckResult]]:
    frame = frame.reset_index(drop=True)  # failure cases name rows by position
    failures = schema_failures_by_day(schema_failures(contract, frame), frame, days)
    return {
        day: [schema_check_result(key, contract, failures=day_failures)]
        for day, day_failures in failures.items()
    }


def _files_table(by_file: Mapping[str, Any]) -> MetadataValue:
    return MetadataValue.json({name: value for name, value in list(by_file.items())[:20]})


def raw_check_results(key: AssetKey, delivery: SourceDelivery) -> list[AssetCheckResult]:
    """Checks on what the files delivered, from the reading itself."""
    table = delivery.table
    samples = []
    if delivery.unparseable_rows:
        errors = table.filter(table["_parse_error"].is_valid()).slice(0, SAMPLE_ROWS)
        samples = [
            {"file": f, "row": r, "error": e, "text": (t or "")[:200]}
            for f, r, e, t in zip(
                errors["_source_file"].to_pylist(), errors["_source_row"].to_pylist(),
                errors["_parse_error"].to_pylist(), errors["_raw_text"].to_pylist(), strict=True,
            )
        ]  # fmt: skip
    return [
        AssetCheckResult(
            asset_key=key,
            check_name=FILES_READABLE,
            passed=not delivery.file_errors,
            metadata={
                "unreadable_files": len(delivery.file_errors),
                "files": _files_table(delivery.file_errors),
            },
            description="; ".join(f"{f}: {e}" for f, e in delivery.file_errors.items()) or None,
        ),
        AssetCheckResult(
            asset_key=key,
            check_name=COLUMNS_PRESENT,
            passed=not delivery.missing_columns,
            metadata={
                "files_missing_columns": len(delivery.missing_columns),
                "files": _files_table(delivery.missing_columns),
            },
            description="; ".join(f"{f} lacks {c}" for f, c in delivery.missing_columns.items())
            or None,
        ),
        AssetCheckResult(
            asset_key=key,
            check_name=NO_EXTRA_COLUMNS,
            passed=not delivery.extra_columns,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "files_with_extra_columns": len(delivery.extra_columns),
                "files": _files_table(delivery.extra_columns),
            },
        ),
        AssetCheckResult(
            asset_key=key,
            check_name=LINES_PARSEABLE,
            passed=delivery.unparseable_rows == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "unparseable_rows": delivery.unparseable_rows,
                "examples": MetadataValue.json(samples),
            },
        ),
    ]


EXAMPLE_COLUMNS = ["_source_file", "_source_row", "rule", "reason"]


@dataclass(frozen=True)
class CleanedMeasures:
    """What the cleaned checks judge, for a window or for one day of it."""

    rows_in: int
    rows_out: int
    rows_quarantined: int
    exact_duplicates_removed: int
    balanced: bool  # rows in = rows out + quarantined + exact duplicates removed (counted apart)
    rule_counts: Mapping[str, int]
    duplicated_keys: int
    unmatched: Mapping[str, int]  # per reference rule: cleaned values missing from the reference
    examples: Sequence[Mapping[str, Any]]  # the first violations of each rule, in row order


def row_flags(
    frame: pd.DataFrame,
    contract: Contract,
    natural_key: list[str],
    reference_frames: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Per cleaned row: does it repeat an earlier row's natural key, and, per reference rule, is
    its value missing from the reference table. Computed once for the window, summed per day."""
    flags = pd.DataFrame(index=frame.index)
    flags[KEY_UNIQUE] = frame.duplicated(natural_key) if natural_key else False
    for rule in contract.references:
        table, column = rule.reference  # type: ignore[misc]
        values = pa.array(frame[rule.column], from_pandas=True)
        known = pa.array(reference_frames[table][column].dropna().unique()).cast(values.type)
        missing = pc.and_(values.is_valid(), pc.invert(pc.is_in(values, value_set=known)))
        flags[rule.id] = missing.to_numpy(zero_copy_only=False)
    return flags


def _example_records(violations: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The first SAMPLE_ROWS violations of each rule (per ``by`` group), as plain values."""
    first = violations.groupby(by, sort=False, observed=True).head(SAMPLE_ROWS)
    return first.astype({c: "object" for c in first.columns}).where(first.notna(), None)


def measure(
    result: CleanResult,
    contract: Contract,
    natural_key: list[str],
    reference_frames: Mapping[str, pd.DataFrame],
) -> CleanedMeasures:
    """The measures of a whole CleanResult (an unpartitioned table)."""
    flags = row_flags(result.frame, contract, natural_key, reference_frames)
    examples = _example_records(result.violations[[*EXAMPLE_COLUMNS, "action"]], ["rule"])
    return CleanedMeasures(
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        rows_quarantined=result.rows_quarantined,
        exact_duplicates_removed=result.exact_duplicates_removed,
        balanced=result.balanced,
        rule_counts=dict(result.rule_counts),
        duplicated_keys=int(flags[KEY_UNIQUE].sum()),
        unmatched={rule.id: int(flags[rule.id].sum()) for rule in contract.references},
        examples=examples.to_dict("records"),
    )


def measures_by_day(
    result: CleanResult,
    raw: pd.DataFrame,
    contract: Contract,
    natural_key: list[str],
    reference_frames: Mapping[str, pd.DataFrame],
    days: Sequence[str],
) -> dict[str, CleanedMeasures]:
    """The measures of each day of a window, in one pass over the window (group-bys, no loop over
    the rows of each day): a year of flights is measured in well under a second."""

    def day_of(frame: pd.DataFrame) -> pd.Series:
        return pd.Series(day_names(frame[PARTITION_COLUMN]) if len(frame) else [], dtype="object")

    frame = result.frame
    rows_in = day_of(raw).value_counts()
    rows_out = day_of(frame).value_counts()
    quarantined = day_of(result.quarantine).value_counts()
    flags = row_flags(frame, contract, natural_key, reference_frames)
    flags_by_day = flags.groupby(day_of(frame).to_numpy()).sum() if len(frame) else flags
    violations = result.violations
    violation_days = day_of(violations)
    rule_counts = violations.groupby([violation_days.to_numpy(), "rule"]).size()
    examples = _example_records(
        violations[[*EXAMPLE_COLUMNS, "action"]].assign(_day=violation_days.to_numpy()),
        ["_day", "rule"],
    )
    examples_by_day: dict[str, list[dict]] = {}
    for record in examples.to_dict("records"):
        examples_by_day.setdefault(record.pop("_day"), []).append(record)
    counts_by_day: dict[str, dict[str, int]] = {}
    for (day, rule), count in rule_counts.items():
        counts_by_day.setdefault(day, {})[rule] = int(count)

    def flag(name: str, day: str) -> int:
        return int(flags_by_day[name].get(day, 0)) if len(flags_by_day) else 0

    # Exact duplicates are counted for the window; a day's are the rows it lost to neither table.
    # Its accounting holds when that is never negative and the days add up to the window's count.
    counts = {
        day: (int(rows_in.get(day, 0)), int(rows_out.get(day, 0)), int(quarantined.get(day, 0)))
        for day in days
    }
    duplicates = {day: n_in - out - q for day, (n_in, out, q) in counts.items()}
    adds_up = result.balanced and sum(duplicates.values()) == result.exact_duplicates_removed
    return {
        day: CleanedMeasures(
            rows_in=counts[day][0],
            rows_out=counts[day][1],
            rows_quarantined=counts[day][2],
            exact_duplicates_removed=duplicates[day],
            balanced=adds_up and duplicates[day] >= 0,
            rule_counts=counts_by_day.get(day, {}),
            duplicated_keys=flag(KEY_UNIQUE, day),
            unmatched={rule.id: flag(rule.id, day) for rule in contract.references},
            examples=examples_by_day.get(day, []),
        )
        for day in days
    }


def _examples(
    measures: CleanedMeasures, rules: Sequence[str] | None = None, drop_only: bool = False
) -> MetadataValue:
    """Up to SAMPLE_ROWS violations (of ``rules``; of drop rules only), in row order."""
    picked = [
        {k: r[k] for k in EXAMPLE_COLUMNS}
        for r in measures.examples
        if (rules is None or r["rule"] in rules) and (not drop_only or r.get("action") == "drop")
    ]
    return MetadataValue.json(picked[:SAMPLE_ROWS])


def cleaned_check_results(
    key: AssetKey | None,
    measures: CleanedMeasures,
    contract: Contract,
    natural_key: list[str],
    failures: pd.DataFrame,
) -> list[AssetCheckResult]:
    """Checks on the cleaned output and its accounting (``failures``: the schema's failure cases)."""
    m = measures
    superseded = int(m.rule_counts.get("superseded", 0))
    distinct_in = m.rows_in - m.exact_duplicates_removed - superseded
    completeness = m.rows_out / distinct_in if distinct_in else 1.0
    quarantined = m.rows_quarantined - superseded
    quarantine_rate = quarantined / m.rows_in if m.rows_in else 0.0
    unmatched = {
        rule.id: {
            "unmatched_in_output": m.unmatched[rule.id],
            "rows_broken": int(m.rule_counts.get(rule.id, 0)),
            "rate": m.unmatched[rule.id] / m.rows_out if m.rows_out else 0.0,
            "max_rate": rule.max_rate,
            "action": rule.action,
        }
        for rule in contract.references
    }
    references_ok = all(v["rate"] <= v["max_rate"] for v in unmatched.values())
    warn_counts = {
        rule.id: int(m.rule_counts.get(rule.id, 0))
        for rule in contract.rules
        if rule.action == "warn" and rule.reference is None
    }
    over = {
        rule_id: count
        for rule_id, count in warn_counts.items()
        if m.rows_in and count / m.rows_in > contract.rule(rule_id).max_rate
    }
    counts = {
        "rows_in": m.rows_in,
        "rows_out": m.rows_out,
        "rows_quarantined": m.rows_quarantined,
        "exact_duplicates_removed": m.exact_duplicates_removed,
    }
    return [
        schema_check_result(key, contract, failures=failures),
        AssetCheckResult(
            asset_key=key, check_name=ROW_ACCOUNTING, passed=m.balanced, metadata=counts,
            description=(
                f"{m.rows_in} in = {m.rows_out} out + {m.rows_quarantined} quarantined "
                f"+ {m.exact_duplicates_removed} duplicates"
            ),
        ),
        AssetCheckResult(
            asset_key=key, check_name=COMPLETENESS, passed=completeness >= COMPLETENESS_TARGET,
            metadata={"completeness": completeness, "target": COMPLETENESS_TARGET, **counts,
                      "examples": _examples(m, drop_only=True)},
        ),
        AssetCheckResult(
            asset_key=key, check_name=COMPLETENESS_FLOOR, passed=completeness >= COMPLETENESS_FLOOR_TARGET,
            metadata={"completeness": completeness, "floor": COMPLETENESS_FLOOR_TARGET, **counts},
            description=None if completeness >= COMPLETENESS_FLOOR_TARGET else (
                f"only {completeness:.1%} of the delivered rows reached cleaned; see quarantine/"
                f"{key.path[-1] if key else 'the source'} for the reasons"
            ),
        ),
        AssetCheckResult(
            asset_key=key, check_name=KEY_UNIQUE, passed=m.duplicated_keys == 0,
            metadata={"duplicated_keys": m.duplicated_keys, "key": MetadataValue.json(natural_key)},
        ),
        AssetCheckResult(
            asset_key=key, check_name=REFERENTIAL_INTEGRITY, passed=references_ok,
            severity=AssetCheckSeverity.WARN,
            metadata={"references": MetadataValue.json(unmatched),
                      "examples": _examples(m, list(unmatched))},
        ),
        AssetCheckResult(
            asset_key=key, check_name=VALUE_RULES, passed=not over, severity=AssetCheckSeverity.WARN,
            metadata={"warn_rule_counts": MetadataValue.json(warn_counts),
                      "over_tolerance": MetadataValue.json(over),
                      "examples": _examples(m, list(over or warn_counts))},
        ),
        AssetCheckResult(
            asset_key=key, check_name=QUARANTINE_RATE,
            passed=quarantine_rate <= QUARANTINE_RATE_TARGET, severity=AssetCheckSeverity.WARN,
            metadata={"quarantine_rate": quarantine_rate, "rows_quarantined": quarantined,
                      "target": QUARANTINE_RATE_TARGET,
                      "by_rule": MetadataValue.json(dict(sorted(m.rule_counts.items())))},
        ),
    ]  # fmt: skip


def cleaned_results(
    key: AssetKey | None,
    result: CleanResult,
    contract: Contract,
    natural_key: list[str],
    reference_frames: Mapping[str, pd.DataFrame],
) -> list[AssetCheckResult]:
    """Every cleaned check on a whole CleanResult (an unpartitioned table)."""
    failures = schema_failures(contract, result.frame)
    measures = measure(result, contract, natural_key, reference_frames)
    return cleaned_check_results(key, measures, contract, natural_key, failures)


def cleaned_results_by_day(
    key: AssetKey | None,
    result: CleanResult,
    raw: pd.DataFrame,
    contract: Contract,
    natural_key: list[str],
    reference_frames: Mapping[str, pd.DataFrame],
    days: Sequence[str],
) -> dict[str, list[AssetCheckResult]]:
    """Every cleaned check, once per day of the window: one schema validation and one pass of
    measures for the window, told per day (a day without rows passes, with zero counts)."""
    frame = result.frame.reset_index(drop=True)
    failures = schema_failures_by_day(schema_failures(contract, frame), frame, days)
    measures = measures_by_day(result, raw, contract, natural_key, reference_frames, days)
    return {
        day: cleaned_check_results(key, measures[day], contract, natural_key, failures[day])
        for day in days
    }


def check_events(
    context: AssetExecutionContext,
    results_by_partition: Mapping[str | None, Sequence[AssetCheckResult]],
) -> Iterator[Output | AssetCheckEvaluation | AssetCheckResult]:
    """The step's check results, each on its own partition.

    An ``AssetCheckResult`` gets the run's partition only when the run has exactly one, so a
    single-run backfill would record every result without a day and no day's check would ever
    pass. Each day's results become that day's ``AssetCheckEvaluation`` instead, tied to that
    day's materialization in this run, with the check's own blocking flag (Dagster fails the step
    after them when a blocking ERROR check failed). ``None`` holds an unpartitioned asset's
    results, yielded as they are.
    """
    unpartitioned = results_by_partition.get(None, ())
    yield from unpartitioned
    by_day = {day: results for day, results in results_by_partition.items() if day is not None}
    if not by_day:
        return
    assets_def = context.assets_def
    selected = context.selected_asset_check_keys
    resolved = [
        (day, result, AssetCheckKey(result.asset_key or context.asset_key, result.check_name or ""))
        for day, results in by_day.items()
        for result in results
    ]
    for check_key in sorted({key for _, _, key in resolved if key in selected}, key=str):
        # The check's output: what lets a downstream step depend on it.
        yield Output(None, output_name=assets_def.get_output_name_for_asset_check_key(check_key))
    targets = _materializations_of_run(
        context, {key.asset_key for _, _, key in resolved}, list(by_day)
    )
    for day, result, check_key in resolved:
        if check_key not in selected:
            continue
        spec = assets_def.get_spec_for_check_key(check_key)
        yield AssetCheckEvaluation(
            asset_key=check_key.asset_key,
            check_name=check_key.name,
            passed=result.passed,
            metadata=result.metadata,
            target_materialization_data=targets.get((check_key.asset_key, day)),
            severity=result.severity,
            description=result.description,
            blocking=spec.blocking,
            partition=day,
        )


def _materializations_of_run(
    context: AssetExecutionContext, keys: set[AssetKey], days: list[str]
) -> dict[tuple[AssetKey, str], AssetCheckEvaluationTargetMaterializationData]:
    """This run's materialization of each (asset, day): what each day's result was checked on."""
    found = {}
    for key in keys:
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=days), limit=len(days)
        ).records
        for record in records:
            if record.run_id == context.run.run_id and record.partition_key is not None:
                found.setdefault(
                    (key, record.partition_key),
                    AssetCheckEvaluationTargetMaterializationData(
                        storage_id=record.storage_id,
                        run_id=record.run_id,
                        timestamp=record.timestamp,
                    ),
                )
    return found
