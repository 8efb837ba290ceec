"""Run the benchmarks and write the results: ``python -m bench.run [--quick] [--only SCENARIO ...]``.

Scenarios (each writes its measurements into ``bench.json`` as soon as it is done):

- ``imports``: a bare ``import dagster`` and the code location's import, on their own;
- ``partition``: one scaled day (4M flights; 50k with --quick) through every way: the Dagster CLI
  as a user runs it, Dagster in-process (``execute_job``), the bare script, the pyarrow I/O floor and
  the DuckDB peer;
- ``run_floor``: Dagster's fixed part of one run: a day of no-op assets and checks, as many as the
  pipeline has (bench/noop_location.py), against the bare script's imports;
- ``full_year``: the real 2013 flights, 365 partitions, as one single-run backfill, every way
  (2013-01-01..14 with --quick, without the in-process way);
- ``dagster_floor``: the same backfill of daily assets that do nothing (1, 8, and as many assets and
  checks as the pipeline has): what Dagster itself costs per partition (bench/noop_location.py);
- ``linearity``: 1M, 4M and 16M flights in one day (12.5k, 50k, 200k with --quick), Dagster
  in-process and the bare script (in-process only with --quick); the partition scenario's runs are
  reused for its size; a run whose process tree passes the memory cap is killed and reported;
- ``large_day`` (on request): the largest linearity size (16M flights) through the Dagster CLI and
  the bare script, the overhead ratio where Dagster's fixed part weighs less;
- ``one_core`` (on request): the scaled day through the CLI, the bare script and the peer with each
  process tree held to one CPU, next to the bare script and the peer on both: the peer's share of
  the second core;
- ``query``: analyst queries over the full-year feature table written by the Dagster CLI;
- ``file_to_feature``: taken from ``bench/file_to_feature.py`` when it exists, else null.

Method: within a scenario the ways alternate (A B C A B C ..., the order rotated each round, after one
untimed warm-up round; no warm-up with --quick), each run a fresh child process on a fresh lake, and
figures are medians of ``--reps`` (5) runs; ratios are medians of the per-round ratios (side by side
in time). Every run records the load average before and after. The package is measured from a copy
taken at the start (``--no-snapshot`` to measure the tree in place). Full mode takes about three hours
on 2 cores; --quick (two rounds) about seven minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from bench import generate, report
from bench.common import (
    GIB,
    PYTHON,
    REPO,
    RESULTS,
    VENV_BIN,
    WORK,
    Measured,
    code_state,
    dagsters_own_event_log,
    loadavg,
    machine,
    now_iso,
    run_measured,
    write_json,
)

YEAR = (dt.date(2013, 1, 1), dt.date(2013, 12, 31))
TWO_WEEKS = (dt.date(2013, 1, 1), dt.date(2013, 1, 14))
DAY = generate.SCALED_DAY
ONE_CORE = "_one_core"  # the suffix of a way run with its process tree held to one CPU (taskset)
ALL_WAYS = ["dagster_cli", "dagster_inprocess", "bare", "io_floor", "duckdb"]
WAY_LABELS = {
    "dagster_cli": "Dagster CLI (`dagster asset materialize`, SQLite instance)",
    "dagster_inprocess": "Dagster in-process (`execute_job`, ephemeral instance)",
    "bare": "bare script (same functions, delta-rs writes)",
    "io_floor": "I/O floor (pyarrow CSV -> Parquet)",
    "duckdb": "DuckDB SQL peer (writes Delta)",
    "dagster_cli_postgres": "Dagster CLI with the PostgreSQL instance (deploy/dagster.postgres.yaml)",
    "dagster_cli_daily": "Dagster CLI: snapshots in their own run, then the daily assets",
    "dagster_cli_dagster_log": "Dagster CLI with Dagster's own SQLite event log (before session 8)",
    "noop_1": "Dagster CLI, 1 daily asset that does nothing",
    "noop_8": "Dagster CLI, 8 chained daily assets that do nothing",
    "noop_shape": "Dagster CLI, one day of no-op assets and checks as many as the pipeline's",
    "noop_shape_dagster_log": "the same with Dagster's own SQLite event log (before session 8)",
    "noop_imports": "the bare script's imports, nothing else",
}


def snapshot(src: Path) -> Path:
    """A copy of the package as it is now, so that one run measures one version of the code.

    Other people edit the tree while a long run goes on; the copy (first on PYTHONPATH, and the
    working directory of the Dagster CLI) keeps every measurement of a run on the same code.
    """
    dest = WORK / "src"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copytree(
        src / "dataeng_assets", dest / "dataeng_assets",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )  # fmt: skip
    for name in ("dagster.yaml", "pyproject.toml", "workspace.yaml"):
        if (src / name).exists():
            shutil.copy(src / name, dest / name)
    if (src / "deploy").is_dir():
        shutil.copytree(src / "deploy", dest / "deploy")
    return dest


def asset_selections(src: Path) -> tuple[str, str]:
    """The CLI selections of the snapshot (unpartitioned) assets and of the daily ones."""
    import yaml

    sources = yaml.safe_load((src / "dataeng_assets" / "sources" / "sources.yaml").read_text())
    snapshots, daily = [], ["features/flight_delay", "quality/scorecard"]
    for name, entry in sources["sources"].items():
        keys = [f"raw/{name}", f"cleaned/{name}", f"quarantine/{name}"]
        (daily if entry["partitioning"] == "daily" else snapshots).extend(keys)
    return ",".join(snapshots), ",".join(daily)


def file_to_feature_scenario(run: dict) -> dict:
    """The scenario's record of a ``bench.file_to_feature`` run: its p50, and where the time went."""
    result = run.get("inner") or {}
    path = result.get("critical_path_median_s") or {}
    note = (
        f"{result.get('samples_ok')} days delivered under dagster dev, arrival sensor every "
        f"{result.get('arrival_interval_s', '?')} s, automation and alert sensors every "
        f"{result.get('sensor_interval_s')} s, p95 {result.get('p95_s')} s; median critical path: "
        + ", ".join(f"{k.removesuffix('_s')} {v} s" for k, v in path.items())
    )
    return {"run": run, "value": result.get("p50_s"), "note": note}


