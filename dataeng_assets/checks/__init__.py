"""Asset checks built from the contracts by one factory, and their results from a layer's outcome.

Cheap checks are computed inline, while the asset materializes, from what the layer already knows
(the delivery, the CleanResult); they cost no extra read. ``blocking=True`` where bad data must not
flow downstream: a failed blocking check stops the assets after it in the run, and Declarative
Automation waits for it to pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
)

from dataeng_assets.contracts import Contract
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


def build_raw_check_specs(key: AssetKey) -> list[AssetCheckSpec]:
    """Unpartitioned on purpose: Dagster 1.13 records the inline results of a multi-day run
    (a single-run backfill) without a partition, so partitioned checks would never pass for those
    days and Declarative Automation, which waits for blocking checks, would stall. Each day's
    counts are in its partition's materialization metadata and in quality/scorecard instead.
    """
    return [
        AssetCheckSpec(FILES_READABLE, asset=key, blocking=True,
                       description="Every delivered file could be read (not empty, decodable)."),
        AssetCheckSpec(COLUMNS_PRESENT, asset=key, blocking=True,
                       description="Every delivered file has every column the raw contract declares."),
        AssetCheckSpec(NO_EXTRA_COLUMNS, asset=key,
                       description="No file has columns the contract does not declare (kept in raw)."),
        AssetCheckSpec(LINES_PARSEABLE, asset=key,
                       description="Every line parsed; unparseable ones go to quarantine with their text."),
    ]  # fmt: skip


def build_cleaned_check_specs(key: AssetKey) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(SCHEMA, asset=key, blocking=True,
                       description="Columns, types and nullability are as the contract says."),
        AssetCheckSpec(ROW_ACCOUNTING, asset=key, blocking=True,
                       description="Rows in = rows out + rows quarantined + exact duplicates removed."),
        AssetCheckSpec(COMPLETENESS, asset=key,
                       description=f"At least {COMPLETENESS_TARGET:.1%} of distinct delivered rows reach cleaned."),
        AssetCheckSpec(COMPLETENESS_FLOOR, asset=key, blocking=True,
                       description=f"At least {COMPLETENESS_FLOOR_TARGET:.0%} of distinct delivered rows reach "
                       "cleaned; below that the loss is systematic and the day stops."),
        AssetCheckSpec(KEY_UNIQUE, asset=key, blocking=True,
                       description="The natural key is unique."),
        AssetCheckSpec(REFERENTIAL_INTEGRITY, asset=key,
                       description="Keys found in their reference tables, within each reference's tolerance."),
        AssetCheckSpec(VALUE_RULES, asset=key,
                       description="Warn-only rules broken by no more rows than each rule tolerates."),
        AssetCheckSpec(QUARANTINE_RATE, asset=key,
                       description=f"At most {QUARANTINE_RATE_TARGET:.1%} of rows quarantined."),
    ]  # fmt: skip


def schema_check_result(key: AssetKey, contract: Contract, frame: pd.DataFrame) -> AssetCheckResult:
    """The frame has the contract's columns, types and nullability (rules are checked elsewhere)."""
    try:
        contract.pandera_schema(with_rules=False).validate(frame, lazy=True)
        failures = pd.DataFrame()
    except pa.errors.SchemaErrors as error:
        failures = error.failure_cases
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


def _examples(violations: pd.DataFrame, rules: list[str] | None = None) -> MetadataValue:
    subset = violations if rules is None else violations[violations["rule"].isin(rules)]
    rows = subset.head(SAMPLE_ROWS)[["_source_file", "_source_row", "rule", "reason"]]
    return MetadataValue.json(
        [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
            for r in rows.to_dict("records")
        ]
    )


