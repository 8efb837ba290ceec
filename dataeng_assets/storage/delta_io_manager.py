"""The Delta Lake IO manager: the only code that turns an asset's DataFrame into a Delta table.

One table per asset at ``<root>/<layer>/<table>``. A time-partitioned output overwrites exactly its
run's window (``date >= start AND date < end``) and nothing else, so any window can be re-run and
gives the same table. Written with delta-rs; works the same on a local folder and on S3.
"""

import datetime as dt
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from deltalake import DeltaTable, Schema, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from dataeng_assets.storage.object_store import ObjectStore

PARTITION_COLUMN = "date"
T = TypeVar("T")


class DeltaSchemaError(ValueError):
    """New data whose columns cannot be merged into the table's schema."""


class PartitionWindowError(ValueError):
    """New data whose partition column does not fit the run's window."""


def _retry_commit(action: Callable[[], T], attempts: int, log: Any = None) -> T:
    """Retry a commit that lost a race with another writer, with exponential backoff and jitter."""
    for attempt in range(attempts):
        try:
            return action()
        except CommitFailedError as error:
            if attempt == attempts - 1:
                raise
            delay = 0.2 * 2**attempt * (1 + random.random())
            if log is not None:
                log.warning(f"Delta commit conflict ({error}); retrying in {delay:.1f}s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A pandas frame as Arrow, with the types Delta stores (microsecond timestamps)."""
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    fields = []
    for field in table.schema:
        if pa.types.is_timestamp(field.type) and field.type.unit != "us":
            # Delta stores microseconds; cast explicitly (and fail loudly on loss) rather than let
            # a writer truncate nanoseconds silently.
            field = field.with_type(pa.timestamp("us", tz=field.type.tz))
        fields.append(field)
    return table.cast(pa.schema(fields))


def _pandas_type(arrow_type: pa.DataType) -> Any:
    """Nullable pandas dtypes for ints and bools, so a missing value does not change the type."""
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


def to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_pandas_type)


def window_dates(context: InputContext | OutputContext) -> tuple[dt.date, dt.date]:
    """The run's time window as local dates [start, end)."""
    window = context.asset_partitions_time_window
    return window.start.date(), window.end.date()


def window_predicate(start: dt.date, end: dt.date) -> str:
    return (
        f"{PARTITION_COLUMN} >= '{start.isoformat()}' AND {PARTITION_COLUMN} < '{end.isoformat()}'"
    )


def check_window(table: pa.Table, start: dt.date, end: dt.date, name: str) -> None:
    """Every row must carry a date inside [start, end): anything else would be a silent write."""
    if PARTITION_COLUMN not in table.column_names:
        raise PartitionWindowError(f"{name}: the output has no {PARTITION_COLUMN!r} column")
    column_type = table.schema.field(PARTITION_COLUMN).type
    if column_type != pa.date32():
        raise PartitionWindowError(
            f"{name}: partition column {PARTITION_COLUMN!r} must be a date (date32), "
            f"got {column_type}; nothing was written"
        )
    dates = table[PARTITION_COLUMN]
    if dates.null_count:
        raise PartitionWindowError(
            f"{name}: {dates.null_count} row(s) have no {PARTITION_COLUMN!r}; nothing was written"
        )
    if len(table) == 0:
        return
    bounds = pc.min_max(dates).as_py()
    if start <= bounds["min"] and bounds["max"] < end:
        return
    outside = [d for d in pc.unique(dates).to_pylist() if not (start <= d < end)]
    if outside:
        raise PartitionWindowError(
            f"{name}: rows dated {sorted(outside)[:5]} fall outside the run's window "
            f"[{start}, {end}); nothing was written"
        )


def check_schema_compatible(table: DeltaTable, new: pa.Schema, name: str) -> None:
    """Additive columns are fine (they are merged); a changed type is not."""
    current = {f.name: f.type for f in table.schema().fields}
    changed = [
        f"{field.name}: table has {current[field.name]}, new data has {field.type}"
        for field in Schema.from_arrow(new).fields
        if field.name in current and field.type != current[field.name]
    ]
    if changed:
        raise DeltaSchemaError(
            f"{name}: incompatible schema change, nothing was written. Changed column types: "
            + "; ".join(changed)
            + ". Migrate the table (or add a new column) instead of changing a type in place."
        )


