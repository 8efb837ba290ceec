"""Table contracts: one YAML file per table (``<layer>/<table>.yaml``), compiled to pandera schemas.

A contract is the data dictionary of its table (names, types, nullability, descriptions, PII) and
its quality rules. Every rule carries its action, so the asset code never decides what is an error:

- ``warn``: keep the row, count it (a WARN check reports it);
- ``drop``: move the row to the source's quarantine table, with the rule as the reason;
- ``fail``: stop the partition (nothing is written; the run fails and alerts).

Rules are pandera checks on a column (``checks``), references to another table (``references``),
and row expressions over several columns (``rules``, evaluated with ``DataFrame.eval``).
Types use a small vocabulary shared by pandas, Arrow and Delta (see ``TYPES``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import yaml

CONTRACTS_DIR = Path(__file__).parent
Action = Literal["warn", "drop", "fail"]
ACTIONS = ("warn", "drop", "fail")

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

# Added to rows by the platform, not by the source: lineage back to the delivered file.
LINEAGE_COLUMNS: dict[str, tuple[str, str]] = {
    "_source_file": ("string", "Landing-zone path of the file this row was delivered in."),
    "_source_row": ("int", "1-based data row number in its source file (0: the file as a whole)."),
    "_delivered_at": ("timestamp", "When the file landed (its last-modified time, UTC)."),
    "_loaded_at": ("timestamp", "When the raw layer read the file (UTC)."),
}
# Raw only: what could not be parsed, kept so that the cleaned layer can quarantine it.
PARSE_COLUMNS: dict[str, tuple[str, str]] = {
    "_parse_error": ("string", "Why this line or file could not be parsed; null for a good row."),
    "_raw_text": ("string", "The undecoded text of an unparseable line or file."),
}
CLEANED_AT_COLUMN = ("_cleaned_at", "timestamp", "When the cleaned layer committed this row (UTC).")
PARTITION_COLUMN = "date"
PARTITION_COLUMN_DESCRIPTION = "Partition: the local (America/New_York) day the row belongs to."
PLATFORM_COLUMNS = frozenset(
    [*LINEAGE_COLUMNS, *PARSE_COLUMNS, CLEANED_AT_COLUMN[0]]
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """One quality rule and what to do with a row that breaks it."""

    id: str  # e.g. "dep_delay.in_range", "carrier.in_airlines", "arrives_after_departure"
    action: Action
    description: str
    column: str | None = None
    check: str | None = None  # a pandera check name, for column checks
    args: Any = None
    reference: tuple[str, str] | None = None  # (table, column) for references
    expression: str | None = None  # DataFrame.eval expression, for row rules
    max_rate: float = (
        0.0  # for warn rules: the share of rows that may break it before the check fails
    )

    def pandera_check(self, reference_values: Mapping[str, set[Any]] | None = None) -> pa.Check:
        """This rule as a pandera check (named by the rule id, so failures map back to it)."""
        if self.reference is not None:
            values = (reference_values or {}).get(self.id)
            if values is None:
                raise ValueError(f"rule {self.id}: reference values for {self.reference} missing")
            return pa.Check.isin(sorted(values), name=self.id)
        if self.expression is not None:
            names = expression_columns(self.expression)

            def row_rule(frame: pd.DataFrame) -> pd.Series:
                ok = frame.eval(self.expression)
                # A rule over missing values is not broken: nullability is its own rule.
                return ok.fillna(False).astype(bool) | frame[names].isna().any(axis=1)

            return pa.Check(row_rule, name=self.id)
        check = getattr(pa.Check, str(self.check), None)
        if check is None:
            raise ValueError(f"rule {self.id}: unknown pandera check {self.check!r}")
        named = {"name": self.id}
        if isinstance(self.args, dict):
            return check(**self.args, **named)
        if isinstance(self.args, list) and self.check not in {"isin", "notin"}:
            return check(*self.args, **named)
        return check(self.args, **named)


def expression_columns(expression: str) -> list[str]:
    return sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression)) - {"and", "or", "not"})


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    description: str = ""
    nullable: bool = True
    pii: bool = False
    rules: tuple[Rule, ...] = ()

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
        # A PII column is stored as its keyed hash (hex), whatever type was delivered.
        return pa_arrow.large_string() if self.pii else TYPES[self.type][1]


@dataclass(frozen=True)
class Contract:
    """The declared shape and rules of one table."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    unique: tuple[str, ...] = ()
    row_rules: tuple[Rule, ...] = ()
    source_text: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]

    @property
    def rules(self) -> list[Rule]:
        """Every rule: column checks and references, then row rules."""
        return [rule for c in self.columns for rule in c.rules] + list(self.row_rules)

    @property
    def references(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.reference is not None]

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"{self.name}: no rule {rule_id!r}")

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no column {name!r}")

    def arrow_schema(self) -> pa_arrow.Schema:
        return pa_arrow.schema(
            [pa_arrow.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        )

    def pandera_schema(
        self, reference_values: Mapping[str, set[Any]] | None = None, *, with_rules: bool = True
    ) -> pa.DataFrameSchema:
        """The contract as a pandera schema: types and nullability, and the rules if asked."""
        columns = {
            c.name: pa.Column(
                "str" if c.pii else c.pandas_dtype,
                nullable=c.nullable,
                description=c.description or None,
                checks=[rule.pandera_check(reference_values) for rule in c.rules]
                if with_rules
                else [],
            )
            for c in self.columns
        }
        return pa.DataFrameSchema(
            columns,
            name=self.name,
            description=self.description,
            checks=[rule.pandera_check() for rule in self.row_rules] if with_rules else [],
        )

    def with_columns(self, extra: list[ColumnSpec]) -> Contract:
        known = set(self.column_names)
        added = tuple(c for c in extra if c.name not in known)
        return Contract(self.name, self.description, self.columns + added, self.unique)


def _action(value: Any, where: str) -> Action:
    if value not in ACTIONS:
        raise ValueError(f"{where}: action must be one of {ACTIONS}, got {value!r}")
    return value


def _parse_column(table: str, col: dict[str, Any]) -> ColumnSpec:
    name = str(col["name"])
    rules: list[Rule] = []
    for entry in col.get("checks") or []:
        if not isinstance(entry, dict):
            raise ValueError(f"{table}.{name}: a check is a mapping like {{in_range: [0, 10]}}")
        entry = dict(entry)
        action = _action(entry.pop("action", "drop"), f"{table}.{name}")
        description = str(entry.pop("description", "") or "")
        max_rate = float(entry.pop("max_rate", 0.0))
        if len(entry) != 1:
            raise ValueError(f"{table}.{name}: one pandera check per entry, got {sorted(entry)}")
        ((check, args),) = entry.items()
        rules.append(
            Rule(
                id=f"{name}.{check}",
                action=action,
                description=description or f"{name} must satisfy {check} {args}",
                column=name,
                check=check,
                args=args,
                max_rate=max_rate,
            )
        )
    ref = col.get("references")
    if ref:
        ref_table, ref_column = str(ref["table"]), str(ref.get("column", name))
        rules.append(
            Rule(
                id=f"{name}.in_{ref_table}",
                action=_action(ref.get("action", "drop"), f"{table}.{name}.references"),
                description=str(
                    ref.get("description") or f"{name} must exist in {ref_table}.{ref_column}"
                ),
                column=name,
                reference=(ref_table, ref_column),
                max_rate=float(ref.get("max_rate", 0.0)),
            )
        )
    return ColumnSpec(
        name=name,
        type=str(col["type"]),
        description=str(col.get("description", "")).strip(),
        nullable=bool(col.get("nullable", True)),
        pii=bool(col.get("pii", False)),
        rules=tuple(rules),
    )


def parse_contract(document: dict[str, Any], source_text: str = "") -> Contract:
    table = str(document.get("table"))
    columns = tuple(_parse_column(table, col) for col in document["columns"])
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"{table}: duplicate column names in contract")
    unique = tuple(document.get("unique") or ())
    missing = set(unique) - set(names)
    if missing:
        raise ValueError(f"{table}: unique key names unknown columns {missing}")
    row_rules = []
    for entry in document.get("rules") or []:
        expression = str(entry["expression"])
        unknown = set(expression_columns(expression)) - set(names)
        if unknown:
            raise ValueError(f"{table}: rule {entry.get('name')!r} uses unknown columns {unknown}")
        row_rules.append(
            Rule(
                id=str(entry["name"]),
                action=_action(entry.get("action", "drop"), f"{table}.{entry.get('name')}"),
                description=str(entry.get("description") or expression),
                expression=expression,
                max_rate=float(entry.get("max_rate", 0.0)),
            )
        )
    return Contract(
        name=table,
        description=str(document.get("description", "")).strip(),
        columns=columns,
        unique=unique,
        row_rules=tuple(row_rules),
        source_text=source_text,
    )


@cache
def load_contract(relative_path: str) -> Contract:
    """Load ``contracts/<relative_path>`` (e.g. ``cleaned/flights.yaml``) or an absolute path."""
    path = CONTRACTS_DIR / relative_path
    text = path.read_text(encoding="utf-8")
    return parse_contract(yaml.safe_load(text), source_text=text)


def platform_columns(*, raw: bool = False, cleaned: bool = False) -> list[ColumnSpec]:
    """The lineage columns the platform adds (with the raw parse columns or the cleaned time)."""
    specs = [ColumnSpec(n, t, d, nullable=False) for n, (t, d) in LINEAGE_COLUMNS.items()]
    if raw:
        specs += [ColumnSpec(n, t, d) for n, (t, d) in PARSE_COLUMNS.items()]
    if cleaned:
        name, type_, description = CLEANED_AT_COLUMN
        specs.append(ColumnSpec(name, type_, description, nullable=False))
    return specs


def partition_column() -> ColumnSpec:
    return ColumnSpec(PARTITION_COLUMN, "date", PARTITION_COLUMN_DESCRIPTION, nullable=False)