def cleaned_check_results(
    key: AssetKey,
    result: CleanResult,
    contract: Contract,
    natural_key: list[str],
    reference_frames: Mapping[str, pd.DataFrame],
) -> list[AssetCheckResult]:
    """Checks on the cleaned output and its accounting, from the CleanResult."""
    frame, violations = result.frame, result.violations
    superseded = int((violations["rule"] == "superseded").sum())
    distinct_in = result.rows_in - result.exact_duplicates_removed - superseded
    completeness = result.rows_out / distinct_in if distinct_in else 1.0
    quarantined = result.rows_quarantined - superseded
    quarantine_rate = quarantined / result.rows_in if result.rows_in else 0.0

    duplicated_keys = int(frame.duplicated(natural_key).sum()) if natural_key else 0

    unmatched: dict[str, dict[str, float]] = {}
    for rule in contract.references:
        table, column = rule.reference  # type: ignore[misc]
        values = frame[rule.column].dropna()
        missing = int((~values.isin(set(reference_frames[table][column].dropna()))).sum())
        unmatched[rule.id] = {
            "unmatched_in_output": missing,
            "rows_broken": int(result.rule_counts.get(rule.id, 0)),
            "rate": missing / len(frame) if len(frame) else 0.0,
            "max_rate": rule.max_rate,
            "action": rule.action,
        }
    references_ok = all(v["rate"] <= v["max_rate"] for v in unmatched.values())

    warn_counts = {
        rule.id: int(result.rule_counts.get(rule.id, 0))
        for rule in contract.rules
        if rule.action == "warn" and rule.reference is None
    }
    over = {
        rule_id: count
        for rule_id, count in warn_counts.items()
        if result.rows_in and count / result.rows_in > contract.rule(rule_id).max_rate
    }
    counts = {
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "rows_quarantined": result.rows_quarantined,
        "exact_duplicates_removed": result.exact_duplicates_removed,
    }
    return [
        schema_check_result(key, contract, frame),
        AssetCheckResult(
            asset_key=key, check_name=ROW_ACCOUNTING, passed=result.balanced, metadata=counts,
            description=(
                f"{result.rows_in} in = {result.rows_out} out + {result.rows_quarantined} quarantined "
                f"+ {result.exact_duplicates_removed} duplicates"
            ),
        ),
        AssetCheckResult(
            asset_key=key, check_name=COMPLETENESS, passed=completeness >= COMPLETENESS_TARGET,
            metadata={"completeness": completeness, "target": COMPLETENESS_TARGET, **counts,
                      "examples": _examples(violations[violations["action"] == "drop"])},
        ),
        AssetCheckResult(
            asset_key=key, check_name=COMPLETENESS_FLOOR, passed=completeness >= COMPLETENESS_FLOOR_TARGET,
            metadata={"completeness": completeness, "floor": COMPLETENESS_FLOOR_TARGET, **counts},
            description=None if completeness >= COMPLETENESS_FLOOR_TARGET else (
                f"only {completeness:.1%} of the delivered rows reached cleaned; see quarantine/"
                f"{key.path[-1]} for the reasons"
            ),
        ),
        AssetCheckResult(
            asset_key=key, check_name=KEY_UNIQUE, passed=duplicated_keys == 0,
            metadata={"duplicated_keys": duplicated_keys, "key": MetadataValue.json(natural_key)},
        ),
        AssetCheckResult(
            asset_key=key, check_name=REFERENTIAL_INTEGRITY, passed=references_ok,
            severity=AssetCheckSeverity.WARN,
            metadata={"references": MetadataValue.json(unmatched),
                      "examples": _examples(violations, list(unmatched))},
        ),
        AssetCheckResult(
            asset_key=key, check_name=VALUE_RULES, passed=not over, severity=AssetCheckSeverity.WARN,
            metadata={"warn_rule_counts": MetadataValue.json(warn_counts),
                      "over_tolerance": MetadataValue.json(over),
                      "examples": _examples(violations, list(over) or None)},
        ),
        AssetCheckResult(
            asset_key=key, check_name=QUARANTINE_RATE,
            passed=quarantine_rate <= QUARANTINE_RATE_TARGET, severity=AssetCheckSeverity.WARN,
            metadata={"quarantine_rate": quarantine_rate, "rows_quarantined": quarantined,
                      "target": QUARANTINE_RATE_TARGET,
                      "by_rule": MetadataValue.json(dict(sorted(result.rule_counts.items())))},
        ),
    ]  # fmt: skip
