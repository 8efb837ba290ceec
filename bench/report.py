"""Results -> ``summary.json`` (the headline figures), ``bench.md`` (tables) and ``bench.png`` (plots).

python -m bench.report [--quick]     # rebuild them from bench/results[/quick]/bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.common import GIB, MIB, RESULTS, median, percentile, write_json

WAY_ORDER = [
    "dagster_cli", "dagster_cli_dagster_log", "dagster_cli_postgres", "dagster_cli_daily",
    "dagster_inprocess", "bare", "io_floor", "duckdb", "noop_1", "noop_8", "noop_shape",
    "noop_shape_dagster_log", "noop_imports", "dagster_cli_one_core", "bare_one_core",
    "duckdb_one_core",
]  # fmt: skip
LABELS = {
    "dagster_cli": "Dagster CLI",
    "dagster_cli_postgres": "Dagster CLI, PostgreSQL instance",
    "dagster_cli_daily": "CLI, snapshots apart + daily backfill",
    "dagster_cli_dagster_log": "CLI, Dagster's own SQLite event log (before)",
    "noop_1": "1 no-op daily asset",
    "noop_8": "8 no-op daily assets",
    "noop_shape": "Dagster CLI, no-op assets and checks as many as the pipeline's",
    "noop_shape_dagster_log": "the same, Dagster's own SQLite event log (before)",
    "noop_imports": "the bare script's imports only",
    "dagster_inprocess": "Dagster in-process",
    "bare": "bare script",
    "io_floor": "I/O floor (pyarrow)",
    "duckdb": "DuckDB peer",
    "dagster_cli_one_core": "Dagster CLI, one CPU",
    "bare_one_core": "bare script, one CPU",
    "duckdb_one_core": "DuckDB peer, one CPU",
}
TARGETS = {
    # name: (target, comparison, unit, what)
    "overhead_ratio": (1.2, "<=", "x", "Dagster CLI run / bare script, one scaled partition, whole process each"),
    "io_floor_ratio": (5.0, "<=", "x", "Dagster CLI run / pyarrow I/O floor, one scaled partition"),
    "peer_ratio": (1.0, "<", "x", "Dagster CLI run / DuckDB SQL peer, one scaled partition"),
    "full_year_ratio": (1.5, "<=", "x", "Dagster CLI single-run backfill of 365 days / bare script, same run"),
    "full_year_backfill_s": (10.0, "<=", "s", "Dagster CLI single-run backfill of the real 2013 year, whole process"),
    "file_to_feature_p50_s": (10.0, "<=", "s", "landed file -> committed feature partition under dagster dev, p50"),
    "linearity": (1.2, "<=", "x", "time per row at the largest size / at the smallest (Dagster run in-process, `execute_job` time)"),
    "peak_mem_ratio": (3.0, "<=", "x", "peak RSS of the Dagster CLI run (process tree) / the partition's flights as delivered, in memory (Arrow)"),
    "query_p95_s": (0.5, "<", "s", "filtered aggregate by carrier and month over the year's feature table, p95"),
}  # fmt: skip


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def med(values: list[float]) -> float:
    m = median(values)
    return float("nan") if m is None else m


def facts(landing: Path) -> dict[str, Any]:
    path = landing / "_bench_facts.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    csvs = list((landing / "flights").glob("*.csv"))
    out["flights_csv_bytes"] = sum(p.stat().st_size for p in csvs)
    out["flights_files"] = len(csvs)
    return out


def ok_runs(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("ok")]


def timed_runs(scenarios: dict) -> dict[str, int]:
    """Each scenario's timed runs per way (the most any of its ways has)."""
    counts = {}
    for name, data in scenarios.items():
        runs = data.get("runs") if isinstance(data, dict) else None
        if isinstance(runs, dict):
            lists = [len(r) for r in runs.values() if isinstance(r, list)]
            if lists:
                counts[name] = max(lists)
    return counts


