"""The benchmark compares like with like: its generated day, its bare script and its DuckDB peer.

No timing is asserted here (timings are measured by ``bench/``, never by tests). What is asserted is
what the comparison relies on: the scaled day is shaped like the delivered flights with valid,
unique keys, and the bare script and the peer write what the pipeline writes from it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import bare, duckdb_peer, generate, report
from bench.common import RESULTS, Timer, run_measured
from dataeng_assets.resources import build_resources
from dataeng_assets_tests.conftest import local_settings, read_table, run_window

DAY = generate.SCALED_DAY
ROWS = 20_000
NATURAL_KEY = ["carrier", "flight", "origin", "sched_dep_at"]
TABLES = [
    "raw/flights",
    "cleaned/flights",
    "quarantine/flights",
    "raw/weather",
    "cleaned/weather",
    "features/flight_delay",
]


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A scaled day, and the lakes the pipeline, the bare script and the peer write from it."""
    root = tmp_path_factory.mktemp("bench")
    landing = generate.scaled_landing(ROWS, dest=root / "landing")
    lakes = {way: root / f"lake_{way}" for way in ("dagster", "bare", "duckdb")}
    run_window(build_resources(local_settings(landing, lakes["dagster"])), DAY, DAY)
    bare.run(landing, lakes["bare"], DAY, DAY, Timer())
    duckdb_peer.run(landing, lakes["duckdb"], DAY, DAY, Timer())
    return {"landing": landing, **lakes}


def test_a_scaled_day_is_delivered_like_a_real_one(scaled: dict[str, Path]) -> None:
    delivered = pd.read_csv(
        scaled["landing"] / "flights" / f"{DAY.isoformat()}.csv", dtype=str, keep_default_na=False
    )
    real = generate.real_landing(scaled["landing"].parent / "real", DAY, DAY)
    real_day = pd.read_csv(
        real / "flights" / f"{DAY.isoformat()}.csv", dtype=str, keep_default_na=False
    )
    assert list(delivered.columns) == list(real_day.columns)
    assert len(delivered) == ROWS > 20 * len(real_day)
    assert set(delivered[["year", "month", "day"]].drop_duplicates().itertuples(index=False)) == {
        (str(DAY.year), str(DAY.month), str(DAY.day))
    }
    # Resampled from the real flights: the same carriers and airports, cancellations included.
    assert set(delivered["carrier"]) <= set(real_day["carrier"]) | set(
        pd.read_csv(real / "airlines" / "airlines.csv", dtype=str, keep_default_na=False)["carrier"]
    )
    assert set(delivered["origin"]) == {"EWR", "JFK", "LGA"}
    assert (delivered["dep_time"] == "NA").sum() > 0


def test_the_scaled_day_passes_the_contract_with_unique_keys(scaled: dict[str, Path]) -> None:
    cleaned = read_table(str(scaled["dagster"] / "cleaned" / "flights"))
    quarantine = read_table(str(scaled["dagster"] / "quarantine" / "flights"))
    assert len(cleaned) == ROWS and quarantine.empty
    assert not cleaned.duplicated(NATURAL_KEY).any()


@pytest.mark.parametrize("way", ["bare", "duckdb"])
def test_the_bare_script_and_the_peer_write_what_the_pipeline_writes(
    scaled: dict[str, Path], way: str
) -> None:
    for table in TABLES:
        pipeline = read_table(str(scaled["dagster"] / table))
        other = read_table(str(scaled[way] / table))
        assert len(other) == len(pipeline), f"{way} {table}: {len(other)} != {len(pipeline)} rows"
    # The same values, not only as many rows: the features of every flight, by its key.
    columns = [*NATURAL_KEY, "temp", "plane_age", "carrier_on_time_rate_7d", "arr_delay", "on_time"]
    pipeline = read_table(str(scaled["dagster"] / "features" / "flight_delay"))[columns]
    other = read_table(str(scaled[way] / "features" / "flight_delay"))[columns]
    key = NATURAL_KEY
    pd.testing.assert_frame_equal(
        other.sort_values(key).reset_index(drop=True).astype(pipeline.dtypes.to_dict()),
        pipeline.sort_values(key).reset_index(drop=True),
        check_exact=False,
    )


def test_the_summary_is_the_committed_results_headline() -> None:
    """summary.json holds every headline figure by name, with where and when it was measured, and
    is what the committed bench.json gives (not edited by hand, not left behind by a rerun)."""
    summary = json.loads((RESULTS / "summary.json").read_text())["figures"]
    assert set(summary) == {
        "overhead_ratio", "io_floor_ratio", "peer_ratio", "full_year_ratio",
        "full_year_backfill_s", "file_to_feature_p50_s", "linearity", "peak_mem_ratio",
        "query_p95_s",
    }  # fmt: skip
    for name, figure in summary.items():
        assert figure["machine"] and figure["date"], name
        assert figure["value"] is not None and figure["met"] in (True, False), name
    recomputed = report.figures(report.load(RESULTS / "bench.json"))
    assert {k: v["value"] for k, v in recomputed.items()} == {
        k: v["value"] for k, v in summary.items()
    }


def test_a_measured_run_records_the_cpu_of_its_process_tree(tmp_path: Path) -> None:
    """``cpu_s`` (the "cores busy" column) counts the children a run waits for, and a way held to
    one CPU sees only that CPU: what the one_core scenario's comparison rests on."""
    script = (
        "import json, subprocess, sys\n"
        "child = 'sum(i * i for i in range(3_000_000))'\n"
        "subprocess.run([sys.executable, '-c', child], check=True)\n"
        "allowed = [l for l in open('/proc/self/status') if l.startswith('Cpus_allowed_list')]\n"
        "json.dump({'allowed': allowed[0].split()[-1]}, open(sys.argv[1], 'w'))\n"
    )
    out = tmp_path / "out.json"
    free = run_measured(
        "free", [sys.executable, "-c", script, str(out)], log_path=tmp_path / "a.log",
        out_path=out,
    )  # fmt: skip
    pinned = run_measured(
        "pinned", ["taskset", "--cpu-list", "0", sys.executable, "-c", script, str(out)],
        log_path=tmp_path / "b.log", out_path=out,
    )  # fmt: skip
    assert free.ok and pinned.ok
    # The child's loop alone is a few hundred milliseconds of CPU: counted although it is a child.
    assert free.cpu_s is not None and free.cpu_s > 0.1
    assert free.as_dict()["cpu_s"] == round(free.cpu_s, 3)
    assert pinned.result["allowed"] == "0"
    assert free.result["allowed"] != "0" or os.cpu_count() == 1
