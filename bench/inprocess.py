"""The platform through Dagster, in one Python process: ``execute_job`` of every asset.

    python -m bench.inprocess --start 2013-01-01 --end 2013-12-31 [--out F.json] [--instance ephemeral|home]

Where data lives comes from the environment (DATAENG_LANDING_ROOT, DATAENG_LAKE_ROOT), as for
``dagster asset materialize``. A window of more than one day runs as one single-run backfill (the
partition-range tags), one day as that day's partition. With ``--instance ephemeral`` the run's events
stay in memory; ``--instance home`` uses $DAGSTER_HOME, like the CLI.

The job is Dagster's implicit job of every asset (what ``--select '*'`` runs), executed by
``execute_job`` as the CLI does, not by ``materialize``: ``materialize`` keeps every step's output
in memory for its result until the run ends (4.6 GiB at the peak of a 4M-row day against the CLI's
3.3), which a run launched any other way does not, and which stopped a 16M-row day at the
benchmark's memory cap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

T0 = time.perf_counter()

from dagster import DagsterInstance, execute_job  # noqa: E402
from dagster._core.definitions.reconstruct import ReconstructableRepository  # noqa: E402

import dataeng_assets.definitions as definitions  # noqa: E402

IMPORTED = time.perf_counter()
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
ASSET_JOB = "__ASSET_JOB"  # Dagster's implicit job of every asset and check


def run(start: dt.date, end: dt.date, instance_kind: str) -> dict:
    instance = DagsterInstance.get() if instance_kind == "home" else DagsterInstance.ephemeral()
    if start == end:
        tags = {PARTITION_TAG: start.isoformat()}
    else:
        tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}
    module = Path(definitions.__file__)
    job = ReconstructableRepository.for_module(
        definitions.__name__, "defs", working_directory=str(module.parent.parent)
    ).get_reconstructable_job(ASSET_JOB)
    t0 = time.perf_counter()
    result = execute_job(job, instance, tags=tags)
    elapsed = time.perf_counter() - t0
    if not result.success:
        raise SystemExit("the run failed")
    steps = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            steps[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 3)
    return {"materialize_s": round(elapsed, 3), "steps_s": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True, help="inclusive")
    parser.add_argument("--instance", choices=["ephemeral", "home"], default="ephemeral")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = {
        "import_s": round(IMPORTED - T0, 3),
        "package": definitions.__file__,
        **run(args.start, args.end, args.instance),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
