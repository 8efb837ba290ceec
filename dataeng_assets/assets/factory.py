"""Raw and cleaned assets for every source in the registry, built by one factory."""

import datetime as dt
import hashlib

import pandas as pd
import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Backoff,
    Failure,
    Jitter,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
)

from dataeng_assets.assets import CLEANED, IO_MANAGER_KEY, RAW
from dataeng_assets.assets.metadata import column_schema
from dataeng_assets.contracts import partition_column
from dataeng_assets.landing.files import (
    EXTENSIONS,
    DeliveryError,
    list_delivered,
    read_source_delivery,
)
from dataeng_assets.partitions import DAILY_2013, SINGLE_RUN_BACKFILL
from dataeng_assets.sources import Source
from dataeng_assets.storage.delta_io_manager import to_pandas
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets.transforms.conform import clean_table

# Reading the landing zone is I/O: a flaky store gets another try, with backoff and jitter.
IO_RETRY = RetryPolicy(
    max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def window_days(context: AssetExecutionContext) -> list[dt.date]:
    """The local days of the run's partition window (one run can cover a whole backfill)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def _code_version(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def build_raw_asset(source: Source) -> AssetsDefinition:
    contract = source.raw_contract
    schema_columns = contract.with_columns([partition_column()]) if source.is_daily else contract

    @asset(
        key=AssetKey([RAW, source.name]),
        group_name=RAW,
        description=f"{source.description} As delivered to the landing zone.",
        partitions_def=DAILY_2013 if source.is_daily else None,
        backfill_policy=SINGLE_RUN_BACKFILL,
        io_manager_key=IO_MANAGER_KEY,
        owners=[source.owner],
        kinds={"pandas", "delta", source.format},
        code_version=_code_version(repr(source), contract.source_text),
        retry_policy=IO_RETRY,
        metadata={
            "dagster/column_schema": column_schema(schema_columns),
            "source/landing": f"{source.landing}.{EXTENSIONS[source.format]}",
            "source/partitioning": source.partitioning,
        },
    )
    def raw_asset(context: AssetExecutionContext, landing: ObjectStore) -> Output[pd.DataFrame]:
        try:
            return read_window(context, landing)
        except DeliveryError as error:
            # A bad or missing delivery is not transient: retrying cannot fix it, a person can.
            raise Failure(description=str(error), allow_retries=False) from error

    def read_window(context: AssetExecutionContext, landing: ObjectStore) -> Output[pd.DataFrame]:
        fs, root = landing.filesystem()
        loaded_at = dt.datetime.now(dt.UTC)
        days: list[dt.date | None] = window_days(context) if source.is_daily else [None]
        tables = []
        files_read: list[str] = []
        extra_columns: set[str] = set()
        for day in days:
            stem = source.landing_stem(day.isoformat() if day else None)
            files = list_delivered(fs, root, stem, source.format)
            if not source.is_daily:
                files = files[-1:]  # a snapshot: the newest delivery is the table
            if not files:
                raise DeliveryError(
                    f"no {source.format} file for {source.name} at "
                    f"{landing.uri(stem)}.{EXTENSIONS[source.format]} (nothing delivered yet?)"
                )
            table, extra = read_source_delivery(
                fs, root, files, source.format, contract.column_names, loaded_at, day
            )
            tables.append(table)
            files_read += [f.relative_path for f in files]
            extra_columns.update(extra)
        if extra_columns:
            context.log.warning(
                f"{source.name}: undeclared column(s) kept in raw: {sorted(extra_columns)}"
            )
        frame = to_pandas(pa.concat_tables(tables, promote_options="default"))
        return Output(
            frame,
            metadata={
                "rows_delivered": len(frame),
                "files_read": len(files_read),
                "files": MetadataValue.json(files_read[:50]),
                "undeclared_columns": MetadataValue.json(sorted(extra_columns)),
            },
        )

    return raw_asset


def build_cleaned_asset(source: Source) -> AssetsDefinition:
    contract = source.cleaned_contract
    transform = source.transform_function()

    @asset(
        key=AssetKey([CLEANED, source.name]),
        group_name=CLEANED,
        description=f"{contract.description}",
        ins={"raw": AssetIn(key=AssetKey([RAW, source.name]))},
        partitions_def=DAILY_2013 if source.is_daily else None,
        backfill_policy=SINGLE_RUN_BACKFILL,
        io_manager_key=IO_MANAGER_KEY,
        owners=[source.owner],
        kinds={"pandas", "delta", "pandera"},
        code_version=source.fingerprint(),
        metadata={
            "dagster/column_schema": column_schema(contract),
            "contract/natural_key": MetadataValue.json(list(source.natural_key)),
        },
    )
    def cleaned_asset(context: AssetExecutionContext, raw: pd.DataFrame) -> Output[pd.DataFrame]:
        result = clean_table(
            raw,
            contract,
            natural_key=source.natural_key,
            normalise=source.normalise,
            na_values=source.na_values,
            transform=transform,
        )
        contract.pandera_schema().validate(result.frame, lazy=True)
        removed = result.exact_duplicates_removed + result.key_duplicates_removed
        # Row accounting: every raw row is either in the cleaned table or counted as removed.
        assert result.rows_in == result.rows_out + removed, "row accounting does not balance"
        return Output(
            result.frame,
            metadata={
                "rows_in": result.rows_in,
                "rows_out": result.rows_out,
                "exact_duplicates_removed": result.exact_duplicates_removed,
                "key_duplicates_removed": result.key_duplicates_removed,
            },
        )

    return cleaned_asset


def build_source_assets(sources: list[Source]) -> list[AssetsDefinition]:
    """A raw and a cleaned asset per source, in registry order."""
    return [build(source) for source in sources for build in (build_raw_asset, build_cleaned_asset)]
