"""How long an arrival-sensor tick takes with 10,000 files in the landing zone (local and S3).

    .venv/bin/python -m bench.sensor_tick [--files 10000] [--ticks 20] [--no-s3] [--e2e]

Builds a landing zone with ``--files`` flights files over the 365 days of 2013 (a day's file plus
``<day>_partNN.csv`` corrections), then ticks the real ``flights_arrival`` sensor through
``build_sensor_context`` (the same evaluation the daemon runs, breaker lookup included):

- ``first``: everything is new. At most ``MAX_PARTITIONS_PER_TICK`` partitions are hashed and
  requested per tick, so the cold start is spread over several ticks (all of them are reported);
- ``steady``: nothing changed, ``--ticks`` times (median, p95): list + compare, no file read;
- ``one_change``: one file of one day rewritten with new bytes: one partition hashed, one run.

On S3 (a SeaweedFS started on loopback, as the tests do) the listing is ``ListObjectsV2`` pages of
1,000 keys and the ETag stands for the content, so no object is read at all.

``--e2e`` also starts ``dagster dev`` (sensors every 5 s, as the end-to-end test does), drops one
day's files and records the time until that day's feature partition is committed, with nobody
clicking: arrival tick, raw run, automation tick, cleaned and feature runs.

Results go to ``bench/results/sensor_tick.json``. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions, build_sensor_context

from bench.common import RESULTS, machine, now_iso, write_json
from dataeng_assets.automation.alerts import AlertChannels
from dataeng_assets.automation.arrival import (
    MAX_PARTITIONS_PER_TICK,
    build_arrival_sensor,
    build_ingest_job,
)
from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.partitions import DAILY_2013
from dataeng_assets.resources import build_resources
from dataeng_assets.settings import Settings
from dataeng_assets.sources import registry
from dataeng_assets.storage.object_store import ObjectStore

FLIGHTS = registry()["flights"]
HEADER = b"year,month,day,dep_time,sched_dep_time,carrier,flight,origin,dest\n"


def file_names(count: int) -> list[str]:
    days = DAILY_2013.get_partition_keys()
    names = [f"flights/{day}.csv" for day in days]
    part = 0
    while len(names) < count:
        part += 1
        names += [f"flights/{day}_part{part:02d}.csv" for day in days][: count - len(names)]
    return names


def body(name: str) -> bytes:
    return HEADER + f"2013,1,1,517,515,UA,1545,EWR,IAH # {name}\n".encode()


class Bench:
    def __init__(self, store: ObjectStore, work: Path) -> None:
        self.store = store
        job = build_ingest_job(FLIGHTS)
        self.sensor = build_arrival_sensor(FLIGHTS, job)
        self.resources = {
            "landing": store,
            "alerts": AlertChannels(channels=["file"], file_path=str(work / "alerts.jsonl")),
        }
        settings = Settings(
            landing_root=str(work),
            lake_root=str(work / "lake"),
            s3_endpoint_url=None,
            s3_region=None,
            s3_allow_http=False,
            s3_credentials_in_env=False,
        )
        self.repository = Definitions(
            assets=ALL_ASSETS,
            jobs=[job],
            sensors=[self.sensor],
            resources={**build_resources(settings), **self.resources},
        ).get_repository_def()
        self.instance = DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def tick(self) -> tuple[float, int]:
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources=self.resources,
            repository_def=self.repository,
        )
        start = time.perf_counter()
        result = self.sensor.evaluate_tick(context)
        elapsed = time.perf_counter() - start
        self.cursor = result.cursor
        return elapsed, len(result.run_requests)


def measure(store: ObjectStore, put, names: list[str], ticks: int, work: Path) -> dict[str, Any]:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda n: put(n, body(n)), names))
    bench = Bench(store, work)
    result: dict[str, Any] = {"files": len(names), "write_s": time.perf_counter() - start}

    cold = []
    while True:
        elapsed, requested = bench.tick()
        if requested == 0:
            break
        cold.append({"seconds": elapsed, "runs_requested": requested})
    result["first"] = {
        "ticks": len(cold),
        "partitions_per_tick": MAX_PARTITIONS_PER_TICK,
        "seconds_per_tick": [round(t["seconds"], 4) for t in cold],
        "runs_requested": sum(t["runs_requested"] for t in cold),
    }
    steady = sorted(bench.tick()[0] for _ in range(ticks))
    result["steady"] = {
        "ticks": ticks,
        "median_s": round(statistics.median(steady), 4),
        "p95_s": round(steady[int(0.95 * (len(steady) - 1))], 4),
        "max_s": round(steady[-1], 4),
    }
    put(names[0], body(names[0]) + b"2013,1,1,533,529,UA,1714,LGA,IAH # corrected\n")
    elapsed, requested = bench.tick()
    result["one_change"] = {"seconds": round(elapsed, 4), "runs_requested": requested}
    result["cursor_bytes"] = len(bench.cursor or "")
    bench.instance.dispose()
    return result


def run_local(names: list[str], ticks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sensor_tick_") as tmp:
        root = Path(tmp) / "landing"

        def put(name: str, data: bytes) -> None:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return measure(ObjectStore(root=str(root)), put, names, ticks, Path(tmp))


def run_s3(names: list[str], ticks: int) -> dict[str, Any]:
    from dataeng_assets_tests.seaweedfs import run_seaweedfs

    with (
        tempfile.TemporaryDirectory(prefix="sensor_tick_s3_") as tmp,
        run_seaweedfs(Path(tmp) / "seaweedfs") as server,
    ):
        bucket = server.create_bucket("landing")
        client = server.boto3_client()
        prefix = uuid.uuid4().hex
        store = ObjectStore(
            root=f"s3://{bucket}/{prefix}",
            endpoint_url=server.endpoint_url,
            region=server.region,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            allow_http=True,
        )

        def put(name: str, data: bytes) -> None:
            client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)

        return measure(store, put, names, ticks, Path(tmp))


def run_e2e() -> dict[str, Any]:
    from dataeng_assets.settings import PROJECT_ROOT
    from dataeng_assets_tests.automation_flow import (
        ALERT_SENSOR,
        ARRIVAL_SENSORS,
        deliver_day,
        runs,
        wait_for_partition,
        wait_for_ticks_after,
    )
    from dataeng_assets_tests.dagster_dev import run_dagster_dev

    day = dt.date(2013, 1, 1)
    with tempfile.TemporaryDirectory(prefix="sensor_tick_e2e_") as tmp:
        work = Path(tmp)
        (work / "landing").mkdir()
        env = {"DATAENG_SENSOR_INTERVAL_SECONDS": "5", "DATAENG_ALERT_FILE": str(work / "a.jsonl")}
        started = time.perf_counter()
        with run_dagster_dev(
            PROJECT_ROOT,
            landing=work / "landing",
            lake=work / "lake",
            work_dir=work,
            extra_env=env,
            startup_timeout=240,
        ) as dev:
            ready = time.perf_counter() - started
            wait_for_ticks_after(dev, [*ARRIVAL_SENSORS, ALERT_SENSOR], after=0)
            dropped = time.time()
            deliver_day(dev.landing, day)
            raw = wait_for_partition(dev, "raw", "flights", day, timeout=900)
            cleaned = wait_for_partition(dev, "cleaned", "flights", day, timeout=900)
            features = wait_for_partition(dev, "features", "flight_delay", day, timeout=900)
            count = len(runs(dev))
    return {
        "day": day.isoformat(),
        "sensor_interval_s": 5,
        "dagster_dev_ready_s": round(ready, 1),
        "file_to_raw_s": round(raw - dropped, 1),
        "file_to_cleaned_s": round(cleaned - dropped, 1),
        "file_to_feature_s": round(features - dropped, 1),
        "runs_launched": count,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--no-s3", action="store_true", help="measure the local folder only")
    parser.add_argument("--e2e", action="store_true", help="also file -> feature under dagster dev")
    parser.add_argument("--out", type=Path, default=RESULTS / "sensor_tick.json")
    args = parser.parse_args(argv)
    names = file_names(args.files)
    results: dict[str, Any] = {
        "benchmark": "sensor_tick",
        "at": now_iso(),
        "machine": machine(),
        "command": "python -m bench.sensor_tick " + " ".join(argv or sys.argv[1:]),
        "local": run_local(names, args.ticks),
    }
    print(f"local: {results['local']}")
    if not args.no_s3:
        results["s3"] = run_s3(names, args.ticks)
        print(f"s3: {results['s3']}")
    if args.e2e:
        results["e2e"] = run_e2e()
        print(f"e2e: {results['e2e']}")
    write_json(args.out, results)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