def walls(runs: list[dict]) -> list[float]:
    return [r["wall_s"] for r in ok_runs(runs)]


def inner(runs: list[dict], key: str) -> list[float]:
    return [r["inner"][key] for r in ok_runs(runs) if key in r.get("inner", {})]


def paired_ratio(a: list[dict], b: list[dict], key: str = "wall_s") -> float | None:
    """Median over rounds of a/b, pairing the runs of the same round (measured side by side)."""
    by_round = {r["round"]: r[key] for r in ok_runs(b)}
    ratios = [r[key] / by_round[r["round"]] for r in ok_runs(a) if r["round"] in by_round]
    return statistics.median(ratios) if ratios else None


def machine_line(results: dict) -> str:
    m = results.get("machine", {})
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores (shared), {m.get('memory_gib', '?')} GiB, {m.get('os', '')}"


def fresh_memory_line(results: dict) -> str:
    fresh = results.get("machine", {}).get("fresh_memory")
    if not fresh:
        return "- Fresh memory: not measured by this run"
    return (
        f"- Fresh memory (`bench/first_touch.py`): a new process takes {fresh['first_touch_s_per_gib']} s"
        f" to touch its first GiB, {fresh['again_s_per_gib']} s to touch it again; a run's peak"
        " memory is also time here"
    )


def run_floor_s(floor: dict | None) -> float | None:
    """Dagster's fixed part of one run: the no-op run's median wall minus the bare script's
    imports' median."""
    if not floor:
        return None
    run = median(walls(floor["runs"].get("noop_shape", [])))
    imports = median(walls(floor["runs"].get("noop_imports", [])))
    return run - imports if run is not None and imports is not None else None


