"""The peer a user would pick instead: the same pipeline in DuckDB SQL, writing Delta with delta-rs.

    python -m bench.duckdb_peer --landing DIR --lake DIR --start 2013-01-01 --end 2013-12-31 [--out F.json]

One DuckDB session (all cores, in memory) does what the assets do, as SQL:

- raw: every delivered file of the window read as text (``read_csv(all_varchar)``), with the
  partition day, source file, row number and load time; written to Delta;
- cleaned, from the same contracts (the YAML is read as data, no package transform is called):
  values stripped and ``NA``/blank made missing, typed by the contract (a value that does not type
  is quarantined), the per-source logic (UTC times from local clocks, including the destination's
  time zone and the repeated November hour; the cancelled flag; block time), join keys normalised,
  exact duplicates removed, every rule evaluated with its action (not-null, ranges, allowed values,
  patterns, references to the cleaned reference tables, row rules, the partition rule), the natural
  key de-duplicated (a later delivery supersedes), and a quarantine table with each row's rules,
  reasons and delivered record as JSON; the same check figures (accounting, key uniqueness,
  reference rates, warn counts) in one aggregate query;
- features: the trailing 7-day carrier and route on-time rates (days d-7..d-1), the origin weather
  at the scheduled hour, the plane's age, local hour and weekday; the output rules checked.

Every table is written as the IO manager writes it: partitioned by ``date``, overwriting exactly the
window with a predicate. Not done here: the quality scorecard (drift and SLOs), which the Dagster
pipeline also computes; that makes the peer's work a little smaller, never larger.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

T0 = time.perf_counter()

import duckdb  # noqa: E402
import yaml  # noqa: E402
from deltalake import DeltaTable, write_deltalake  # noqa: E402
from deltalake.exceptions import TableNotFoundError  # noqa: E402

from bench.common import Timer  # noqa: E402

IMPORTED = time.perf_counter()
# The package's folder, found without importing it (its __init__ imports Dagster, which a user of
# DuckDB would not load): the registry and the contracts are read as YAML, as data.
PACKAGE = Path(importlib.util.find_spec("dataeng_assets").submodule_search_locations[0])
TZ = "America/New_York"
TRACE = bool(os.environ.get("BENCH_TRACE"))
TRUE = ("true", "t", "1", "yes", "y")
FALSE = ("false", "f", "0", "no", "n")
LINEAGE = ["_source_file", "_source_row", "_delivered_at", "_loaded_at"]


@dataclass(frozen=True)
class Rule:
    id: str
    action: str
    column: str | None = None
    check: str | None = None
    args: object = None
    reference: tuple[str, str] | None = None
    expression: str | None = None


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    rules: list[Rule]


@dataclass(frozen=True)
class Contract:
    columns: list[Column]
    row_rules: list[Rule]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def rules(self) -> list[Rule]:
        return [r for c in self.columns for r in c.rules] + self.row_rules

    @property
    def references(self) -> list[Rule]:
        return [r for r in self.rules if r.reference is not None]


def load_contract(relative: str) -> Contract:
    """A contract's YAML: columns, their checks (a list, or one mapping), references and row rules."""
    document = yaml.safe_load((PACKAGE / "contracts" / relative).read_text())
    columns = []
    for col in document["columns"]:
        name, rules = col["name"], []
        checks = col.get("checks") or []
        entries = [dict(checks)] if isinstance(checks, dict) else [dict(e) for e in checks]
        for entry in entries:
            action = entry.pop("action", "drop")
            for key in ("description", "max_rate"):
                entry.pop(key, None)
            for check, args in entry.items():
                rules.append(Rule(f"{name}.{check}", action, name, check, args))
        ref = col.get("references")
        if ref:
            table = ref["table"]
            rules.append(
                Rule(f"{name}.in_{table}", ref.get("action", "drop"), name,
                     reference=(table, ref.get("column", name)))
            )  # fmt: skip
        columns.append(Column(name, col["type"], bool(col.get("nullable", True)), rules))
    row_rules = [
        Rule(r["name"], r.get("action", "drop"), expression=r["expression"])
        for r in document.get("rules") or []
    ]
    return Contract(columns, row_rules)