def _fill_null_types(data: pa.Table, table: DeltaTable) -> pa.Table:
    """Columns with no value at all (type null) take the table's type for them."""
    current = pa.schema(table.schema().to_arrow())
    for index, field in enumerate(data.schema):
        if pa.types.is_null(field.type) and field.name in current.names:
            target = current.field(field.name).type
            data = data.set_column(index, field.name, pa.nulls(len(data), target))
    return data


# Rows per batch handed to delta-rs: it converts one batch at a time instead of the whole table
# (a 4M-row table: a write 1 GiB smaller at its peak, and a third faster; bench/results/profile.md).
WRITE_BATCH_ROWS = 262_144


def overwrite_window(
    uri: str,
    data: pa.Table,
    predicate: str | None,
    partition_by: list[str] | None,
    storage_options: dict[str, str] | None = None,
) -> None:
    """One commit replacing the rows ``predicate`` selects (the whole table without one) by ``data``."""
    # delta-rs buffers a partitioned write with its own allocator: first hand back to the system
    # what Arrow has freed but kept (a step's dropped input), or the write's buffers come on top.
    pa.default_memory_pool().release_unused()
    batches = pa.RecordBatchReader.from_batches(
        data.schema, data.to_batches(max_chunksize=WRITE_BATCH_ROWS)
    )
    write_deltalake(
        uri,
        batches,
        mode="overwrite",
        predicate=predicate,
        partition_by=partition_by,
        schema_mode="merge",
        storage_options=storage_options,
    )


class DeferredFrame:
    """An input the step reads when it asks for it (``load()``), not before the step starts.

    A DataFrame input is held by Dagster until the step ends, so it is still in memory while the
    step's outputs are written. A step that consumes a large input early (cleaned reads its raw
    day) takes it this way and drops it once it is done with it. With the write below handing
    Arrow's freed memory back first, that took a 4M-row day's run from a 4.1 to a 3.5 GiB peak
    (bench/results/profile.md).
    """

    def __init__(self, load: Callable[[], pd.DataFrame]) -> None:
        self._load = load

    def load(self) -> pd.DataFrame:
        return self._load()


def _asks_for(context: InputContext, kind: type) -> bool:
    """Whether the input is declared as ``kind`` (False for a context built without a type)."""
    try:
        return context.dagster_type.typing_type is kind
    except DagsterInvariantViolationError:
        return False


def _step_context(context: OutputContext) -> Any:
    """The step's context, to attach per-partition metadata; None outside a real run (tests)."""
    try:
        return context.step_context
    except Exception:  # build_output_context has no step: fall back to window totals
        return None


