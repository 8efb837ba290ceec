"""A bad day: every delivered row fails its contract, and all of them go to the quarantine.

    python -m bench.bad_day [--rows 1000000] [--reps 3] [--src TREE] [--out PATH]

The day is the scaled 4M-row day (``generate.scaled_landing``), cut to ``--rows`` rows, with
``sched_dep_time`` replaced by ``"x"`` in every row: what a source that changes a column's format
delivers. ``clean_table`` types it, runs the flights transform and rules, and builds one
quarantine row per delivered row (its rules, reasons and the delivered record as JSON). Each
repetition is a child process (``common.run_measured``: wall time and peak memory); the time of
``clean_table`` alone is measured inside. ``--src`` measures another tree's package (a
``git worktree`` of an older commit), for before and after.

Results: ``bench/results/bad_day.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    PYTHON,
    RESULTS,
    WORK,
    code_state,
    machine,
    now_iso,
    run_measured,
    write_json,
)

BROKEN_COLUMN = "sched_dep_time"


def child(landing: Path, rows: int, out: Path) -> None:
    """One bad day through ``clean_table``, timed; writes what it measured to ``out``."""
    import pyarrow.fs as pafs

    from bench import generate
    from bench.bare import read_raw
    from dataeng_assets.sources import registry
    from dataeng_assets.storage.delta_io_manager import to_pandas
    from dataeng_assets.transforms.conform import clean_table

    fs, root = pafs.LocalFileSystem(), str(landing.resolve())
    sources = registry()
    references = {}
    for name in ("airlines", "airports", "planes"):
        source = sources[name]
        _, table = read_raw(source, fs, root, [])
        references[name] = clean_table(
            to_pandas(table), source.cleaned_contract, natural_key=source.natural_key,
            normalise=source.normalise, na_values=source.na_values,
            transform=source.transform_function(), references=references,
        ).frame  # fmt: skip
    flights = sources["flights"]
    _, table = read_raw(flights, fs, root, [generate.SCALED_DAY])
    raw = to_pandas(table.slice(0, rows))
    raw[BROKEN_COLUMN] = "x"
    contract = flights.cleaned_contract
    started = time.perf_counter()
    result = clean_table(
        raw, contract, natural_key=flights.natural_key, normalise=flights.normalise,
        na_values=flights.na_values, transform=flights.transform_function(),
        references={r.reference[0]: references[r.reference[0]] for r in contract.references},
        time_column=flights.time_column,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.rows_quarantined != len(raw) or not result.balanced:
        raise SystemExit(f"expected every row quarantined, got {result.rows_quarantined}")
    out.write_text(
        json.dumps(
            {
                "clean_table_s": round(seconds, 3),
                "rows_in": result.rows_in,
                "rows_quarantined": result.rows_quarantined,
                "example": result.quarantine.iloc[0][["rules", "reasons"]].to_dict(),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--out", type=Path, default=RESULTS / "bad_day.json")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from bench import generate

    landing = generate.scaled_landing(4_000_000)
    if args.child is not None:
        child(landing, args.rows, args.child)
        return 0
    src = args.src.resolve()
    bench_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(bench_root)])}
    runs = []
    for rep in range(args.reps):
        out = WORK / "bad_day" / f"child_{rep}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        measured = run_measured(
            f"bad_day/{args.rows}/{rep}",
            # As a script, not ``-m``: the working directory would come before --src on sys.path.
            [PYTHON, str(Path(__file__).resolve()), "--rows", str(args.rows), "--child", str(out)],
            env=env, cwd=src, log_path=out.with_suffix(".log"), out_path=out,
            timeout_s=3600,
        )  # fmt: skip
        if not measured.ok:
            print(measured.log[-2000:], file=sys.stderr)
            return 1
        runs.append({"wall_s": round(measured.wall_s, 2),
                     "peak_rss_gib": round(measured.peak_rss_bytes / 2**30, 2),
                     **measured.result})  # fmt: skip
    result = {
        "benchmark": "bad_day",
        "at": now_iso(),
        "command": "python -m bench.bad_day " + " ".join(argv or sys.argv[1:]),
        "rows": args.rows,
        "broken_column": BROKEN_COLUMN,
        "code": code_state(src),
        # code_state names this repository's commit; --src may be another checkout.
        "src_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "machine": machine(),
        "median_clean_table_s": statistics.median(r["clean_table_s"] for r in runs),
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_peak_rss_gib": statistics.median(r["peak_rss_gib"] for r in runs),
        "runs": runs,
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k.startswith("median")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
