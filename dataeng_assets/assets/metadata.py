"""Definition-time metadata shared by the asset factories: the contract as the UI's data dictionary."""

from __future__ import annotations

from dagster import TableColumn, TableColumnConstraints, TableSchema

from dataeng_assets.contracts import Contract, platform_columns


def column_schema(contract: Contract, with_lineage: bool = True) -> TableSchema:
    """The contract's columns (and the lineage columns) with their types and descriptions."""
    specs = list(contract.columns)
    if with_lineage:
        specs += [c for c in platform_columns() if c.name not in contract.column_names]
    return TableSchema(
        columns=[
            TableColumn(
                name=spec.name,
                type=spec.type,
                description=spec.description or None,
                constraints=TableColumnConstraints(
                    nullable=spec.nullable,
                    other=[f"{rule.id} [{rule.action}]: {rule.description}" for rule in spec.rules],
                ),
            )
            for spec in specs
        ]
    )


QUARANTINE_COLUMNS: list[tuple[str, str, str]] = [
    ("_source_file", "string", "Landing-zone path of the file the row was delivered in."),
    ("_source_row", "int", "1-based data row number in that file (0: the file as a whole)."),
    (
        "layer",
        "string",
        "Where the row was stopped: raw (could not be parsed) or cleaned (broke a rule).",
    ),
    (
        "rules",
        "string",
        "The rules it broke, '; '-separated (e.g. dep_delay.in_range; carrier.in_airlines).",
    ),
    ("reasons", "string", "Why, in words, with the offending values."),
    ("record", "string", "The row as delivered: every column and its original string, as JSON."),
    ("raw_text", "string", "The undecoded text of an unparseable line or file."),
    ("run_id", "string", "The Dagster run that quarantined it."),
    ("quarantined_at", "timestamp", "When (UTC)."),
]


def quarantine_schema(partitioned: bool) -> TableSchema:
    columns = [("date", "date", "Partition: the local day of the file.")] if partitioned else []
    return TableSchema(
        columns=[
            TableColumn(name=n, type=t, description=d) for n, t, d in columns + QUARANTINE_COLUMNS
        ]
    )
