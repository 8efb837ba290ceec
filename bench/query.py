"""Query latency over the feature table, read as an analyst would: filtered aggregates by carrier and month.

    python -m bench.query --table DIR/features/flight_delay [--reps 40] [--out F.json]

The analyst's way is DuckDB over the Delta table. DuckDB's ``delta`` extension (``delta_scan``) is
downloaded on first use, and this machine has no internet except the Python package index, so it is
tried (``LOAD delta``, never ``INSTALL``) and, when missing, stood in for: delta-rs opens the table
(the log gives the current snapshot's files) and DuckDB reads exactly those Parquet files with its
own reader (``read_parquet([...], hive_partitioning = true)``), which is what ``delta_scan`` does
(this writer uses no deletion vectors or column mapping). Two other readers are timed for
comparison: DuckDB over delta-rs's Arrow dataset (``to_pyarrow_dataset()``), and pandas
(``to_pandas`` with filters, then ``groupby``). Each timed query opens the table again (a new
snapshot, as a notebook cell would), then runs the query and fetches the result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

T0 = time.perf_counter()

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
from deltalake import DeltaTable  # noqa: E402

IMPORTED = time.perf_counter()

QUERIES = {
    "jfk_by_carrier_month": """
        SELECT carrier, month(date) AS month, count(*) AS flights,
               avg(arr_delay) AS mean_arr_delay, avg(on_time::INTEGER) AS on_time_rate
        FROM t WHERE origin = 'JFK' GROUP BY ALL ORDER BY ALL
    """,
    "summer_not_cancelled": """
        SELECT carrier, month(date) AS month, count(*) AS flights, avg(dep_delay) AS mean_dep_delay
        FROM t WHERE date BETWEEN DATE '2013-06-01' AND DATE '2013-08-31' AND NOT cancelled
        GROUP BY ALL ORDER BY ALL
    """,
    "big3_delay_quantiles": """
        SELECT carrier, month(date) AS month, quantile_cont(arr_delay, 0.9) AS p90_arr_delay,
               avg(carrier_on_time_rate_7d) AS mean_rate_7d
        FROM t WHERE carrier IN ('UA', 'AA', 'DL') GROUP BY ALL ORDER BY ALL
    """,
}
PANDAS_FILTERS = {
    "jfk_by_carrier_month": [("origin", "=", "JFK")],
    "summer_not_cancelled": None,
    "big3_delay_quantiles": [("carrier", "in", ["UA", "AA", "DL"])],
}


def delta_extension() -> str | None:
    """None when ``delta_scan`` works offline, else why not."""
    con = duckdb.connect()
    try:
        con.execute("SET autoinstall_known_extensions = false").fetchall()
        con.execute("LOAD delta").fetchall()
        return None
    except duckdb.Error as error:
        return str(error).splitlines()[0]


def duckdb_query(uri: str, sql: str, use_delta_scan: bool) -> int:
    """delta_scan when it loads, else DuckDB's Parquet reader over the snapshot's files."""
    con = duckdb.connect()
    if use_delta_scan:
        source = f"delta_scan('{uri}')"
    else:
        files = ", ".join(f"'{f}'" for f in DeltaTable(uri).file_uris())
        source = f"read_parquet([{files}], hive_partitioning = true)"
    return len(con.execute(sql.replace(" t ", f" {source} ")).fetchall())


def arrow_dataset_query(uri: str, sql: str) -> int:
    con = duckdb.connect()
    t = DeltaTable(uri).to_pyarrow_dataset()  # noqa: F841  (DuckDB finds it by name)
    return len(con.execute(sql).fetchall())


def pandas_query(uri: str, name: str) -> int:
    columns = ["date", "carrier", "origin", "arr_delay", "dep_delay", "on_time", "cancelled",
               "carrier_on_time_rate_7d"]  # fmt: skip
    frame = DeltaTable(uri).to_pandas(columns=columns, filters=PANDAS_FILTERS[name])
    frame["month"] = frame["date"].map(lambda d: d.month)
    if name == "summer_not_cancelled":
        frame = frame[(frame["month"].between(6, 8)) & ~frame["cancelled"].astype(bool)]
        out = frame.groupby(["carrier", "month"])["dep_delay"].agg(["size", "mean"])
    elif name == "jfk_by_carrier_month":
        out = frame.groupby(["carrier", "month"]).agg(
            flights=("arr_delay", "size"), mean=("arr_delay", "mean"), rate=("on_time", "mean")
        )
    else:
        out = frame.groupby(["carrier", "month"]).agg(
            p90=("arr_delay", lambda s: s.quantile(0.9)), rate=("carrier_on_time_rate_7d", "mean")
        )
    return len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    uri = str(args.table.resolve())
    missing = delta_extension()
    names = list(QUERIES)
    t0 = time.perf_counter()
    first_rows = duckdb_query(uri, QUERIES[names[0]], missing is None)
    first_s = time.perf_counter() - t0
    samples: dict[str, list[float]] = {"duckdb": [], "duckdb_arrow_dataset": [], "pandas": []}
    by_query: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.reps):
        name = names[i % len(names)]
        t0 = time.perf_counter()
        duckdb_query(uri, QUERIES[name], missing is None)
        elapsed = time.perf_counter() - t0
        samples["duckdb"].append(elapsed)
        by_query[name].append(elapsed)
        t0 = time.perf_counter()
        arrow_dataset_query(uri, QUERIES[name])
        samples["duckdb_arrow_dataset"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pandas_query(uri, name)
        samples["pandas"].append(time.perf_counter() - t0)
    table = DeltaTable(uri)
    report = {
        "import_s": round(IMPORTED - T0, 3),
        "reader": "duckdb delta_scan"
        if missing is None
        else "delta-rs snapshot files -> duckdb read_parquet (delta_scan stand-in)",
        "delta_extension_unavailable": missing,
        "first_query_s": round(first_s, 4),
        "first_query_rows": first_rows,
        "samples_s": {k: [round(v, 4) for v in vs] for k, vs in samples.items()},
        "by_query_s": {k: [round(v, 4) for v in vs] for k, vs in by_query.items()},
        "table_rows": int(
            pa.table(table.get_add_actions(flatten=True))["num_records"].to_numpy().sum()
        ),
        "table_files": len(table.file_uris()),
        "table_version": table.version(),
        "queries": {k: " ".join(v.split()) for k, v in QUERIES.items()},
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