class DeltaLakeIOManager(ConfigurableIOManager):
    """Stores each asset as a Delta table at <root>/<layer>/<table>, overwriting exactly its window."""

    store: ObjectStore
    commit_attempts: int = 5

    def table_uri(self, asset_key_path: list[str]) -> str:
        return self.store.uri(*asset_key_path)

    def _open(self, uri: str) -> DeltaTable:
        return DeltaTable(uri, storage_options=self.store.delta_storage_options())

    def _open_or_create(
        self, uri: str, schema: pa.Schema, partition_by: list[str] | None, log: Any
    ) -> DeltaTable:
        """Open the table; create it empty (with its schema) only when delta-rs says it is absent.

        Creating it first, on its own, means two runs that write different windows of a new table
        race only on the empty version 0 (the loser retries), never on each other's data.
        """
        try:
            return self._open(uri)
        except TableNotFoundError:
            pass
        try:
            DeltaTable.create(
                uri,
                schema,
                mode="ignore",
                partition_by=partition_by,
                storage_options=self.store.delta_storage_options(),
            )
        except CommitFailedError:
            log.info(f"{uri}: another run created the table first")
        return self._open(uri)

    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a pandas DataFrame")
        name = "/".join(context.asset_key.path)
        uri = self.table_uri(context.asset_key.path)
        data = to_arrow(obj)
        storage_options = self.store.delta_storage_options()

        if PARTITION_COLUMN in data.column_names and len(data) == 0:
            # An empty window (every row quarantined, say) still has a date column: give it its type.
            data = data.set_column(
                data.column_names.index(PARTITION_COLUMN),
                PARTITION_COLUMN,
                pa.array([], pa.date32()),
            )
        predicate = None
        partition_by = None
        if context.has_asset_partitions:
            start, end = window_dates(context)
            check_window(data, start, end, name)
            predicate = window_predicate(start, end)
            partition_by = [PARTITION_COLUMN]

        table = self._open_or_create(uri, data.schema, partition_by, context.log)
        data = _fill_null_types(data, table)
        check_schema_compatible(table, data.schema, name)

        def write() -> None:
            overwrite_window(uri, data, predicate, partition_by, storage_options)

        _retry_commit(write, self.commit_attempts, context.log)
        table = self._open(uri)
        self._report(context, table, uri, name, data, predicate)

    def _report(
        self,
        context: OutputContext,
        table: DeltaTable,
        uri: str,
        name: str,
        data: pa.Table,
        predicate: str | None,
    ) -> None:
        """Output metadata: per partition where the run covers a window of days.

        A single-run backfill of a year makes one materialization event per day; each gets its own
        row count, files and bytes (not the window's totals), and only the last carries the column
        schema, which would otherwise be serialized 365 times for nothing.
        """
        files = pa.table(table.get_add_actions(flatten=True))
        schema = self._column_schema(context, table)
        window = {
            "dagster/uri": MetadataValue.path(uri),
            "dagster/table_name": name.replace("/", "."),
            "delta/version": table.version(),
            "delta/predicate": predicate or "(whole table)",
        }
        step = _step_context(context)
        if (
            predicate is None
            or step is None
            or f"partition.{PARTITION_COLUMN}" not in files.column_names
        ):
            if predicate is not None and f"partition.{PARTITION_COLUMN}" in files.column_names:
                start, end = window_dates(context)
                day = pc.cast(files[f"partition.{PARTITION_COLUMN}"], pa.date32())
                files = files.filter(pc.and_(pc.greater_equal(day, start), pc.less(day, end)))
            context.add_output_metadata(
                {
                    **window,
                    "dagster/row_count": len(data),
                    "dagster/column_schema": schema,
                    "delta/files_written": len(files),
                    "delta/bytes_written": int(pc.sum(files["size_bytes"]).as_py() or 0),
                }
            )
            return
        context.add_output_metadata(window)
        rows = pc.value_counts(data[PARTITION_COLUMN]).to_pylist() if len(data) else []
        rows_by_day = {item["values"].isoformat(): item["counts"] for item in rows}
        file_days = pc.cast(files[f"partition.{PARTITION_COLUMN}"], pa.string()).to_pylist()
        sizes = files["size_bytes"].to_pylist()
        files_by_day: dict[str, list[int]] = {}
        for day, size in zip(file_days, sizes, strict=True):
            files_by_day.setdefault(day, []).append(size)
        keys = list(context.asset_partition_keys)
        for key in keys:
            metadata = {
                "dagster/row_count": int(rows_by_day.get(key, 0)),
                "delta/files_written": len(files_by_day.get(key, [])),
                "delta/bytes_written": int(sum(files_by_day.get(key, []))),
            }
            if key == keys[-1]:
                metadata["dagster/column_schema"] = schema
            step.add_asset_metadata(metadata, asset_key=context.asset_key, partition_key=key)

    @staticmethod
    def _column_schema(context: OutputContext, table: DeltaTable) -> TableSchema:
        descriptions = {}
        declared = context.definition_metadata.get("dagster/column_schema")
        if isinstance(declared, TableSchema):
            descriptions = {c.name: c.description for c in declared.columns}
        return TableSchema(
            columns=[
                TableColumn(
                    name=field.name,
                    type=str(field.type).removeprefix('PrimitiveType("').removesuffix('")'),
                    description=descriptions.get(field.name),
                )
                for field in table.schema().fields
            ]
        )

    def load_input(self, context: InputContext) -> pd.DataFrame | DeferredFrame:
        if _asks_for(context, DeferredFrame):
            return DeferredFrame(lambda: self._read(context))
        return self._read(context)

    def _read(self, context: InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        key_path = (upstream.asset_key if upstream else context.asset_key).path
        uri = self.table_uri(key_path)
        try:
            table = self._open(uri)
        except TableNotFoundError as error:
            raise FileNotFoundError(
                f"{'/'.join(key_path)} has no Delta table at {uri}: materialize it first"
            ) from error
        if context.has_asset_partitions:
            start, end = window_dates(context)
            # Partition pruning: only the files of the window's days are opened.
            dataset = table.to_pyarrow_dataset(file_pruning_predicate=window_predicate(start, end))
        else:
            dataset = table.to_pyarrow_dataset()
        # Column pruning: an input can declare the only columns it needs (AssetIn metadata).
        columns = (context.definition_metadata or {}).get("columns")
        frame = to_pandas(dataset.to_table(columns=list(columns) if columns else None))
        pa.default_memory_pool().release_unused()  # the read's own buffers, gone with its table
        return frame