def postgres_env(database: str | None = None, fresh: bool = False) -> dict[str, str]:
    """DAGSTER_PG_* for deploy/dagster.postgres.yaml: the environment's, else a local server's
    ``bench_dagster`` database (or ``database``), created when missing, dropped first when
    ``fresh``; nothing else on the server is touched."""
    env = {
        "DAGSTER_PG_HOST": os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
        "DAGSTER_PG_PORT": os.environ.get("DAGSTER_PG_PORT", "5432"),
        "DAGSTER_PG_USER": os.environ.get("DAGSTER_PG_USER", "postgres"),
        "DAGSTER_PG_PASSWORD": os.environ.get("DAGSTER_PG_PASSWORD", ""),
        "DAGSTER_PG_DB": database or os.environ.get("DAGSTER_PG_DB", "bench_dagster"),
    }
    import psycopg2

    connection = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USER"],
        password=env["DAGSTER_PG_PASSWORD"] or None, dbname="postgres",
    )  # fmt: skip
    connection.autocommit = True
    with connection.cursor() as cursor:
        if fresh:
            cursor.execute(f'DROP DATABASE IF EXISTS "{env["DAGSTER_PG_DB"]}"')
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (env["DAGSTER_PG_DB"],))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{env["DAGSTER_PG_DB"]}"')
    connection.close()
    return env


def run_env(src: Path, landing: Path, lake: Path, home: Path) -> dict[str, str]:
    """What a measured run of ``src``'s package is given: its landing zone, lake and instance."""
    return {
        "DATAENG_LANDING_ROOT": str(landing),
        "DATAENG_LAKE_ROOT": str(lake),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(src), str(REPO)])),
        "PYTHONHASHSEED": "0",
    }