def figures(results: dict) -> dict[str, dict]:
    sc = results.get("scenarios", {})
    out: dict[str, dict] = {}

    def put(name: str, value: float | None, scenario: str | None, note: str = "") -> None:
        target, comparison, unit, what = TARGETS[name]
        met = None
        if value is not None:
            met = value <= target if comparison == "<=" else value < target
        date = (sc.get(scenario) or {}).get("finished_at") if scenario else None
        out[name] = {
            "value": None if value is None else round(value, 3),
            "unit": unit,
            "target": f"{comparison} {target}",
            "met": met,
            "what": what,
            "note": note,
            "machine": machine_line(results),
            "date": date,
            "mode": results.get("mode"),
        }

    part = sc.get("partition")
    if part:
        runs = part["runs"]
        rows = part["rows"]
        floor = run_floor_s(sc.get("run_floor"))
        floor_note = ""
        if floor is not None:
            bare_s = median(walls(runs["bare"]))
            floor_note = (
                f"; Dagster's own floor for one run of this shape is {floor:.1f} s "
                f"(run_floor), and 20 % of the bare script is {0.2 * bare_s:.1f} s"
            )
        large = sc.get("large_day")
        if large and ok_runs(large["runs"].get("dagster_cli", [])):
            floor_note += (
                f"; at {large['rows']:,} flights the CLI run is "
                f"{_fmt(paired_ratio(large['runs']['dagster_cli'], large['runs']['bare']))}x "
                "the bare script (large_day)"
            )
        put(
            "overhead_ratio",
            paired_ratio(runs["dagster_cli"], runs["bare"]),
            "partition",
            f"{rows:,} flights in one day; Dagster in-process / bare = "
            f"{_fmt(paired_ratio(runs.get('dagster_inprocess', []), runs['bare']))}" + floor_note,
        )
        put(
            "io_floor_ratio",
            paired_ratio(runs["dagster_cli"], runs["io_floor"]),
            "partition",
            f"{rows:,} flights; bare / I/O floor = {_fmt(paired_ratio(runs['bare'], runs['io_floor']))}",
        )
        put(
            "peer_ratio",
            paired_ratio(runs["dagster_cli"], runs["duckdb"]),
            "partition",
            f"{rows:,} flights; bare / DuckDB = {_fmt(paired_ratio(runs['bare'], runs['duckdb']))}",
        )
        delivered = median(inner(runs["bare"], "flights_raw_arrow_bytes"))
        peak = median([r["peak_rss_mib"] * MIB for r in ok_runs(runs["dagster_cli"])])
        put(
            "peak_mem_ratio",
            peak / delivered if peak and delivered else None,
            "partition",
            f"peak {_gib(peak)} GiB vs {_gib(delivered)} GiB of delivered flights in Arrow; "
            f"bare script peak {_gib(median([r['peak_rss_mib'] * MIB for r in ok_runs(runs['bare'])]))} GiB",
        )
    year = sc.get("full_year")
    if year:
        runs = year["runs"]
        put(
            "full_year_ratio",
            paired_ratio(runs["dagster_cli"], runs["bare"]),
            "full_year",
            f"{year['partitions']} partitions; in-process / bare = "
            f"{_fmt(paired_ratio(runs.get('dagster_inprocess', []), runs['bare']))}",
        )
        floor = sc.get("dagster_floor") or {}
        shape = median(walls(floor.get("runs", {}).get("noop_shape", [])))
        floor_note = (
            f"; Dagster alone, the same {floor['partitions']} days of no-op assets and checks: "
            f"{_fmt(shape)} s (dagster_floor)"
            if shape is not None and floor.get("partitions") == year["partitions"]
            else ""
        )
        put(
            "full_year_backfill_s",
            median(walls(runs["dagster_cli"])),
            "full_year",
            f"{year['partitions']} partitions; bare script {_fmt(median(walls(runs['bare'])))} s, "
            f"in-process {_fmt(median(walls(runs.get('dagster_inprocess', []))))} s{floor_note}",
        )
    ftf = sc.get("file_to_feature")
    if ftf is not None:
        put("file_to_feature_p50_s", ftf.get("value"), "file_to_feature", ftf.get("note", ""))
    lin = sc.get("linearity")
    if lin:
        points = _linearity_points(lin, "dagster_inprocess", "materialize_s")
        value, note = None, "no successful size"
        if len(points) >= 2:
            (r0, t0), (r1, t1) = points[0], points[-1]
            value = (t1 / r1) / (t0 / r0)
            note = f"{r0:,} -> {r1:,} rows: {t0:.1f} s -> {t1:.1f} s"
            bare = _linearity_points(lin, "bare", "work_s")
            if len(bare) >= 2:
                note += (
                    f"; bare script {(bare[-1][1] / bare[-1][0]) / (bare[0][1] / bare[0][0]):.2f}"
                )
            tried = max(int(k) for k in lin["sizes"])
            if r1 != tried:
                note += f"; {tried:,} rows did not complete (see bench.md)"
        put("linearity", value, "linearity", note)
    query = sc.get("query")
    if query:
        samples = query["run"].get("inner", {}).get("samples_s", {}).get("duckdb", [])
        reader = query["run"].get("inner", {}).get("reader", "")
        put(
            "query_p95_s",
            percentile(samples, 95),
            "query",
            f"{reader}; p50 {_fmt(percentile(samples, 50), 3)} s over {len(samples)} queries",
        )
    return out


def _linearity_points(lin: dict, way: str, key: str) -> list[tuple[int, float]]:
    points = []
    for rows, data in sorted(lin["sizes"].items(), key=lambda kv: int(kv[0])):
        values = inner(data["runs"].get(way, []), key)
        if values:
            points.append((int(rows), statistics.median(values)))
    return points


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / GIB:.2f}"