@dataclass(frozen=True)
class Source:
    name: str
    landing: str
    is_daily: bool
    natural_key: tuple[str, ...]
    normalise: tuple[str, ...]
    na_values: tuple[str, ...]
    time_column: str | None
    contracts: dict[str, str] = field(default_factory=dict)

    def landing_stem(self, day: str | None = None) -> str:
        return self.landing.format(date=day) if self.is_daily else self.landing

    @property
    def raw_contract(self) -> Contract:
        return load_contract(self.contracts["raw"])

    @property
    def cleaned_contract(self) -> Contract:
        return load_contract(self.contracts["cleaned"])


def registry() -> dict[str, Source]:
    document = yaml.safe_load((PACKAGE / "sources" / "sources.yaml").read_text())
    return {
        name: Source(
            name=name,
            landing=e["landing"],
            is_daily=e["partitioning"] == "daily",
            natural_key=tuple(e.get("natural_key") or ()),
            normalise=tuple(e.get("normalise") or ()),
            na_values=tuple(str(v) for v in e.get("na_values", ("", "NA"))),
            time_column=e.get("time_column"),
            contracts=dict(e["contracts"]),
        )
        for name, e in document["sources"].items()
    }


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    return rows(con, sql)[0]


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return one(con, sql)[0]


def ddl(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    t0 = time.perf_counter()
    con.execute(sql).fetchall()  # a statement's result must be drained before the next one
    if TRACE:
        print(f"{time.perf_counter() - t0:7.2f} s  {' '.join(sql.split())[:110]}", flush=True)


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


class Lake:
    def __init__(self, con: duckdb.DuckDBPyConnection, root: Path, window: tuple[dt.date, dt.date]):
        self.con, self.root, self.window = con, root, window

    def write(self, layer: str, table: str, sql: str, daily: bool) -> int:
        """Write a query's result to <root>/<layer>/<table> the way the IO manager does."""
        uri = str(self.root / layer / table)
        data = self.con.sql(sql).to_arrow_table()
        predicate, partition_by = None, None
        if daily:
            start, end = self.window
            predicate = f"date >= '{start}' AND date < '{end}'"
            partition_by = ["date"]
        try:
            DeltaTable(uri)
        except TableNotFoundError:
            DeltaTable.create(uri, data.schema, mode="ignore", partition_by=partition_by)
        write_deltalake(
            uri, data, mode="overwrite", predicate=predicate, partition_by=partition_by,
            schema_mode="merge",
        )  # fmt: skip
        return data.num_rows


def raw_sql(source, landing: Path, days: list[dt.date], columns: list[str]) -> str:
    """The window's files as text, with the partition day and the lineage columns."""

    def delivered(stem: str) -> list[Path]:
        """``<stem>.csv`` and ``<stem>_<anything>.csv``, by name (a correction sorts after)."""
        folder, base = (landing / stem).parent, (landing / stem).name
        return sorted(
            p
            for p in folder.glob(f"{base}*.csv")
            if p.stem == base or p.stem.startswith(base + "_")
        )

    if source.is_daily:
        paths = [p for d in days for p in delivered(source.landing_stem(d.isoformat()))]
    else:
        paths = delivered(source.landing_stem())[-1:]  # a snapshot: the newest delivery
    files = "[" + ", ".join(lit(str(p)) for p in paths) + "]"
    root = lit(str(landing) + "/")
    date = (
        "CAST(regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})', 1) AS DATE) AS date, "
        if source.is_daily
        else ""
    )
    selected = ", ".join(q(c) for c in columns)
    return f"""
        SELECT {date}{selected},
               replace(filename, {root}, '') AS _source_file,
               row_number() OVER (PARTITION BY filename) AS _source_row,
               now() AS _delivered_at, now() AS _loaded_at,
               NULL::VARCHAR AS _parse_error, NULL::VARCHAR AS _raw_text
        FROM read_csv({files}, all_varchar = true, header = true, filename = true,
                      union_by_name = true)
    """


def typed_expr(name: str, kind: str, na: tuple[str, ...]) -> tuple[str, str]:
    """(typed value, delivered-but-untypeable condition) for one column."""
    tokens = ", ".join(lit(t) for t in na)
    v = f"(CASE WHEN trim({q(name)}) IN ({tokens}) THEN NULL ELSE trim({q(name)}) END)"
    if kind == "string":
        typed = v
    elif kind == "int":
        typed = f"(CASE WHEN TRY_CAST({v} AS DOUBLE) = floor(TRY_CAST({v} AS DOUBLE)) THEN TRY_CAST({v} AS DOUBLE)::BIGINT END)"
    elif kind == "float":
        typed = f"TRY_CAST({v} AS DOUBLE)"
    elif kind == "bool":
        typed = (
            f"(CASE WHEN lower({v}) IN ({', '.join(map(lit, TRUE))}) THEN true "
            f"WHEN lower({v}) IN ({', '.join(map(lit, FALSE))}) THEN false END)"
        )
    elif kind == "timestamp":
        typed = f"TRY_CAST({v} AS TIMESTAMPTZ)"
    elif kind == "date":
        typed = f"TRY_CAST({v} AS DATE)"
    else:
        raise ValueError(kind)
    return typed, f"({v} IS NOT NULL AND {typed} IS NULL)"


def local_to_utc(y: str, mo: str, d: str, h: str, mi: str, zone: str, hint: str | None) -> str:
    """Local clock to UTC like conform.local_to_utc: DST reading first; the hint picks the other."""
    second = f"make_timestamptz({y}, {mo}, {d}, {h}, {mi}, 0.0, {zone})"
    if hint is None:
        return second
    first = f"({second} - INTERVAL 1 HOUR)"
    ambiguous = f"(timezone({zone}, {first}) = timezone({zone}, {second}))"
    return (
        f"(CASE WHEN {ambiguous} AND date_trunc('hour', {second}) <> date_trunc('hour', {hint}) "
        f"THEN {first} ELSE {second} END)"
    )


def transform_sql(source_name: str) -> list[str]:
    """The per-source logic (sources/flights.py, sources/weather.py) as select expressions."""
    if source_name == "weather":
        return [
            "observed_at := "
            + local_to_utc("year", "month", "day", "hour", "0", lit(TZ), "time_hour")
        ]
    if source_name == "flights":
        sched = local_to_utc("year", "month", "day", "hour", "minute", lit(TZ), "time_hour")
        arr_minutes = "((sched_arr_time // 100) * 60 + sched_arr_time % 100)"
        arrival = (
            f"(make_timestamptz(year, month, day, ({arr_minutes} // 60) % 24, {arr_minutes} % 60, "
            f"0.0, z.tzone) + to_days(({arr_minutes} // 1440)::INTEGER))"
        )
        return [
            f"sched_dep_at := {sched}",
            f"_arrival := {arrival}",
        ]
    return []


class Cleaner:
    """raw_<s> -> cleaned_<s> and quarantine_<s>, from the source's contract."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source, checks: dict) -> None:
        self.con, self.source, self.checks = con, source, checks
        self.contract = source.cleaned_contract
        self.name = source.name

    def run(self) -> dict:
        s, c, con = self.name, self.contract, self.con
        raw_columns = [x[0] for x in rows(con, f"DESCRIBE raw_{s}")]
        typed, problems = [], []
        for spec in c.columns:
            if spec.name == "date" or spec.name not in raw_columns:
                continue
            expr, failed = typed_expr(spec.name, spec.type, tuple(self.source.na_values))
            if spec.name in self.source.normalise:
                expr = f"nullif(upper(trim({expr})), '')"
            typed.append(f"{expr} AS {q(spec.name)}")
            problems.append(f"CASE WHEN {failed} THEN '{spec.name}.type' END")
        date = "date, " if self.source.is_daily else ""
        ddl(
            con,
            f"""
            CREATE OR REPLACE TEMP TABLE typed_{s} AS
            SELECT row_number() OVER () AS _row, {date}{", ".join(typed)},
                   {", ".join(LINEAGE)},
                   list_filter([{", ".join(problems)}], lambda x: x IS NOT NULL) AS _type_problems
            FROM raw_{s}
        """,
        )
        # The per-source logic, on rows that typed.
        extra = transform_sql(s)
        if s == "flights":
            ddl(
                con,
                f"""
                CREATE OR REPLACE TEMP TABLE shaped_{s} AS
                SELECT * EXCLUDE (_arrival, tzone),
                       CASE WHEN _arrival >= sched_dep_at THEN _arrival
                            ELSE _arrival + INTERVAL 1 DAY END AS sched_arr_at,
                       dep_at, cancelled
                FROM (
                    SELECT t.*, z.tzone, {", ".join(e.split(" := ")[1] + " AS " + e.split(" := ")[0] for e in extra)},
                           sched_dep_at + to_minutes(dep_delay::BIGINT) AS dep_at,
                           dep_time IS NULL AS cancelled
                    FROM typed_{s} t LEFT JOIN cleaned_airports z ON t.dest = z.faa
                    WHERE len(_type_problems) = 0
                )
            """,
            )
            ddl(
                con,
                f"""
                CREATE OR REPLACE TEMP TABLE shaped_{s} AS
                SELECT *, sched_arr_at + to_minutes(arr_delay::BIGINT) AS arr_at,
                       date_diff('second', dep_at, sched_arr_at + to_minutes(arr_delay::BIGINT)) / 60.0 AS block_time
                FROM shaped_{s}
            """,
            )
        else:
            select_extra = "".join(f", {e.split(' := ')[1]} AS {e.split(' := ')[0]}" for e in extra)
            ddl(
                con,
                f"""
                CREATE OR REPLACE TEMP TABLE shaped_{s} AS
                SELECT *{select_extra} FROM typed_{s} WHERE len(_type_problems) = 0
            """,
            )
        # Exact duplicates (lineage ignored): the first delivered one is kept. Equal rows share their
        # natural key, so the wide comparison only runs over the keys delivered more than once.
        data_columns = [x.name for x in c.columns if x.name in self._columns(f"shaped_{s}")]
        key = ", ".join(map(q, self.source.natural_key))
        ddl(
            con,
            f"""
            CREATE OR REPLACE TEMP TABLE repeated_{s} AS
            SELECT {key} FROM shaped_{s} GROUP BY ALL HAVING count(*) > 1
        """,
        )
        ddl(
            con,
            f"""
            CREATE OR REPLACE TEMP TABLE dedup_{s} AS
            SELECT * FROM shaped_{s} WHERE _row NOT IN (
                SELECT _row FROM (SELECT * FROM shaped_{s} SEMI JOIN repeated_{s} USING ({key}))
                QUALIFY row_number() OVER (PARTITION BY {", ".join(map(q, data_columns))}
                                           ORDER BY _source_file, _source_row) > 1
            )
        """,
        )
        exact = scalar(
            con, f"SELECT (SELECT count(*) FROM shaped_{s}) - (SELECT count(*) FROM dedup_{s})"
        )
        # Every rule with its action.
        cases: list[str] = []
        for spec in c.columns:
            if not spec.nullable and spec.name in data_columns:
                cases.append(
                    f"CASE WHEN {q(spec.name)} IS NULL THEN {{'rule': '{spec.name}.not_null', 'action': 'drop', 'reason': '{spec.name} is required but missing'}} END"
                )
        for rule in c.rules:
            cond = self._broken(rule)
            if cond is None:
                continue
            reason = lit(f"{rule.column or ''} breaks {rule.id}")
            cases.append(
                f"CASE WHEN {cond} THEN {{'rule': {lit(rule.id)}, 'action': {lit(rule.action)}, 'reason': {reason}}} END"
            )
        if self.source.is_daily and self.source.time_column:
            cases.append(
                f"CASE WHEN CAST(timezone({lit(TZ)}, {q(self.source.time_column)}) AS DATE) <> date "
                f"THEN {{'rule': 'in_partition', 'action': 'drop', 'reason': 'wrong partition'}} END"
            )
        ddl(
            con,
            f"""
            CREATE OR REPLACE TEMP TABLE ruled_{s} AS
            SELECT *, list_filter([{", ".join(cases)}], lambda x: x IS NOT NULL) AS _violations
            FROM dedup_{s}
        """,
        )
        failing = scalar(
            con,
            f"SELECT count(*) FROM ruled_{s} WHERE len(list_filter(_violations, lambda x: x.action = 'fail')) > 0",
        )
        if failing:
            raise SystemExit(f"{s}: {failing} row(s) break a fail rule")
        # The natural key: a later delivery supersedes (again only over keys delivered twice).
        ddl(
            con,
            f"""
            CREATE OR REPLACE TEMP TABLE kept_{s} AS
            SELECT * FROM ruled_{s} WHERE len(list_filter(_violations, lambda x: x.action = 'drop')) = 0
        """,
        )
        ddl(
            con,
            f"""
            CREATE OR REPLACE TEMP TABLE superseded_{s} AS
            SELECT _row FROM (SELECT _row, {key}, _source_file, _source_row
                              FROM kept_{s} SEMI JOIN repeated_{s} USING ({key}))
            QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _source_file DESC, _source_row DESC) > 1
        """,
        )
        out_columns = ", ".join(map(q, [*data_columns, *LINEAGE]))
        ddl(
            con,
            f"""
            CREATE OR REPLACE TABLE cleaned_{s} AS
            SELECT {out_columns}, now() AS _cleaned_at FROM kept_{s} ANTI JOIN superseded_{s} USING (_row)
        """,
        )
        raw_data = [x for x in raw_columns if not x.startswith("_") and x != "date"]
        record = "to_json({" + ", ".join(f"{lit(x)}: r.{q(x)}" for x in raw_data) + "})"
        date_col = "r.date, " if self.source.is_daily else ""
        ddl(
            con,
            f"""
            CREATE OR REPLACE TABLE quarantine_{s} AS
            WITH problems AS (
                SELECT _row, unnest(_type_problems) AS rule, 'not typeable' AS reason FROM typed_{s}
                UNION ALL
                SELECT _row, v.rule, v.reason FROM (
                    SELECT _row, unnest(_violations) AS v FROM ruled_{s}
                ) WHERE v.action = 'drop'
                UNION ALL
                SELECT _row, 'superseded', 'a later delivery has the same key' FROM superseded_{s}
            ), grouped AS (
                SELECT _row, string_agg(DISTINCT rule, '; ') AS rules,
                       string_agg(DISTINCT reason, '; ') AS reasons
                FROM problems GROUP BY _row
            )
            SELECT {date_col}r._source_file, r._source_row, 'cleaned' AS layer, g.rules, g.reasons,
                   {record} AS record, r._raw_text AS raw_text, 'duckdb' AS run_id,
                   now() AS quarantined_at
            FROM grouped g JOIN (SELECT row_number() OVER () AS _row, * FROM raw_{s}) r USING (_row)
        """,
        )
        # The check figures: accounting, key uniqueness, reference rates, warn counts.
        ref_terms = []
        for rule in c.references:
            table, column = rule.reference
            ref_terms.append(
                f"count_if({q(rule.column)} IS NOT NULL AND {q(rule.column)} NOT IN "
                f"(SELECT {q(column)} FROM cleaned_{table} WHERE {q(column)} IS NOT NULL)) AS {q(rule.id)}"
            )
        figures = one(
            con,
            f"""
            SELECT count(*) AS rows_out,
                   count(*) - (SELECT count(*) FROM (SELECT DISTINCT {key} FROM cleaned_{s})) AS duplicated_keys
                   {"".join(", " + t for t in ref_terms)}
            FROM cleaned_{s}
        """,
        )
        warn = rows(
            con,
            f"""
            SELECT v.rule, count(*) FROM (SELECT unnest(_violations) AS v FROM ruled_{s})
            WHERE v.action = 'warn' GROUP BY ALL
        """,
        )
        rows_in = scalar(con, f"SELECT count(*) FROM raw_{s}")
        quarantined = scalar(con, f"SELECT count(*) FROM quarantine_{s}")
        for stage in ("raw", "typed", "shaped", "repeated", "dedup", "ruled", "kept", "superseded"):
            ddl(con, f"DROP TABLE IF EXISTS {stage}_{s}")  # free the intermediate copies
        self.checks[s] = {
            "rows_in": rows_in, "rows_out": figures[0], "rows_quarantined": quarantined,
            "exact_duplicates_removed": exact, "duplicated_keys": figures[1],
            "warn_counts": dict(warn),
        }  # fmt: skip
        return self.checks[s]

    def _columns(self, table: str) -> list[str]:
        return [x[0] for x in rows(self.con, f"DESCRIBE {table}")]

    def _broken(self, rule) -> str | None:
        if rule.reference is not None:
            table, column = rule.reference
            col = q(rule.column)
            return f"({col} IS NOT NULL AND {col} NOT IN (SELECT {q(column)} FROM cleaned_{table} WHERE {q(column)} IS NOT NULL))"
        if rule.expression is not None:
            return f"NOT coalesce({rule.expression}, true)"
        col, args = q(rule.column), rule.args
        if rule.check == "in_range":
            lo, hi = (args["min_value"], args["max_value"]) if isinstance(args, dict) else args
            return f"NOT coalesce({col} BETWEEN {lo} AND {hi}, true)"
        if rule.check == "isin":
            return f"NOT coalesce({col} IN ({', '.join(map(lit, args))}), true)"
        if rule.check == "str_matches":
            pattern = args if isinstance(args, str) else args[0]
            return f"NOT coalesce(regexp_matches({col}, {lit(pattern)}), true)"
        if rule.check == "greater_than":
            value = args if not isinstance(args, list) else args[0]
            return f"NOT coalesce({col} > {value}, true)"
        if rule.check == "greater_than_or_equal_to":
            value = args if not isinstance(args, list) else args[0]
            return f"NOT coalesce({col} >= {value}, true)"
        raise SystemExit(f"duckdb peer: no SQL for check {rule.check!r} ({rule.id})")


FEATURES_SQL = """
WITH f AS (
    SELECT *, (arr_delay IS NOT NULL AND NOT coalesce(cancelled, false) AND arr_delay < 15) AS on_time
    FROM cleaned_flights
), carrier_day AS (
    SELECT carrier, date AS d, count(*) AS n, sum(on_time::INTEGER) AS s FROM f GROUP BY ALL
), carrier_7d AS (
    SELECT carrier, d + k::INTEGER AS day, sum(n) AS n, sum(s) AS s
    FROM carrier_day, range(1, 8) r(k) GROUP BY ALL
), route_day AS (
    SELECT origin, dest, date AS d, count(*) AS n, sum(on_time::INTEGER) AS s FROM f GROUP BY ALL
), route_7d AS (
    SELECT origin, dest, d + k::INTEGER AS day, sum(n) AS n, sum(s) AS s
    FROM route_day, range(1, 8) r(k) GROUP BY ALL
), w AS (
    SELECT origin, observed_at, temp, humid, wind_speed, precip, visib FROM cleaned_weather
    QUALIFY row_number() OVER (PARTITION BY origin, observed_at ORDER BY _source_file DESC, _source_row DESC) = 1
)
SELECT f.date, f.carrier, f.flight, f.origin, f.dest, f.tailnum, f.sched_dep_at,
       hour(timezone('America/New_York', f.sched_dep_at))::BIGINT AS sched_hour,
       (isodow(timezone('America/New_York', f.sched_dep_at)) - 1)::BIGINT AS weekday,
       w.temp, w.humid, w.wind_speed, w.precip, w.visib,
       (f.year - p.year)::BIGINT AS plane_age,
       coalesce(c.n, 0)::BIGINT AS carrier_flights_7d, c.s / c.n AS carrier_on_time_rate_7d,
       coalesce(r.n, 0)::BIGINT AS route_flights_7d, r.s / r.n AS route_on_time_rate_7d,
       f.cancelled, f.dep_delay, f.arr_delay, f.on_time
