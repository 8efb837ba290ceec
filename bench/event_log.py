"""What Dagster's event log costs a single-run backfill, by instance storage and Dagster setting.

    .venv/bin/python -m bench.event_log [--days 31] [--reps 3]

The no-op location (``bench/noop_location.py``) shaped like the pipeline: 8 chained daily assets and
29 daily checks, each check recorded on each day as the pipeline records it. Its backfill writes
nothing but Dagster's events: per asset and day one planned and one materialization event, per
check and day one evaluation. Each variant runs ``dagster asset materialize`` as a user does, on a
fresh instance, alternating round by round:

- ``sqlite``: the embedded instance of ``make demo`` (``dagster.yaml``: the project's event log,
  ``dataeng_assets/instance_event_log.py``, one connection per file);
- ``sqlite_dagster_log``: the same with Dagster's own SQLite event log (a connection per event);
- ``sqlite_subset_planned``: the same with ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1``
  (one planned event per asset for the whole range instead of one per day);
- ``postgres``: ``deploy/dagster.postgres.yaml`` on the local PostgreSQL (a fresh database);
- ``postgres_batched``: the same with ``DAGSTER_EVENT_BATCH_SIZE=1000`` (materializations of a
  range written in one statement);
- ``postgres_batched_subset_planned``: both settings.

Writes ``results/event_log.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics

from bench.common import (
    PYTHON,
    REPO,
    RESULTS,
    VENV_BIN,
    WORK,
    dagsters_own_event_log,
    loadavg,
    machine,
    now_iso,
    run_measured,
)
from bench.run import postgres_env

ASSETS, CHECKS = 8, 29
SUBSET = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}
BATCH = {"DAGSTER_EVENT_BATCH_SIZE": "1000"}
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "sqlite": ("dagster.yaml", {}),
    "sqlite_dagster_log": ("dagster.yaml", {}),
    "sqlite_subset_planned": ("dagster.yaml", SUBSET),
    "postgres": ("deploy/dagster.postgres.yaml", {}),
    "postgres_batched": ("deploy/dagster.postgres.yaml", BATCH),
    "postgres_batched_subset_planned": ("deploy/dagster.postgres.yaml", {**BATCH, **SUBSET}),
}


def run_variant(name: str, days: int, rnd: int) -> dict:
    config, settings = VARIANTS[name]
    work = WORK / "event_log" / name
    shutil.rmtree(work, ignore_errors=True)
    home = work / "dagster_home"
    home.mkdir(parents=True)
    text = (REPO / config).read_text()
    if name.endswith("_dagster_log"):
        text = dagsters_own_event_log(text)
    (home / "dagster.yaml").write_text(text)
    env = {
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO),
        "BENCH_NOOP_ASSETS": str(ASSETS),
        "BENCH_NOOP_CHECKS": str(CHECKS),
        **settings,
    }
    if "postgres" in name:
        env.update(postgres_env(f"bench_event_log_{name}", fresh=True))
    start = dt.date(2013, 1, 1)
    end = start + dt.timedelta(days=days - 1)
    cmd = [str(VENV_BIN / "dagster"), "asset", "materialize", "-f",
           str(REPO / "bench" / "noop_location.py"), "--select", "*",
           "--partition-range", f"{start.isoformat()}...{end.isoformat()}"]  # fmt: skip
    m = run_measured(f"event_log_{name}_{rnd}", cmd, env=env, cwd=REPO, log_path=work / "log.txt")
    return {"round": rnd, **m.as_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in args.only}
    for rnd in range(args.reps):
        order = args.only[rnd % len(args.only) :] + args.only[: rnd % len(args.only)]
        for name in order:
            runs[name].append(run_variant(name, args.days, rnd))
            print(name, rnd, runs[name][-1].get("wall_s"), flush=True)
    events = args.days * (2 * ASSETS + CHECKS)
    summary = {}
    for name, measured in runs.items():
        walls = [r["wall_s"] for r in measured if r.get("returncode") == 0]
        wall = statistics.median(walls) if walls else None
        summary[name] = {
            "median_wall_s": wall,
            "runs_ok": len(walls),
            "ms_per_event": round(1000 * wall / events, 2) if wall else None,
            "settings": VARIANTS[name][1],
            "config": VARIANTS[name][0],
        }
    result = {
        "at": now_iso(),
        "machine": machine(),
        "loadavg_end": loadavg(),
        "python": PYTHON,
        "days": args.days,
        "assets": ASSETS,
        "checks": CHECKS,
        "events_per_run": events,
        "summary": summary,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "event_log.json").write_text(json.dumps(result, indent=2) + "\n")
    print(write_markdown(result, args.reps))


def write_markdown(result: dict, reps: int) -> str:
    """``results/event_log.md`` from a result (``event_log.json``); returns its text."""
    days, events, summary = result["days"], result["events_per_run"], result["summary"]
    lines = [
        "# Dagster's event log in a single-run backfill",
        "",
        f"`python -m bench.event_log --days {days} --reps {reps}` ({result['at']}): the "
        f"no-op location with {ASSETS} daily assets and {CHECKS} daily checks (the pipeline's shape), "
        f"{days} days in one run: {events:,} events of planning, materialization and check "
        "results, and no data. Medians; whole `dagster asset materialize` process (start-up of about "
        "2 s included, so the cost per event is an upper bound).",
        "",
        "| instance | settings | median wall (s) | ms per event | runs |",
        "|---|---|---:|---:|---:|",
    ]
    for name, s in summary.items():
        settings = ", ".join(f"`{k}={v}`" for k, v in s["settings"].items()) or "defaults"
        if name.endswith("_dagster_log"):
            settings = "Dagster's own SQLite event log (a connection per event)"
        wall = f"{s['median_wall_s']:.1f}" if s["median_wall_s"] else "failed"
        lines.append(
            f"| {name} (`{s['config']}`) | {settings} | {wall} | {s['ms_per_event']} | {s['runs_ok']} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / "event_log.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