def _way_table(
    runs: dict[str, list[dict]], base: str = "bare", base_label: str = "vs bare"
) -> list[str]:
    lines = [
        f"| way | median wall (s) | min-max (s) | {base_label} (paired) | inner work (s) "
        "| peak RSS (GiB) | cores busy | load 1-min |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for way in WAY_ORDER:
        if way not in runs:
            continue
        rs = runs[way]
        good = ok_runs(rs)
        if not good:
            lines.append(f"| {LABELS[way]} | failed | | | | | | |")
            continue
        w = walls(rs)
        work = inner(rs, "materialize_s") or inner(rs, "work_s")
        loads = [r["loadavg_before"][0] for r in good]
        # CPU seconds of the process tree per wall second (runs measured before session 10 have none)
        busy = [r["cpu_s"] / r["wall_s"] for r in good if r.get("cpu_s") is not None]
        lines.append(
            f"| {LABELS[way]} | {med(w):.2f} | {min(w):.2f}-{max(w):.2f} | "
            f"{_fmt(paired_ratio(rs, runs[base]))} | {_fmt(median(work))} | "
            f"{_gib(median([r['peak_rss_mib'] * MIB for r in good]))} | "
            f"{_fmt(median(busy)) if busy else ''} | {min(loads):.1f}-{max(loads):.1f} |"
        )
    return lines


def markdown(results: dict, figs: dict[str, dict]) -> str:
    sc = results.get("scenarios", {})
    code = results.get("code", {})
    changed = code.get("package_files_changed_since_commit") or []
    lines = [
        f"# Benchmarks ({results.get('mode')} mode)",
        "",
        "Produced by `python -m bench.run"
        + (" --quick" if results.get("mode") == "quick" else "")
        + "`; raw data in `bench.json` next to this file, plot in `bench.png`, headline figures in "
        "`summary.json`. Timings are whole processes (start-up included) unless marked inner.",
        "",
        f"- Machine: {machine_line(results)}; Python {results.get('machine', {}).get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in results.get("machine", {}).get("versions", {}).items()),
        fresh_memory_line(results),
        f"- Code: commit `{(code.get('commit') or '')[:12]}`"
        + (
            f" plus uncommitted changes in {len(changed)} package file(s) (the tree was being worked on)"
            if changed
            else ""
        ),
        "- Package measured: a copy taken when a run starts; digest per scenario: "
        + ", ".join(
            f"{name} `{(data.get('code') or code).get('package_digest')}`"
            for name, data in sc.items()
        ),
        # Scenarios are often re-run on their own (`--only`), with their own number of rounds:
        # the count is read from each scenario's runs, not from the last invocation.
        "- Method: ways alternate round by round (order rotated; "
        + (
            "no warm-up round"
            if results.get("mode") == "quick"
            else "an untimed warm-up round first, except where one run takes minutes"
        )
        + "), medians; ratios are medians of per-round ratios. "
        "Timed runs per way: "
        + ", ".join(f"{name} {count}" for name, count in timed_runs(sc).items())
        + ". The load average (1 min) before each run is in the tables: 2 cores shared with other "
        "sessions.",
        "",
        "## Headline figures against the targets",
        "",
        "| figure | value | target | met | measured as |",
        "|---|---:|---:|:---:|---|",
    ]
    for name, f in figs.items():
        met = {True: "yes", False: "**no**", None: "n/a"}[f["met"]]
        value = (
            "null"
            if f["value"] is None
            else f"{f['value']}{'' if f['unit'] == 'x' else ' '}{f['unit']}"
        )
        lines.append(
            f"| `{name}` | {value} | {f['target']} {f['unit']} | {met} | {f['what']}; {f['note']} |"
        )
    part = sc.get("partition")
    if part:
        fa = part.get("facts", {})
        lines += ["", f"## One partition: {part['rows']:,} flights on {part['day']}", "",
                  f"Scaled file: {fa.get('flights_csv_bytes', 0) / MIB:.0f} MiB of CSV "
                  f"({fa.get('flight_number_repeats_renumbered', 0):,} repeated flight numbers renumbered "
                  "to keep the natural key unique); real weather and reference tables.", ""]  # fmt: skip
        lines += _way_table(part["runs"])
    year = sc.get("full_year")
    if year:
        lines += ["", f"## The real year as one single-run backfill: {year['partitions']} partitions "
                  f"({year['window'][0]} .. {year['window'][1]})", ""]  # fmt: skip
        lines += _way_table(year["runs"])
    large = sc.get("large_day")
    if large:
        lines += ["", f"## The largest day through the CLI: {large['rows']:,} flights", "",
                  "The overhead figure's comparison (whole process against whole process) at the "
                  "linearity scenario's largest size, where Dagster's fixed part weighs less.", ""]  # fmt: skip
        lines += _way_table(large["runs"])
    one = sc.get("one_core")
    if one:
        lines += ["", f"## One CPU: {one['rows']:,} flights in one day", "",
                  "The scaled day with each way's process tree held to one CPU (`taskset`), next to "
                  "the bare script and the DuckDB peer on both cores (`python -m bench.run --only "
                  "one_core`). *Cores busy* is the tree's CPU time over its wall time.", ""]  # fmt: skip
        lines += _way_table(one["runs"])
    floor = sc.get("run_floor")
    if floor:
        lines += ["", "## Dagster's fixed part of one run", "",
                  f"One day of {floor['assets']} no-op assets and {floor['checks']} checks (as many as "
                  "the pipeline has, daily and unpartitioned alike; `bench/noop_location.py`, one check "
                  "result per check) "
                  "through `dagster asset materialize` and the project's SQLite instance, against "
                  "the bare script's start-up (`import bench.bare`): Dagster's imports and "
                  "instance, creating and planning the run, its events. "
                  f"**{_fmt(run_floor_s(floor), 1)} s** a run pays on top of the bare script, "
                  "whatever the day's size. Rows marked *before* run on Dagster's own SQLite event "
                  "log, which connects once per event (`dataeng_assets/instance_event_log.py` "
                  "connects once per file).", ""]  # fmt: skip
        lines += _way_table(floor["runs"], base="noop_imports", base_label="vs imports")
    sections = [
        ("dagster_floor", "Dagster alone: {partitions} partitions of assets that do nothing",
         "The same CLI backfill of daily assets that touch no data (`bench/noop_location.py`): "
         "what Dagster itself costs per asset and day, with the project's SQLite instance. The "
         "last row has the pipeline's shape{shape}: the floor of the year's single-run backfill, "
         "whatever the data costs.",
         "noop_1", "vs 1 asset"),
        ("experiments", "Experiment on the CLI's year backfill ({partitions} partitions)",
         "A proposed change measured without changing the package: the unpartitioned "
         "snapshot assets in their own run before the daily backfill (two commands, both "
         "timed).", "dagster_cli", "vs today's CLI"),
        ("instance_storage", "The CLI's backfill by instance storage: {partitions} partitions",
         "Same run, same lake; only `$DAGSTER_HOME/dagster.yaml` differs (the project's SQLite "
         "config, or `deploy/dagster.postgres.yaml` against a local PostgreSQL 15).",
         "dagster_cli", "vs SQLite"),
    ]  # fmt: skip
    for name, title, text, base, base_label in sections:
        data = sc.get(name)
        if data:
            shape = data.get("shape")
            shape_text = (
                f" ({shape['BENCH_NOOP_ASSETS']} daily assets and {shape['BENCH_NOOP_CHECKS']} "
                "daily checks, each check recorded every day, and "
                f"{shape['BENCH_NOOP_STATIC_ASSETS']} unpartitioned assets and "
                f"{shape['BENCH_NOOP_STATIC_CHECKS']} checks, once)"
                if shape
                else ""
            )
            lines += ["", "## " + title.format(partitions=data["partitions"]), "",
                      text.format(shape=shape_text), ""]  # fmt: skip
            lines += _way_table(data["runs"], base=base, base_label=base_label)
    lin = sc.get("linearity")
    if lin:
        lines += ["", "## Linearity and memory", "",
                  "| rows | way | median wall (s) | inner (s) | inner s per 1M rows | peak RSS (GiB) | peak / delivered flights in Arrow | status |",
                  "|---:|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        for rows, data in sorted(lin["sizes"].items(), key=lambda kv: int(kv[0])):
            for way in lin["ways"]:
                rs = data["runs"].get(way, [])
                good = ok_runs(rs)
                bad = [r for r in rs if not r.get("ok")]
                status = "ok" if good and not bad else (
                    "killed at memory cap" if any(r.get("killed_for_memory") for r in bad) else
                    ("failed" if bad else "not run"))  # fmt: skip
                if not good:
                    peak_bad = max((r["peak_rss_mib"] for r in bad), default=0) * MIB
                    lines.append(
                        f"| {int(rows):,} | {LABELS[way]} | | | | {_gib(peak_bad)} | | {status} |"
                    )
                    continue
                key = "materialize_s" if way == "dagster_inprocess" else "work_s"
                t = median(inner(rs, key))
                delivered = _delivered_bytes(lin, rows)
                peak = median([r["peak_rss_mib"] * MIB for r in good])
                lines.append(
                    f"| {int(rows):,} | {LABELS[way]} | {med(walls(rs)):.1f} | {_fmt(t)} | "
                    f"{_fmt(t / int(rows) * 1e6 if t else None)} | {_gib(peak)} | "
                    f"{_fmt(peak / delivered if delivered else None)} | {status} |"
                )
    query = sc.get("query")
    if query:
        q = query["run"].get("inner", {})
        samples = q.get("samples_s", {})
        readers = {
            "duckdb": "DuckDB `read_parquet` over the snapshot's files (the `delta_scan` stand-in)",
            "duckdb_arrow_dataset": "DuckDB over delta-rs's Arrow dataset (`to_pyarrow_dataset`)",
            "pandas": "pandas (`to_pandas(filters)` + groupby)",
        }
        unavailable = q.get("delta_extension_unavailable")
        lines += ["", "## Query latency over the feature table", "",
                  "DuckDB `delta_scan`: " + ("available, used." if not unavailable else
                  f"not available offline (`{unavailable}`), so delta-rs opens the table (its log "
                  "gives the snapshot's files) and DuckDB reads those Parquet files itself, as "
                  "`delta_scan` would.")
                  + f" Table: {q.get('table_rows', 0):,} rows in {q.get('table_files')} files (one per "
                  "day). Every query opens the table again; the three readers alternate.", "",
                  "| reader | p50 (s) | p95 (s) | queries |", "|---|---:|---:|---:|"]  # fmt: skip
        for key, label in readers.items():
            values = samples.get(key, [])
            if values:
                lines.append(
                    f"| {label} | {_fmt(percentile(values, 50), 3)} | "
                    f"{_fmt(percentile(values, 95), 3)} | {len(values)} |"
                )
        lines += ["", f"First query in a fresh process (DuckDB start-up included): "
                  f"{_fmt(q.get('first_query_s'), 3)} s.", "",
                  "Queries: " + "; ".join(f"`{k}`: `{v}`" for k, v in q.get("queries", {}).items())]  # fmt: skip
    imports = sc.get("imports")
    if imports:
        lines += [
            "",
            "## Start-up cost (whole process, median)",
            "",
            "| process | wall (s) | peak RSS (MiB) |",
            "|---|---:|---:|",
        ]
        for name, rs in imports["runs"].items():
            lines.append(
                f"| `{name}` | {med(walls(rs)):.2f} | {med([r['peak_rss_mib'] for r in ok_runs(rs)]):.0f} |"
            )
    ftf = sc.get("file_to_feature")
    if ftf is not None:
        lines += ["", "## Landed file to feature partition", "", ftf.get("note", "")]
        samples = (ftf.get("run", {}).get("inner") or {}).get("samples_s")
        if samples:
            lines += ["", "Samples (s): " + ", ".join(f"{x:.1f}" for x in samples) + ". Details: "
                      "`bench/results/file_to_feature.json`; the analysis: docs/operations.md."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _delivered_bytes(lin: dict, rows: str) -> float | None:
    for way in ("bare",):
        values = inner(lin["sizes"][rows]["runs"].get(way, []), "flights_raw_arrow_bytes")
        if values:
            return statistics.median(values)
    # in-process only (quick mode): the delivered flights' Arrow size scales with the CSV size
    csv = lin["sizes"][rows].get("facts", {}).get("flights_csv_bytes")
    return csv * 2.2 if csv else None


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = results.get("scenarios", {})
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for ax, name, title in (
        (axes[0][0], "partition", "One partition"),
        (axes[0][1], "full_year", "Real year, single-run backfill"),
    ):
        data = sc.get(name)
        if not data:
            ax.set_visible(False)
            continue
        ways = [w for w in WAY_ORDER if ok_runs(data["runs"].get(w, []))]
        ms = [med(walls(data["runs"][w])) for w in ways]
        lo = [m - min(walls(data["runs"][w])) for m, w in zip(ms, ways, strict=True)]
        hi = [max(walls(data["runs"][w])) - m for m, w in zip(ms, ways, strict=True)]
        ax.barh([LABELS[w] for w in ways], ms, xerr=[lo, hi], color="#4C72B0")
        for y, m in enumerate(ms):
            ax.text(m, y, f" {m:.1f} s", va="center")
        rows = (
            f"{data['rows']:,} flights"
            if name == "partition"
            else f"{data['partitions']} partitions"
        )
        ax.set_title(f"{title} ({rows}): median wall, whole process")
        ax.set_xlabel("seconds (bars: min-max)")
        ax.invert_yaxis()
    lin = sc.get("linearity")
    if lin:
        ax, ax2 = axes[1][0], axes[1][1]
        for way, key, color in (
            ("dagster_inprocess", "materialize_s", "#C44E52"),
            ("bare", "work_s", "#55A868"),
        ):
            pts = _linearity_points(lin, way, key)
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.loglog(xs, ys, "o-", color=color, label=f"{LABELS[way]} (inner)")
            ax.loglog(xs, [ys[0] * x / xs[0] for x in xs], ":", color=color, alpha=0.6)
            mem = []
            for rows in xs:
                good = ok_runs(lin["sizes"][str(rows)]["runs"].get(way, []))
                mem.append(med([r["peak_rss_mib"] / 1024 for r in good]))
            ax2.loglog(xs, mem, "o-", color=color, label=f"{LABELS[way]} peak RSS")
        sizes = sorted(int(r) for r in lin["sizes"])
        delivered = [(_delivered_bytes(lin, str(r)) or 0) * 3 / GIB for r in sizes]
        ax2.loglog(
            sizes, delivered, "k--", alpha=0.6, label="3x delivered flights (Arrow): the target"
        )
        ax.set_title("Time vs rows in one partition (dotted: linear from the smallest)")
        ax.set_xlabel("flights in the partition")
        ax.set_ylabel("seconds")
        ax.legend()
        ax2.set_title("Peak memory vs rows")
        ax2.set_xlabel("flights in the partition")
        ax2.set_ylabel("GiB")
        ax2.legend()
    else:
        axes[1][0].set_visible(False)
        axes[1][1].set_visible(False)
    fig.suptitle(
        f"dataeng-assets benchmarks ({results.get('mode')}): {machine_line(results)}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: dict, out_dir: Path) -> None:
    figs = figures(results)
    summary = {
        "mode": results.get("mode"),
        "machine": results.get("machine"),
        "code": results.get("code"),
        "figures": figs,
    }
    write_json(out_dir / "summary.json", summary)
    (out_dir / "bench.md").write_text(markdown(results, figs))
    plot(results, out_dir / "bench.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out_dir = RESULTS / "quick" if args.quick else RESULTS
    write_all(load(out_dir / "bench.json"), out_dir)


if __name__ == "__main__":
    main()
