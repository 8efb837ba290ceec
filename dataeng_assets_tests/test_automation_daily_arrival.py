"""The daily sources' arrival sensor: a delivered day is one run, from raw to the feature table.

The real sensor of the code location is ticked against a real landing folder and a Dagster
instance; the runs it asks for are executed as asked (partition, assets, tags), and the tables
they commit are read back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.fs as pafs
from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context, materialize
from dagster._core.definitions.sensor_definition import SensorExecutionData

from dataeng_assets.automation.alerts import AlertChannels
from dataeng_assets.automation.breaker import SOURCE_TAG, TRIGGER_TAG, ingests_tag
from dataeng_assets.automation.daily_arrival import (
    DAILY_JOB,
    build_daily_arrival_sensor,
    build_daily_job,
    day_selection,
    raw_key,
)
from dataeng_assets.definitions import ALL_ASSETS, defs
from dataeng_assets.landing.replay import replay
from dataeng_assets.resources import build_resources
from dataeng_assets.sources import registry
from dataeng_assets_tests.conftest import (
    REFERENCES,
    REFERENCES_SELECTION,
    expected_daily_counts,
    local_settings,
    read_table,
)

SOURCES = registry()
DAILY = [s for s in SOURCES.values() if s.is_daily]
EVERY_DAILY_TABLE = {
    "raw/flights",
    "raw/weather",
    "cleaned/flights",
    "cleaned/weather",
    "quarantine/flights",
    "quarantine/weather",
    "features/flight_delay",
    "quality/scorecard",
}


class DayHarness:
    """A landing folder, a lake, an instance, and the real daily sensor ticking over them."""

    def __init__(self, tmp_path: Path) -> None:
        self.landing = tmp_path / "landing"
        self.lake = tmp_path / "lake"
        self.landing.mkdir()
        self.job = build_daily_job(DAILY)
        self.sensor = build_daily_arrival_sensor(DAILY, self.job)
        self.resources = {
            **build_resources(local_settings(self.landing, self.lake)),
            "alerts": AlertChannels(channels=["file"], file_path=str(tmp_path / "alerts.jsonl")),
        }
        self.defs = Definitions(
            assets=ALL_ASSETS, jobs=[self.job], sensors=[self.sensor], resources=self.resources
        )
        self.repository = self.defs.get_repository_def()
        self.instance = DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def deliver(self, day: dt.date, names: tuple[str, ...]) -> None:
        replay(
            pafs.LocalFileSystem(), str(self.landing), day, day, sources=[SOURCES[n] for n in names]
        )

    def tick(self) -> SensorExecutionData:
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"landing": self.resources["landing"], "alerts": self.resources["alerts"]},
            repository_def=self.repository,
        )
        result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return result

    def execute(self, request) -> bool:
        """The requested run, as the daemon would launch it."""
        return (
            self.defs.resolve_job_def(DAILY_JOB)
            .execute_in_process(
                partition_key=request.partition_key,
                asset_selection=list(request.asset_selection),
                tags=dict(request.tags),
                instance=self.instance,
                raise_on_error=False,
            )
            .success
        )


def _tables(request) -> set[str]:
    return {k.to_user_string() for k in request.asset_selection}


def test_a_delivered_day_is_one_run_from_raw_to_features(tmp_path: Path) -> None:
    h = DayHarness(tmp_path)
    first_day, day = dt.date(2013, 1, 1), dt.date(2013, 1, 2)

    # A fresh install: the reference tables were never built. The day goes as far as it can
    # (weather all the way, flights raw only); Declarative Automation waits for the rest.
    h.deliver(first_day, ("flights", "weather", *REFERENCES))
    (fresh,) = h.tick().run_requests
    assert fresh.partition_key == first_day.isoformat()
    assert _tables(fresh) == {"raw/flights", "raw/weather", "cleaned/weather", "quarantine/weather"}
    assert fresh.tags[SOURCE_TAG] == "flights,weather" and fresh.tags[TRIGGER_TAG] == "arrival"
    assert fresh.tags[ingests_tag("flights")] == fresh.tags[ingests_tag("weather")] == "true"

    materialize(
        ALL_ASSETS, selection=REFERENCES_SELECTION, resources=h.resources, instance=h.instance
    )

    # The next day's flights and weather land together: one run with every daily table.
    h.deliver(day, ("flights", "weather"))
    (request,) = h.tick().run_requests
    assert request.partition_key == day.isoformat()
    assert _tables(request) == EVERY_DAILY_TABLE
    assert h.execute(request)
    features = read_table(str(h.lake / "features" / "flight_delay"))
    cleaned = read_table(str(h.lake / "cleaned" / "flights"))
    raw = read_table(str(h.lake / "raw" / "flights"))
    assert len(raw[raw["date"] == day]) == expected_daily_counts(day, day)[day]
    assert len(features) == len(cleaned) > 0  # one feature row per cleaned flight of the day
    assert set(features["date"]) == {day}
    feature_key = AssetKey(["features", "flight_delay"])
    assert h.instance.get_materialized_partitions(feature_key) == {day.isoformat()}
    assert h.instance.get_materialized_partitions(AssetKey(["quality", "scorecard"])) == {
        day.isoformat()
    }

    # The same bytes again: nothing to run, and the tick says why.
    h.deliver(day, ("flights", "weather"))
    again = h.tick()
    assert again.run_requests == []
    assert "same content" in again.skip_message or "no new or changed file" in again.skip_message

    # A corrected weather file alone: its own tables only. The features of that day also read
    # flights, which is not in the run: Declarative Automation rebuilds them (tested with the
    # automation conditions), once the corrected weather has passed its blocking checks.
    path = h.landing / "weather" / f"{day}.csv"
    path.write_bytes(path.read_bytes().rsplit(b"\n", 2)[0] + b"\n")
    (corrected,) = h.tick().run_requests
    assert _tables(corrected) == {"raw/weather", "cleaned/weather", "quarantine/weather"}
    assert corrected.tags[SOURCE_TAG] == "weather" and ingests_tag("flights") not in corrected.tags
    assert corrected.run_key != request.run_key


def test_a_table_whose_reference_input_is_not_ready_is_left_to_the_automation() -> None:
    graph = defs.get_repository_def().asset_graph
    keys = [raw_key(s) for s in DAILY]

    def every_reference_but(missing: str):
        return lambda key: key != AssetKey(["cleaned", missing])

    everything = {k.to_user_string() for k in day_selection(graph, keys, lambda _: True)}
    assert everything == EVERY_DAILY_TABLE
    without_planes = day_selection(graph, keys, every_reference_but("planes"))
    # Flights are cleaned against planes, and the features join planes: neither runs.
    assert {k.to_user_string() for k in without_planes} == EVERY_DAILY_TABLE - {
        "cleaned/flights",
        "quarantine/flights",
        "features/flight_delay",
        "quality/scorecard",
    }
    # The order of the run is the graph's: every table after its inputs.
    order = [k.to_user_string() for k in day_selection(graph, keys, lambda _: True)]
    assert order.index("raw/flights") < order.index("cleaned/flights")
    assert order.index("cleaned/flights") < order.index("features/flight_delay")


def test_a_reference_table_that_failed_a_blocking_check_holds_back_what_reads_it(
    tmp_path: Path,
) -> None:
    h = DayHarness(tmp_path)
    day = dt.date(2013, 1, 1)
    h.deliver(day, REFERENCES)
    materialize(
        ALL_ASSETS, selection=REFERENCES_SELECTION, resources=h.resources, instance=h.instance
    )
    # A planes snapshot whose seat counts are words: every row goes to quarantine with its reason,
    # and cleaned/planes fails its blocking completeness floor.
    path = h.landing / "planes" / "planes.csv"
    header, *rows = path.read_text().splitlines()
    seats = header.split(",").index("seats")
    broken = [
        ",".join(v if i != seats else "many" for i, v in enumerate(r.split(","))) for r in rows
    ]
    path.write_text("\n".join([header, *broken]) + "\n")
    result = materialize(
        ALL_ASSETS,
        selection=REFERENCES_SELECTION,
        resources=h.resources,
        instance=h.instance,
        raise_on_error=False,
    )
    floor = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AssetKey(["cleaned", "planes"]) and e.check_name == "completeness_floor"
    ]
    assert [f.passed for f in floor] == [False]

    h.deliver(day, ("flights", "weather"))
    (request,) = h.tick().run_requests
    # Weather does not read planes: it goes all the way. Flights are cleaned against planes.
    assert _tables(request) == {
        "raw/flights",
        "raw/weather",
        "cleaned/weather",
        "quarantine/weather",
    }