def cli_materialize(partition: list[str]) -> list[str]:
    """Every asset through ``dagster asset materialize``, as a user runs it."""
    return [str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "dataeng_assets.definitions",
            "--select", "*", *partition]  # fmt: skip


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.quick: bool = args.quick
        # --quick is a smoke run of every scenario (its sizes do not compare with the targets):
        # two rounds show the ways alternate and the report builds, in minutes.
        self.reps: int = args.reps or (2 if args.quick else 5)
        self.src: Path = snapshot(args.src.resolve()) if args.snapshot else args.src.resolve()
        self.out_dir: Path = RESULTS / "quick" if self.quick else RESULTS
        self.work: Path = WORK / ("quick" if self.quick else "full")
        self.results_path = self.out_dir / "bench.json"
        self.partition_rows = 50_000 if self.quick else 4_000_000
        self.linearity_rows = (
            [50_000, 200_000] if self.quick else [1_000_000, 4_000_000, 16_000_000]
        )
        self.warmup = not self.quick and args.warmup
        self.skip_ways: set[str] = set(args.skip_ways)
        self.memory_cap = int(min(0.7 * psutil.virtual_memory().available, 16 * GIB))
        self.results: dict[str, Any] = {}
        if self.results_path.exists():
            self.results = report.load(self.results_path)

    # --- one way, one run --------------------------------------------------------------------
    def env(self, landing: Path, lake: Path, home: Path) -> dict[str, str]:
        return run_env(self.src, landing, lake, home)

    def dagster_home(
        self, scenario: str, postgres: bool = False, dagster_log: bool = False
    ) -> Path:
        name = (
            "dagster_home"
            + ("_postgres" if postgres else "")
            + ("_dagster_log" if dagster_log else "")
        )
        home = self.work / scenario / name
        if not (home / "dagster.yaml").exists():
            home.mkdir(parents=True, exist_ok=True)
            config = (
                self.src / "deploy" / "dagster.postgres.yaml"
                if postgres
                else self.src / "dagster.yaml"
            )
            shutil.copy(config, home / "dagster.yaml")  # as `make` does
            if dagster_log:  # the "before" of dataeng_assets/instance_event_log.py
                text = (home / "dagster.yaml").read_text()
                (home / "dagster.yaml").write_text(dagsters_own_event_log(text))
        return home

    def run_way(
        self, scenario: str, way: str, landing: Path, window: tuple[dt.date, dt.date], tag: str
    ) -> Measured:
        start, end = window
        base = self.work / scenario / tag / way
        name = f"{scenario}/{tag}/{way}"
        # A way ending in _one_core is that way with its whole process tree held to one CPU.
        one_core = way.endswith(ONE_CORE)
        way = way.removesuffix(ONE_CORE)
        lake = base / "lake"
        shutil.rmtree(lake, ignore_errors=True)
        lake.mkdir(parents=True)
        out = base / "result.json"
        home = self.dagster_home(
            scenario,
            postgres=way == "dagster_cli_postgres",
            dagster_log=way.endswith("_dagster_log"),
        )
        env = self.env(landing, lake, home)
        if way == "dagster_cli_postgres":
            env.update(postgres_env())
        span = ["--start", start.isoformat(), "--end", end.isoformat()]
        # How the CLI is told the window: one day is one partition, more a single-run range.
        partition = (
            ["--partition", start.isoformat()]
            if start == end
            else ["--partition-range", f"{start.isoformat()}...{end.isoformat()}"]
        )
        if way.startswith("dagster_cli_daily"):
            # Two commands, as a user would type them: the reference snapshots (unpartitioned) in
            # their own run, then the daily assets as the single-run backfill.
            snapshots, daily = asset_selections(self.src)
            cli = f"{VENV_BIN / 'dagster'} asset materialize -m dataeng_assets.definitions"
            span_arg = f"{start.isoformat()}...{end.isoformat()}"
            cmd = ["/bin/sh", "-c", f"{cli} --select '{snapshots}' && "
                   f"{cli} --select '{daily}' --partition-range {span_arg}"]  # fmt: skip
            out_path = None
        elif way.startswith("dagster_cli"):
            cmd = cli_materialize(partition)
            out_path = None
        elif way == "noop_imports":
            cmd = [PYTHON, "-c", "import bench.bare"]  # the bare script's start-up: its imports
            out_path = None
        elif way.startswith("noop_"):
            if way.startswith("noop_shape"):  # the pipeline's daily and unpartitioned parts
                env.update({var: str(count) for var, count in self.pipeline_shape.items()})
            else:
                env["BENCH_NOOP_ASSETS"] = way.removeprefix("noop_")
            cmd = [str(VENV_BIN / "dagster"), "asset", "materialize", "-f",
                   str(REPO / "bench" / "noop_location.py"), "--select", "*", *partition]  # fmt: skip
            out_path = None
        elif way == "dagster_inprocess":
            cmd = [PYTHON, "-m", "bench.inprocess", *span, "--out", str(out)]
            out_path = out
        elif way == "io_floor":
            cmd = [PYTHON, "-m", "bench.io_floor", "--landing", str(landing), "--dest", str(lake),
                   *span, "--out", str(out)]  # fmt: skip
            out_path = out
        else:
            module = {"bare": "bench.bare", "duckdb": "bench.duckdb_peer"}[way]
            cmd = [PYTHON, "-m", module, "--landing", str(landing), "--lake", str(lake), *span,
                   "--out", str(out)]  # fmt: skip
            out_path = out
        cwd = self.src  # `python -m` puts the working directory first on sys.path
        if one_core:
            cmd = ["taskset", "--cpu-list", "0", *cmd]
        measured = run_measured(
            name, cmd, env=env, cwd=cwd,
            log_path=base / "log.txt", out_path=out_path, timeout_s=3 * 3600,
            memory_cap_bytes=self.memory_cap,
        )  # fmt: skip
        status = (
            "ok"
            if measured.ok
            else (
                "KILLED (memory cap)"
                if measured.killed_for_memory
                else f"FAILED rc={measured.returncode}"
            )
        )
        print(
            f"  {measured.name:45s} {measured.wall_s:8.2f} s  peak {measured.peak_rss_bytes / GIB:5.2f} GiB"
            f"  load {measured.loadavg_before[0]:.2f}  {status}",
            flush=True,
        )
        if not measured.ok and measured.log:
            print("    " + measured.log[-1500:].replace("\n", "\n    "), flush=True)
        return measured

    def alternate(
        self,
        scenario: str,
        ways: list[str],
        landing: Path,
        window: tuple[dt.date, dt.date],
        tag: str,
        warmup: bool | None = None,
        reps: int | None = None,
    ) -> dict[str, list[dict]]:
        """Rounds of every way, the order rotated each round; one untimed warm-up round first."""
        reps = reps or self.reps
        warmup = self.warmup if warmup is None else warmup
        runs: dict[str, list[dict]] = {w: [] for w in ways}
        skip: set[str] = set()
        if warmup:
            print(f"  warm-up ({tag})", flush=True)
            for way in ways:
                if not self.run_way(scenario, way, landing, window, tag).ok:
                    skip.add(way)
        for r in range(reps):
            order = ways[r % len(ways) :] + ways[: r % len(ways)]
            for way in order:
                if way in skip:
                    continue
                measured = self.run_way(scenario, way, landing, window, tag).as_dict()
                measured["round"] = r
                runs[way].append(measured)
                if not measured["ok"]:
                    skip.add(way)  # a way that fails or is killed is not retried this scenario
        return runs

    # --- scenarios ---------------------------------------------------------------------------
    def scenario_imports(self) -> dict:
        probes = {
            "python": "pass",
            "import_dagster": "import dagster",
            "import_code_location": "import dataeng_assets.definitions",
            "import_bare_deps": "import pandas, pyarrow, deltalake, pandera",
        }
        runs: dict[str, list[dict]] = {k: [] for k in probes}
        env = self.env(self.work, self.work, self.dagster_home("imports"))
        for r in range(self.reps + 1):
            for name, code in probes.items():
                m = run_measured(
                    f"imports/{name}", [PYTHON, "-c", code], env=env, cwd=self.src,
                    log_path=self.work / "imports" / f"{name}.log",
                )  # fmt: skip
                if r:  # the first round warms the file cache
                    runs[name].append(m.as_dict())
        print("  imports: " + ", ".join(
            f"{k} {report.med([x['wall_s'] for x in v]):.2f}s" for k, v in runs.items()), flush=True)  # fmt: skip
        return {"runs": runs}

    @property
    def before_ways(self) -> list[str]:
        """The CLI on Dagster's own SQLite event log, next to the project's (full mode only)."""
        return [] if self.quick else ["dagster_cli_dagster_log"]

    def scenario_partition(self) -> dict:
        landing = generate.scaled_landing(self.partition_rows)
        runs = self.alternate(
            "partition",
            ALL_WAYS + self.before_ways,
            landing,
            (DAY, DAY),
            f"rows_{self.partition_rows}",
        )
        return {"rows": self.partition_rows, "day": DAY.isoformat(), "runs": runs,
                "facts": report.facts(landing)}  # fmt: skip

    def scenario_full_year(self) -> dict:
        window = TWO_WEEKS if self.quick else YEAR
        landing = generate.real_landing(WORK / "real" / "landing", *YEAR)
        ways = [w for w in ALL_WAYS if not (self.quick and w == "dagster_inprocess")]
        ways = [w for w in ways + self.before_ways if w not in self.skip_ways]
        runs = self.alternate("full_year", ways, landing, window, "year")
        return {"window": [window[0].isoformat(), window[1].isoformat()],
                "partitions": (window[1] - window[0]).days + 1, "runs": runs}  # fmt: skip

    def scenario_dagster_floor(self) -> dict:
        """Dagster alone: the same backfill of daily assets that do nothing (1 asset, 8, and the
        pipeline's shape: its daily assets and checks, each check recorded every day, and its
        unpartitioned ones once), through the CLI and the project's SQLite instance. The shape's
        backfill is the year's floor: what the CLI run would take if the data cost nothing."""
        shape = self.pipeline_shape
        window = TWO_WEEKS if self.quick else YEAR
        landing = generate.real_landing(WORK / "real" / "landing", *YEAR)
        ways = ["noop_1", "noop_8", "noop_shape"]
        runs = self.alternate("dagster_floor", ways, landing, window, "year")
        return {"window": [window[0].isoformat(), window[1].isoformat()],
                "partitions": (window[1] - window[0]).days + 1, "shape": shape, "runs": runs}  # fmt: skip

    @functools.cached_property
    def pipeline_shape(self) -> dict[str, int]:
        """How many daily and unpartitioned assets and checks the code location under test has (one
        import, once): the no-op location's environment for the same shape."""
        code = ("import dataeng_assets.definitions as d; g = d.defs.resolve_asset_graph(); "
                "daily = lambda k: g.get(k).partitions_def is not None; "
                "a = g.get_all_asset_keys(); c = g.asset_check_keys; "
                "print(sum(map(daily, a)), sum(daily(x.asset_key) for x in c), len(a), len(c))")  # fmt: skip
        out = subprocess.run([PYTHON, "-c", code], cwd=self.src, capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONPATH": str(self.src)})  # fmt: skip
        daily_assets, daily_checks, assets, checks = map(int, out.stdout.split()[-4:])
        return {
            "BENCH_NOOP_ASSETS": daily_assets,
            "BENCH_NOOP_CHECKS": daily_checks,
            "BENCH_NOOP_STATIC_ASSETS": assets - daily_assets,
            "BENCH_NOOP_STATIC_CHECKS": checks - daily_checks,
        }

    def scenario_run_floor(self) -> dict:
        """Dagster's fixed part of one run: a day of no-op assets and checks, as many as the
        pipeline has, through the CLI and the project's SQLite instance, against the bare script's
        start-up (its imports). The difference is what a run of this shape pays on top of the bare
        script whatever the day's size: Dagster's imports and instance, the run, its events. The
        same run on Dagster's own SQLite event log is the "before" of the project's."""
        shape = self.pipeline_shape
        assets = shape["BENCH_NOOP_ASSETS"] + shape["BENCH_NOOP_STATIC_ASSETS"]
        checks = shape["BENCH_NOOP_CHECKS"] + shape["BENCH_NOOP_STATIC_CHECKS"]
        landing = generate.real_landing(WORK / "real" / "landing", *YEAR)
        runs = self.alternate(
            "run_floor", ["noop_shape", "noop_shape_dagster_log", "noop_imports"], landing,
            (DAY, DAY), "day",
        )  # fmt: skip
        return {"assets": assets, "checks": checks, "runs": runs}

    def scenario_large_day(self) -> dict:
        """The largest linearity size through the CLI against the bare script (the overhead
        figure at a size where Dagster's fixed part weighs less); no warm-up, one run is minutes."""
        rows = self.linearity_rows[-1]
        landing = generate.scaled_landing(rows)
        runs = self.alternate(
            "large_day", ["dagster_cli", "bare"], landing, (DAY, DAY), f"rows_{rows}", warmup=False
        )
        return {"rows": rows, "runs": runs, "facts": report.facts(landing)}

    def scenario_one_core(self) -> dict:
        """The scaled day with every process tree held to one CPU (``taskset``), next to the bare
        script and the peer on both: how much of the peer ratio is DuckDB using the second core,
        where the pipeline's pandas work and delta-rs's writes use one."""
        landing = generate.scaled_landing(self.partition_rows)
        ways = ["bare", "duckdb", *(w + ONE_CORE for w in ("dagster_cli", "bare", "duckdb"))]
        runs = self.alternate("one_core", ways, landing, (DAY, DAY), f"rows_{self.partition_rows}")
        return {"rows": self.partition_rows, "runs": runs}

    def scenario_linearity(self) -> dict:
        ways = ["dagster_inprocess"] if self.quick else ["dagster_inprocess", "bare"]
        sizes: dict[str, dict] = {}
        # Reuse the partition scenario's runs only when this invocation measured them (same code,
        # same hour): sizes measured at different times would not be comparable.
        partition = self.results.get("scenarios", {}).get("partition", {})
        if partition.get("started_at", "") < self.started_at:
            partition = {}
        for rows in self.linearity_rows:
            landing = generate.scaled_landing(rows)
            if partition.get("rows") == rows and all(partition["runs"].get(w) for w in ways):
                # The partition scenario measured this size with these ways, alternating: reuse.
                runs = {w: partition["runs"][w] for w in ways}
                print(f"  {rows:,} rows: the partition scenario's runs", flush=True)
            else:
                print(f"  {rows:,} rows: memory cap {self.memory_cap / GIB:.1f} GiB", flush=True)
                big = rows >= 16_000_000  # no warm-up: one run takes minutes
                runs = self.alternate(
                    "linearity", ways, landing, (DAY, DAY), f"rows_{rows}",
                    warmup=False if big else None,
                )  # fmt: skip
            sizes[str(rows)] = {"runs": runs, "facts": report.facts(landing)}
            self.save_partial("linearity", {"sizes": sizes, "ways": ways})
        return {"sizes": sizes, "ways": ways}

    def scenario_instance_storage(self) -> dict:
        """Not run by default (it needs PostgreSQL): the CLI's backfill on SQLite vs PostgreSQL."""
        window = TWO_WEEKS if self.quick else YEAR
        landing = generate.real_landing(WORK / "real" / "landing", *YEAR)
        runs = self.alternate(
            "instance_storage", ["dagster_cli", "dagster_cli_postgres"], landing, window, "year"
        )
        return {"window": [window[0].isoformat(), window[1].isoformat()],
                "partitions": (window[1] - window[0]).days + 1, "runs": runs}  # fmt: skip

    def scenario_experiments(self) -> dict:
        """On request only: what two proposed fixes are worth on the year's CLI backfill.

        ``dagster_cli_daily``: the snapshots in their own run, then only the daily assets in the
        backfill (Dagster logs a planned event per day for every asset of a ranged run, the nine
        unpartitioned ones included).
        """
        window = TWO_WEEKS if self.quick else YEAR
        landing = generate.real_landing(WORK / "real" / "landing", *YEAR)
        ways = [
            "dagster_cli",
            "dagster_cli_daily",
        ]
        runs = self.alternate("experiments", ways, landing, window, "year")
        return {"window": [window[0].isoformat(), window[1].isoformat()],
                "partitions": (window[1] - window[0]).days + 1, "runs": runs}  # fmt: skip

    def scenario_query(self) -> dict:
        lake = self.work / "full_year" / "year" / "dagster_cli" / "lake"
        table = lake / "features" / "flight_delay"
        if not (table / "_delta_log").exists():
            print("  no full-year feature table yet: running the full_year scenario's CLI once")
            landing = generate.real_landing(WORK / "real" / "landing", *YEAR)
            self.run_way(
                "full_year", "dagster_cli", landing, TWO_WEEKS if self.quick else YEAR, "year"
            )
        out = self.work / "query" / "result.json"
        m = run_measured(
            "query", [PYTHON, "-m", "bench.query", "--table", str(table), "--reps",
                      str(20 if self.quick else 60), "--out", str(out)],
            env=self.env(self.work, lake, self.dagster_home("query")), cwd=self.src,
            log_path=self.work / "query" / "log.txt", out_path=out,
        )  # fmt: skip
        print(f"  query: {m.wall_s:.2f} s, ok={m.ok}", flush=True)
        return {"run": m.as_dict()}

    def scenario_file_to_feature(self) -> dict:
        if self.quick and "file_to_feature" not in self.only:
            # dagster dev, a few prepared days and three samples take ten minutes or more: more
            # than the quick run's budget. `--quick --only file_to_feature` runs it anyway.
            return {"value": None, "note": "not measured by --quick (about ten minutes under "
                    "dagster dev); `python -m bench.run --quick --only file_to_feature` runs it"}  # fmt: skip
        out = self.work / "file_to_feature" / "result.json"
        m = run_measured(
            "file_to_feature",
            [PYTHON, "-m", "bench.file_to_feature", "--out", str(out),
             "--results", str(self.out_dir / "file_to_feature.json")]
            + (["--quick"] if self.quick else []),
            env=self.env(self.work, self.work, self.dagster_home("file_to_feature")), cwd=self.src,
            log_path=self.work / "file_to_feature" / "log.txt", out_path=out, timeout_s=3600,
        )  # fmt: skip
        return file_to_feature_scenario(m.as_dict())

    # --- bookkeeping -------------------------------------------------------------------------
    def save_partial(self, name: str, data: dict) -> None:
        self.results.setdefault("scenarios", {})[name] = {**data, "partial": True}
        write_json(self.results_path, self.results)

    def run(self, only: list[str]) -> None:
        self.only = only
        self.code = code_state(self.src)
        self.started_at = now_iso()
        scenarios = ["imports", "partition", "run_floor", "full_year", "dagster_floor", "linearity", "query",
                     "file_to_feature"]  # fmt: skip
        # On request: PostgreSQL, experiments, and the CLI on the largest day (an hour in full mode).
        scenarios += [
            n for n in only if n in ("instance_storage", "experiments", "large_day", "one_core")
        ]
        self.results.update({
            "mode": "quick" if self.quick else "full",
            "machine": machine(),
            "code": self.code,
            "reps": self.reps,
            "warmup_round": self.warmup,
        })  # fmt: skip
        self.results.setdefault("scenarios", {})
        for name in scenarios:
            if only and name not in only:
                continue
            print(f"== {name} ({now_iso()}, load {loadavg()})", flush=True)
            started = now_iso()
            data = getattr(self, f"scenario_{name}")()
            data.update({"started_at": started, "finished_at": now_iso(), "code": self.code})
            self.results["scenarios"][name] = data
            write_json(self.results_path, self.results)
        report.write_all(self.results, self.out_dir)
        print(f"results: {self.out_dir.relative_to(REPO)}/", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, January: a few minutes")
    parser.add_argument(
        "--reps", type=int, default=None, help="timed runs per way (default 5; 2 with --quick)"
    )
    parser.add_argument("--only", nargs="*", default=[], help="scenarios to run (default: all)")
    parser.add_argument(
        "--src",
        type=Path,
        default=REPO,
        help="the tree whose dataeng_assets is measured (default: this repo)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="no untimed warm-up round (full mode has one by default)",
    )
    parser.add_argument(
        "--skip-ways",
        nargs="*",
        default=[],
        help="ways the year's backfill leaves out, e.g. dagster_inprocess",
    )
    parser.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                        help="measure --src in place instead of a copy taken at the start")  # fmt: skip
    args = parser.parse_args(argv)
    Bench(args).run(args.only)


if __name__ == "__main__":
    sys.exit(main())