FROM f
LEFT JOIN carrier_7d c ON f.carrier = c.carrier AND f.date = c.day
LEFT JOIN route_7d r ON f.origin = r.origin AND f.dest = r.dest AND f.date = r.day
LEFT JOIN w ON f.origin = w.origin AND date_trunc('hour', f.sched_dep_at) = w.observed_at
LEFT JOIN cleaned_planes p ON f.tailnum = p.tailnum
WHERE f.date >= DATE '{start}' AND f.date < DATE '{end}'
"""


def run(landing: Path, lake_root: Path, start: dt.date, end: dt.date, timer: Timer) -> dict:
    con = duckdb.connect()
    ddl(con, "SET TimeZone = 'UTC'")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    window = (start, end + dt.timedelta(days=1))
    lake = Lake(con, lake_root, window)
    checks: dict = {}
    done: set[str] = set()
    pending = list(registry().values())
    while pending:
        ready = [
            s for s in pending
            if all(r.reference[0] in done for r in s.cleaned_contract.references)
            and (s.name != "flights" or "airports" in done)
        ]  # fmt: skip
        for source in ready:
            pending.remove(source)
            with timer("raw"):
                columns = source.raw_contract.column_names
                ddl(con, f"CREATE OR REPLACE TABLE raw_{source.name} AS "
                            + raw_sql(source, landing, days, columns))  # fmt: skip
                lake.write("raw", source.name, f"SELECT * FROM raw_{source.name}", source.is_daily)
            with timer("clean"):
                Cleaner(con, source, checks).run()
            with timer("cleaned_write"):
                lake.write(
                    "cleaned", source.name, f"SELECT * FROM cleaned_{source.name}", source.is_daily
                )
                lake.write(
                    "quarantine",
                    source.name,
                    f"SELECT * FROM quarantine_{source.name}",
                    source.is_daily,
                )
            done.add(source.name)
    with timer("features"):
        ddl(
            con,
            "CREATE OR REPLACE TABLE features AS "
            + FEATURES_SQL.format(start=window[0], end=window[1]),
        )
        broken = scalar(
            con,
            "SELECT count_if(NOT coalesce(sched_hour BETWEEN 0 AND 23, false) "
            "OR NOT coalesce(weekday BETWEEN 0 AND 6, false) "
            "OR NOT coalesce(carrier_on_time_rate_7d BETWEEN 0 AND 1, true) "
            "OR NOT coalesce(route_on_time_rate_7d BETWEEN 0 AND 1, true)) FROM features",
        )
        if broken:
            raise SystemExit(f"features: {broken} rule violation(s)")
    with timer("features_write"):
        rows = lake.write("features", "flight_delay", "SELECT * FROM features", True)
    checks["features"] = {"rows_out": rows}
    return {"counts": checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True, help="inclusive")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    timer = Timer()
    t0 = time.perf_counter()
    facts = run(args.landing.resolve(), args.lake.resolve(), args.start, args.end, timer)
    report = {
        "import_s": round(IMPORTED - T0, 3),
        "work_s": round(time.perf_counter() - t0, 3),
        "phases_s": timer.phases,
        "duckdb_threads": scalar(duckdb.connect(), "SELECT current_setting('threads')"),
        **facts,
    }
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
