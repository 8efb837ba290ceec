"""The quality scorecard: per table and day, whether the data can be trusted and why not."""

import inspect
from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    Output,
    TableColumn,
    TableSchema,
    TimeWindowPartitionMapping,
    asset,
)

from dataeng_assets.assets import CLEANED, IO_MANAGER_KEY, QUALITY, QUARANTINE, RAW
from dataeng_assets.assets.factory import code_version, window_days
from dataeng_assets.checks import check_events, check_spec
from dataeng_assets.partitions import DAILY_2013, SINGLE_RUN_BACKFILL
from dataeng_assets.sources import Source
from dataeng_assets.storage.pools import table_pool
from dataeng_assets.transforms import quality

SCORECARD_KEY = AssetKey([QUALITY, "scorecard"])
# The drift statistics compare each day with the weeks before it: read that much history.
_WITH_DRIFT_HISTORY = TimeWindowPartitionMapping(
    start_offset=-quality.DRIFT_HISTORY_DAYS, allow_nonexistent_upstream_partitions=True
)


SCORECARD_SCHEMA = TableSchema(
    columns=[
        TableColumn("date", "date", "Partition: the local day measured."),
        TableColumn("table", "string", "The source table (flights, weather)."),
        TableColumn(
            "rows_delivered", "int", "Rows in the day's files (raw), unparseable lines included."
        ),
        TableColumn("rows_cleaned", "int", "Rows that reached the cleaned table."),
        TableColumn(
            "rows_quarantined", "int", "Rows held in the quarantine table, with their reasons."
        ),
        TableColumn(
            "duplicates_removed",
            "int",
            "Exact duplicates removed (delivered - cleaned - quarantined).",
        ),
        TableColumn(
            "schema_violations", "int", "Unparseable lines and untypeable values (target: zero)."
        ),
        TableColumn(
            "completeness", "float", "Cleaned rows / distinct delivered rows (target 99.9%)."
        ),
        TableColumn(
            "accuracy",
            "float",
            "1 - share of delivered rows quarantined for a broken rule (target 99.9%).",
        ),
        TableColumn(
            "timeliness_minutes",
            "float",
            "Minutes from the last file landing to the cleaned commit.",
        ),
        TableColumn(
            "timely", "bool", f"Within the {quality.TIMELINESS_SLA_MINUTES:.0f}-minute SLA."
        ),
        TableColumn("consistent", "bool", "No schema violation."),
        TableColumn(
            "quality_score", "float", "Mean of completeness, accuracy, timely and consistent, in %."
        ),
    ]
)


def drift_check_name(source: Source) -> str:
    return f"{source.name}_drift"


def slo_check_name(source: Source) -> str:
    return f"{source.name}_quality_slo"


