"""Table contracts: one YAML file per table (``<layer>/<table>.yaml``), compiled to pandera schemas.

A contract is the data dictionary of its table: column names, types, nullability, descriptions and
the value rules. Types use a small vocabulary shared by pandas, Arrow and Delta (see ``TYPES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import yaml

CONTRACTS_DIR = Path(__file__).parent

# type name -> (pandas dtype, Arrow type). Int64/boolean are pandas' nullable dtypes, so a missing
# value stays missing instead of turning an integer column into floats.
TYPES: dict[str, tuple[Any, pa_arrow.DataType]] = {
    "string": ("str", pa_arrow.large_string()),
    "int": ("Int64", pa_arrow.int64()),
    "float": ("float64", pa_arrow.float64()),
    "bool": ("boolean", pa_arrow.bool_()),
    "date": ("date", pa_arrow.date32()),
    "timestamp": ("datetime64[us, UTC]", pa_arrow.timestamp("us", tz="UTC")),
}

# Added to every table by the platform, not by the source: lineage back to the delivered file.
LINEAGE_COLUMNS: dict[str, tuple[str, str]] = {
    "_source_file": ("string", "Landing-zone path of the file this row was delivered in."),
    "_source_row": ("int", "1-based row number of this row in its source file."),
    "_loaded_at": ("timestamp", "When the raw layer read the file (UTC)."),
}
PARTITION_COLUMN = "date"
PARTITION_COLUMN_DESCRIPTION = "Partition: the local (America/New_York) day the row belongs to."


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    description: str = ""
    nullable: bool = True
    checks: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(
                f"column {self.name!r}: unknown type {self.type!r}; use one of {sorted(TYPES)}"
            )

    @property
    def pandas_dtype(self) -> Any:
        return TYPES[self.type][0]

    @property
    def arrow_type(self) -> pa_arrow.DataType:
        return TYPES[self.type][1]


@dataclass(frozen=True)
class Contract:
    """The declared shape of one table."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    unique: tuple[str, ...] = ()
    source_text: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no column {name!r}")

    def arrow_schema(self) -> pa_arrow.Schema:
        return pa_arrow.schema(
            [pa_arrow.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        )

    def pandera_schema(self) -> pa.DataFrameSchema:
        columns = {
            c.name: pa.Column(
                c.pandas_dtype,
                nullable=c.nullable,
                description=c.description or None,
                checks=[_build_check(name, arg) for name, arg in c.checks.items()],
            )
            for c in self.columns
        }
        return pa.DataFrameSchema(
            columns,
            name=self.name,
            description=self.description,
            unique=list(self.unique) or None,
        )

    def with_columns(self, extra: list[ColumnSpec]) -> Contract:
        known = set(self.column_names)
        added = tuple(c for c in extra if c.name not in known)
        return Contract(self.name, self.description, self.columns + added, self.unique)


def _build_check(name: str, arg: Any) -> pa.Check:
    check = getattr(pa.Check, name, None)
    if check is None:
        raise ValueError(f"unknown pandera check {name!r}")
    if isinstance(arg, dict):
        return check(**arg)
    if isinstance(arg, list) and name not in {"isin", "notin"}:
        return check(*arg)
    return check(arg)


def lineage_columns() -> list[ColumnSpec]:
    return [ColumnSpec(n, t, d, nullable=False) for n, (t, d) in LINEAGE_COLUMNS.items()]


def partition_column() -> ColumnSpec:
    return ColumnSpec(PARTITION_COLUMN, "date", PARTITION_COLUMN_DESCRIPTION, nullable=False)


def parse_contract(document: dict[str, Any], source_text: str = "") -> Contract:
    columns = tuple(
        ColumnSpec(
            name=str(col["name"]),
            type=str(col["type"]),
            description=str(col.get("description", "")).strip(),
            nullable=bool(col.get("nullable", True)),
            checks=dict(col.get("checks") or {}),
        )
        for col in document["columns"]
    )
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"{document.get('table')}: duplicate column names in contract")
    unique = tuple(document.get("unique") or ())
    missing = set(unique) - set(names)
    if missing:
        raise ValueError(f"{document.get('table')}: unique key names unknown columns {missing}")
    return Contract(
        name=str(document["table"]),
        description=str(document.get("description", "")).strip(),
        columns=columns,
        unique=unique,
        source_text=source_text,
    )


@cache
def load_contract(relative_path: str) -> Contract:
    """Load ``contracts/<relative_path>`` (e.g. ``cleaned/flights.yaml``)."""
    path = CONTRACTS_DIR / relative_path
    text = path.read_text(encoding="utf-8")
    return parse_contract(yaml.safe_load(text), source_text=text)


def empty_frame(contract: Contract) -> pd.DataFrame:
    """A zero-row frame with the contract's columns and dtypes."""
    return contract.arrow_schema().empty_table().to_pandas()
