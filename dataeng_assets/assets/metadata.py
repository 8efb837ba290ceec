"""Definition-time metadata shared by the asset factories: the contract as the UI's data dictionary."""

from __future__ import annotations

from dagster import TableColumn, TableColumnConstraints, TableSchema

from dataeng_assets.contracts import Contract, lineage_columns


def column_schema(contract: Contract, with_lineage: bool = True) -> TableSchema:
    """The contract's columns (and the lineage columns) with their types and descriptions."""
    specs = list(contract.columns)
    if with_lineage:
        specs += [c for c in lineage_columns() if c.name not in contract.column_names]
    return TableSchema(
        columns=[
            TableColumn(
                name=spec.name,
                type=spec.type,
                description=spec.description or None,
                constraints=TableColumnConstraints(
                    nullable=spec.nullable,
                    other=[f"{name}: {arg}" for name, arg in spec.checks.items()],
                ),
            )
            for spec in specs
        ]
    )