def build_scorecard_asset(sources: list[Source]) -> AssetsDefinition:
    daily = [s for s in sources if s.is_daily]
    ins: dict[str, AssetIn] = {}
    for source in daily:
        ins[f"raw_{source.name}"] = AssetIn(
            key=AssetKey([RAW, source.name]), metadata={"columns": ["date", "_delivered_at"]}
        )
        ins[f"cleaned_{source.name}"] = AssetIn(
            key=AssetKey([CLEANED, source.name]),
            partition_mapping=_WITH_DRIFT_HISTORY,
            metadata={"columns": ["date", "_cleaned_at", *source.drift_columns]},
        )
        ins[f"quarantine_{source.name}"] = AssetIn(
            key=AssetKey([QUARANTINE, source.name]), metadata={"columns": ["date", "rules"]}
        )
    check_specs = [
        spec
        for source in daily
        for spec in (
            check_spec(
                drift_check_name(source), asset=SCORECARD_KEY, partitions_def=DAILY_2013,
                description=(
                    f"{source.name}: each day's volume within {quality.VOLUME_RATIO_BOUNDS} of the same "
                    f"weekday over the 4 weeks before, and KS < {quality.KS_THRESHOLD} for "
                    f"{', '.join(source.drift_columns) or 'no column'} against the 28 days before."
                ),
            ),
            check_spec(
                slo_check_name(source), asset=SCORECARD_KEY, partitions_def=DAILY_2013,
                description=(
                    f"{source.name}: every day meets completeness {quality.COMPLETENESS_TARGET:.1%}, "
                    f"accuracy {quality.ACCURACY_TARGET:.1%}, no schema violation, and lands in cleaned "
                    f"within {quality.TIMELINESS_SLA_MINUTES:.0f} minutes."
                ),
            ),
        )
    ]  # fmt: skip

    @asset(
        key=SCORECARD_KEY,
        group_name=QUALITY,
        ins=ins,
        partitions_def=DAILY_2013,
        backfill_policy=SINGLE_RUN_BACKFILL,
        io_manager_key=IO_MANAGER_KEY,
        owners=["team:data-platform"],
        kinds={"pandas", "delta"},
        code_version=code_version(inspect.getsource(quality)),
        check_specs=check_specs,
        pool=table_pool(SCORECARD_KEY),
        metadata={"dagster/column_schema": SCORECARD_SCHEMA},
    )
    def scorecard(context: AssetExecutionContext, **tables: pd.DataFrame) -> Iterator:
        """Per table and day: completeness, accuracy, timeliness, consistency and a quality score."""
        days = window_days(context)
        cards = []
        checks: dict[str | None, list[AssetCheckResult]] = {day.isoformat(): [] for day in days}
        for source in daily:
            cleaned_with_history = tables[f"cleaned_{source.name}"]
            cleaned = cleaned_with_history[cleaned_with_history["date"].isin(days)]
            card = quality.build_scorecard(
                source.name,
                tables[f"raw_{source.name}"],
                cleaned,
                tables[f"quarantine_{source.name}"],
                days,
            )
            cards.append(card)
            drift = quality.drift_report(cleaned_with_history, days, list(source.drift_columns))
            for day in days:
                checks[day.isoformat()] += [
                    _slo_result(source, card[card["date"] == day]),
                    _drift_result(source, drift[drift["date"] == day]),
                ]
        frame = pd.concat(cards, ignore_index=True)
        metadata: dict = {"rows_out": len(frame)}
        for source in daily:
            mine = frame[frame["table"] == source.name]
            # Numbers the UI plots over time, one point per materialization.
            metadata[f"{source.name}/quality_score"] = float(mine["quality_score"].mean())
            metadata[f"{source.name}/completeness"] = float(mine["completeness"].min())
            metadata[f"{source.name}/accuracy"] = float(mine["accuracy"].min())
        yield Output(frame, metadata=metadata)
        yield from check_events(context, checks)

    return scorecard


def _slo_result(source: Source, card: pd.DataFrame) -> AssetCheckResult:
    missed = card[
        (card["completeness"] < quality.COMPLETENESS_TARGET)
        | (card["accuracy"] < quality.ACCURACY_TARGET)
        | ~card["timely"].astype(bool)
        | ~card["consistent"].astype(bool)
    ]
    return AssetCheckResult(
        check_name=slo_check_name(source),
        passed=missed.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "days": len(card),
            "days_missing_target": len(missed),
            "worst_days": MetadataValue.md(
                _markdown(missed.sort_values("quality_score").head(10))
                if len(missed)
                else "every day met its targets"
            ),
        },
    )


def _drift_result(source: Source, report: pd.DataFrame) -> AssetCheckResult:
    ks_columns = [c for c in report.columns if c.startswith("ks_")]
    low, high = quality.VOLUME_RATIO_BOUNDS
    volume_off = report["volume_ratio"].notna() & ~report["volume_ratio"].between(low, high)
    ks_off = (report[ks_columns] > quality.KS_THRESHOLD).any(axis=1) if ks_columns else False
    drifted = report[volume_off | ks_off]
    return AssetCheckResult(
        check_name=drift_check_name(source),
        passed=drifted.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "days": len(report),
            "days_drifted": len(drifted),
            "volume_ratio_bounds": MetadataValue.json(list(quality.VOLUME_RATIO_BOUNDS)),
            "ks_threshold": quality.KS_THRESHOLD,
            "drifted_days": MetadataValue.md(
                _markdown(drifted.round(3).head(15)) if len(drifted) else "none"
            ),
        },
    )


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
