"""Arrival sensors, on a local folder and on S3 (SeaweedFS) through the same code.

Each test delivers files the way upstream would, ticks the real sensor of the code location, and
looks at what it asks for: which partitions, once per content, unmappable files reported.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from dagster import DagsterInstance, Definitions, RunRequest, build_sensor_context
from dagster._core.definitions.sensor_definition import SensorExecutionData

from dataeng_assets.automation.alerts import AlertChannels
from dataeng_assets.automation.arrival import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    build_arrival_sensor,
    build_ingest_job,
)
from dataeng_assets.automation.breaker import SOURCE_TAG, TRIGGER_TAG
from dataeng_assets.automation.landing_state import (
    ArrivalCursor,
    FileMapper,
    Unmapped,
    plan_arrivals,
)
from dataeng_assets.automation.listing import LandingLister
from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.landing.files import list_delivered
from dataeng_assets.landing.replay import replay
from dataeng_assets.partitions import DAILY_2013
from dataeng_assets.resources import build_resources
from dataeng_assets.sources import registry
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets_tests.conftest import (
    S3_BUCKET,
    expected_daily_counts,
    local_settings,
    read_table,
)
from dataeng_assets_tests.seaweedfs import S3Server

FLIGHTS = registry()["flights"]
PLANES = registry()["planes"]
KEYS = DAILY_2013.get_partition_keys()


@dataclass
class Landing:
    """A landing zone and the means to deliver into it, as upstream does."""

    store: ObjectStore
    fs: pafs.FileSystem
    root: str

    def put(self, key: str, data: bytes) -> None:
        path = f"{self.root}/{key}"
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        with self.fs.open_output_stream(path) as out:
            out.write(data)

    def get(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"{self.root}/{key}") as handle:
            return handle.read()

    def delete(self, key: str) -> None:
        self.fs.delete_file(f"{self.root}/{key}")

    def rename(self, old: str, new: str) -> None:
        self.fs.move(f"{self.root}/{old}", f"{self.root}/{new}")

    def replay(self, start: dt.date, end: dt.date, source=FLIGHTS) -> None:
        replay(self.fs, self.root, start, end, sources=[source])


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def landing(request: pytest.FixtureRequest, tmp_path: Path) -> Landing:
    if request.param == "local":
        store = ObjectStore(root=str(tmp_path / "landing"))
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        store = ObjectStore(
            root=f"s3://{S3_BUCKET}/{uuid.uuid4().hex}/landing",
            endpoint_url=server.endpoint_url,
            region=server.region,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            allow_http=True,
        )
    fs, root = store.filesystem()
    return Landing(store, fs, root)


class Ticker:
    """Ticks one real arrival sensor, carrying its cursor from tick to tick."""

    def __init__(
        self, landing: Landing, alerts_file: Path, source=FLIGHTS, days_per_run: int = 1
    ) -> None:
        job = build_ingest_job(source)
        self.sensor = build_arrival_sensor(source, job, days_per_run=days_per_run)
        self.resources = {
            "landing": landing.store,
            "alerts": AlertChannels(channels=["file"], file_path=str(alerts_file)),
        }
        # A partitioned request is resolved against the job's partitions: the repository is needed.
        self.repository = Definitions(
            assets=ALL_ASSETS,
            jobs=[job],
            sensors=[self.sensor],
            resources={
                **build_resources(local_settings(alerts_file.parent, alerts_file.parent)),
                **self.resources,
            },
        ).get_repository_def()
        self.alerts_file = alerts_file
        self.cursor: str | None = None
        self.instance = DagsterInstance.ephemeral()

    def tick(self) -> SensorExecutionData:
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources=self.resources,
            repository_def=self.repository,
        )
        result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return result

    def alerts(self) -> list[dict]:
        if not self.alerts_file.exists():
            return []
        return [json.loads(line) for line in self.alerts_file.read_text().splitlines()]


def _partitions(request: RunRequest) -> list[str]:
    if request.partition_key:
        return [request.partition_key]
    start, end = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
    return KEYS[KEYS.index(start) : KEYS.index(end) + 1]


def _requested(result: SensorExecutionData) -> list[str]:
    """The days requested, one run per day (each day's checks are recorded on that day)."""
    assert all(r.partition_key for r in result.run_requests), result.run_requests
    return sorted(r.partition_key for r in result.run_requests)


@pytest.fixture
def ticker(landing: Landing, tmp_path: Path) -> Iterator[Ticker]:
    ticker = Ticker(landing, tmp_path / "alerts.jsonl")
    yield ticker
    ticker.instance.dispose()


def test_each_delivered_content_is_requested_once(landing: Landing, ticker: Ticker) -> None:
    landing.replay(dt.date(2013, 1, 1), dt.date(2013, 1, 3))

    # Three days delivered: one run each.
    first = ticker.tick()
    assert _requested(first) == ["2013-01-01", "2013-01-02", "2013-01-03"]
    request = first.run_requests[0]
    assert request.tags[SOURCE_TAG] == "flights" and request.tags[TRIGGER_TAG] == "arrival"

    nothing = ticker.tick()
    assert nothing.run_requests == [] and "no new or changed file" in nothing.skip_message

    # The same bytes delivered again: nothing runs, and the tick says why. (S3 keeps
    # LastModified to the second: a re-delivery within the same second leaves even the listing
    # unchanged, and the tick says that instead.)
    landing.replay(dt.date(2013, 1, 2), dt.date(2013, 1, 2))
    again = ticker.tick()
    assert again.run_requests == []
    assert ("same content" in again.skip_message and "2013-01-02" in again.skip_message) or (
        "no new or changed file" in again.skip_message
    )

    # A corrected file (same name, new content): that partition again, and only it.
    original = landing.get("flights/2013-01-02.csv")
    landing.put("flights/2013-01-02.csv", original.rsplit(b"\n", 2)[0] + b"\n")
    (corrected,) = ticker.tick().run_requests
    assert _partitions(corrected) == ["2013-01-02"]

    # A second file for a day: one partition, both files.
    landing.put("flights/2013-01-03_late.csv", original.split(b"\n", 1)[0] + b"\n")
    (late,) = ticker.tick().run_requests
    assert _partitions(late) == ["2013-01-03"] and late.tags["dataeng/files"] == "2"

    # A deleted or renamed key never breaks the cursor.
    landing.delete("flights/2013-01-01.csv")
    removed = ticker.tick()
    assert removed.run_requests == [] and "all files removed" in removed.skip_message
    landing.rename("flights/2013-01-03_late.csv", "flights/2013-01-03_fix.csv")
    (renamed,) = ticker.tick().run_requests
    assert _partitions(renamed) == ["2013-01-03"]
    assert ticker.tick().run_requests == []

    # Reverting to the original content of a day is a new delivery too, with a new run key.
    landing.put("flights/2013-01-02.csv", original)
    (reverted,) = ticker.tick().run_requests
    assert _partitions(reverted) == ["2013-01-02"]
    keys = [r.run_key for r in (*first.run_requests, corrected, late, renamed, reverted)]
    assert len(set(keys)) == len(keys) == 7


def test_files_that_map_to_no_partition_are_reported_once(landing: Landing, ticker: Ticker) -> None:
    landing.replay(dt.date(2013, 1, 4), dt.date(2013, 1, 4))
    bad = {
        "flights/notes.txt": "name does not match flights/{date}[_suffix].csv",
        "flights/2013-02-30.csv": "2013-02-30 is not a calendar date",
        "flights/2014-01-01.csv": "2014-01-01 is outside the partitions 2013-01-01..2013-12-31",
        "flights/2013-01-05.parquet": "is .parquet, but flights is delivered as csv",
        "flights/archive/2013-01-05.csv": "is in a subfolder; flights files sit in flights/",
    }
    for key in bad:
        landing.put(key, b"year,month\n2013,1\n")
    landing.put("flights/.2013-01-06.csv.tmp", b"half a file")  # a write in progress: ignored

    assert _requested(ticker.tick()) == ["2013-01-04"]  # the good file is still ingested
    (alert,) = ticker.alerts()
    assert alert["kind"] == "unmappable_file" and alert["severity"] == "WARN"
    assert sorted(alert["details"]["files"]) == sorted(f"{k}: {r}" for k, r in bad.items())

    # Reported once, but still visible in the tick's reason.
    quiet = ticker.tick()
    assert quiet.run_requests == [] and "5 file(s) that map to no partition" in quiet.skip_message
    assert len(ticker.alerts()) == 1


def test_a_snapshot_is_one_unpartitioned_run(landing: Landing, tmp_path: Path) -> None:
    ticker = Ticker(landing, tmp_path / "alerts.jsonl", source=PLANES)
    landing.replay(dt.date(2013, 1, 1), dt.date(2013, 1, 1), source=PLANES)
    (request,) = ticker.tick().run_requests
    assert request.partition_key is None and RANGE_START_TAG not in request.tags
    assert request.tags[SOURCE_TAG] == "planes"
    landing.replay(dt.date(2013, 1, 1), dt.date(2013, 1, 1), source=PLANES)
    assert ticker.tick().run_requests == []


def test_a_requested_range_ingests_exactly_those_days(tmp_path: Path) -> None:
    landing = Landing(ObjectStore(root=str(tmp_path / "landing")), pafs.LocalFileSystem(), "")
    landing.root = str(tmp_path / "landing")
    landing.replay(dt.date(2013, 1, 6), dt.date(2013, 1, 9))
    # Configured for ranges (the assets take any window): four days, one run.
    ticker = Ticker(landing, tmp_path / "alerts.jsonl", days_per_run=31)
    (request,) = ticker.tick().run_requests
    assert _partitions(request) == ["2013-01-06", "2013-01-07", "2013-01-08", "2013-01-09"]

    job = build_ingest_job(FLIGHTS)
    defs = Definitions(
        assets=ALL_ASSETS,
        jobs=[job],
        resources=build_resources(local_settings(landing.root, tmp_path / "lake")),
    )
    result = defs.resolve_job_def(job.name).execute_in_process(
        tags=dict(request.tags), partition_key=request.partition_key
    )
    assert result.success
    frame = read_table(str(tmp_path / "lake" / "raw" / "flights"))
    counts = {d: int(n) for d, n in frame["date"].value_counts().items()}
    assert counts == expected_daily_counts(dt.date(2013, 1, 6), dt.date(2013, 1, 9))


def test_a_tick_hashes_and_requests_a_bounded_number_of_partitions(tmp_path: Path) -> None:
    store = ObjectStore(root=str(tmp_path / "landing"))
    fs, root = store.filesystem()
    replay(fs, root, dt.date(2013, 1, 1), dt.date(2013, 1, 5), sources=[FLIGHTS])
    mapper = FileMapper(FLIGHTS, KEYS)
    lister = LandingLister(store)
    cursor = ArrivalCursor()
    seen: list[str] = []
    for expected in (2, 2, 1, 0):
        plan = plan_arrivals(mapper, lister.list(mapper.prefix), cursor, lister.content_id, 2)
        assert len(plan.changes) == expected
        seen += [c.partition for c in plan.changes]
        cursor = ArrivalCursor.decode(plan.cursor.encode())
    assert seen == [f"2013-01-0{d}" for d in range(1, 6)]


def test_the_sensor_maps_a_file_to_a_day_exactly_when_the_raw_asset_reads_it(
    tmp_path: Path,
) -> None:
    names = [
        "2013-01-05.csv",
        "2013-01-05_correction-2.csv",
        "2013-01-05.parquet",
        "2013-01-050.csv",
        "2013-01-05csv",
        "2013-1-5.csv",
        "2013-01-06.csv",
        "x2013-01-05.csv",
    ]
    folder = tmp_path / "flights"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"year\n2013\n")
    read = {
        f.relative_path
        for f in list_delivered(pafs.LocalFileSystem(), str(tmp_path), "flights/2013-01-05", "csv")
    }
    mapper = FileMapper(FLIGHTS, KEYS)
    mapped = {f"flights/{n}" for n in names if mapper.map(f"flights/{n}") == "2013-01-05"}
    assert mapped == read == {"flights/2013-01-05.csv", "flights/2013-01-05_correction-2.csv"}
    snapshot = FileMapper(PLANES, None)
    assert snapshot.map("planes/planes.csv") == snapshot.map("planes/planes_2013-02.csv") == "*"
    assert isinstance(snapshot.map("planes/aircraft.csv"), Unmapped)
