"""Deliver each kind of bad input and hold the platform's reaction against the injector's manifest.

The replay's fault injector is the independent oracle: it says which rows it broke and how. For each
kind the test asserts the right rows in quarantine with the right reason (or the right check failing
with a clear message), blocking where it must, and the row accounting exact.
"""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest
from dagster import materialize
from deltalake import DeltaTable

from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.landing.faults import FaultPlan, FaultRecord, read_manifest
from dataeng_assets.landing.replay import replay
from dataeng_assets.resources import build_resources
from dataeng_assets_tests.conftest import (
    FLIGHTS_SELECTION,
    RANGE_END_TAG,
    RANGE_START_TAG,
    expected_daily_counts,
    local_settings,
    read_table,
)

FS = pafs.LocalFileSystem()
DAY = dt.date(2013, 1, 9)


class Reaction:
    """What one faulty delivery did: the manifest, the tables, the checks, the metadata."""

    def __init__(self, tmp_path: Path, kinds: tuple[str, ...], rate: float = 0.01) -> None:
        landing, self.lake = tmp_path / "landing", tmp_path / "lake"
        plan = FaultPlan(kinds=kinds, rate=rate, seed=11)
        replay(FS, str(landing), DAY, DAY, faults=plan)
        self.manifest: list[FaultRecord] = read_manifest(
            FS, str(landing), "flights", DAY.isoformat()
        )
        self.result = materialize(
            ALL_ASSETS,
            selection=FLIGHTS_SELECTION,
            resources=build_resources(local_settings(landing, self.lake)),
            tags={RANGE_START_TAG: DAY.isoformat(), RANGE_END_TAG: DAY.isoformat()},
            raise_on_error=False,
        )
        self.checks = {
            (
                tuple(e.asset_check_evaluation_data.asset_key.path),
                e.asset_check_evaluation_data.check_name,
            ): e.asset_check_evaluation_data
            for e in self.result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }

    def table(self, layer: str) -> pd.DataFrame:
        uri = self.lake / layer / "flights"
        return read_table(str(uri)) if (uri / "_delta_log").exists() else pd.DataFrame()

    def check(self, layer: str, name: str):
        return self.checks[((layer, "flights"), name)]

    def metadata(self) -> dict:
        event = self.result.asset_materializations_for_node("cleaned__flights")[0]
        return {k: v.value for k, v in event.metadata.items()}

    def quarantined(self) -> dict[int, pd.Series]:
        return {int(r["_source_row"]): r for _, r in self.table("quarantine").iterrows()}


def _assert_balanced(reaction: Reaction) -> None:
    meta = reaction.metadata()
    assert (
        meta["rows_in"]
        == meta["rows_out"] + meta["rows_quarantined"] + meta["exact_duplicates_removed"]
    )
    assert reaction.check("cleaned", "row_accounting").passed
    assert meta["rows_in"] == len(reaction.table("raw"))
    assert meta["rows_out"] == len(reaction.table("cleaned"))
    assert meta["rows_quarantined"] == len(reaction.table("quarantine"))


@pytest.fixture(scope="module")
def clean_day(tmp_path_factory: pytest.TempPathFactory) -> Reaction:
    return Reaction(tmp_path_factory.mktemp("clean"), kinds=())


def test_the_real_day_is_clean_and_balanced(clean_day: Reaction) -> None:
    assert clean_day.result.success
    assert clean_day.manifest == []
    assert len(clean_day.table("cleaned")) == expected_daily_counts(DAY, DAY)[DAY]
    assert clean_day.table("quarantine").empty
    failed = [key for key, evaluation in clean_day.checks.items() if not evaluation.passed]
    assert failed == []
    _assert_balanced(clean_day)


# kind -> the rule that must appear in the quarantined row's rules, from the manifest record.
ROW_FAULTS = {
    "null_required": lambda rec: f"{rec.column}.not_null",
    "out_of_range": lambda rec: f"{rec.column}.",
    "unknown_carrier": lambda rec: "carrier.in_airlines",
    "impossible_date": lambda rec: "",
    "changed_type": lambda rec: f"{rec.column}.type",
    "malformed_line": lambda rec: "parse_error",
    "wrong_encoding_latin1": lambda rec: "parse_error",
    "invalid_utf8": lambda rec: "parse_error",
}


@pytest.mark.parametrize("kind", sorted(ROW_FAULTS))
def test_each_broken_row_is_quarantined_with_its_reason(tmp_path: Path, kind: str) -> None:
    reaction = Reaction(tmp_path, (kind,))
    assert reaction.manifest, "the injector broke nothing"
    quarantined = reaction.quarantined()
    broken_rows = {rec.row for rec in reaction.manifest}
    # Exactly the broken rows, no more, no fewer; each with the reason that names the fault.
    assert set(quarantined) == broken_rows
    for record in reaction.manifest:
        row = quarantined[record.row]
        assert ROW_FAULTS[kind](record) in row["rules"], (record, row["rules"])
        assert row["_source_file"] == record.file and row["reasons"]
        if row["layer"] == "raw":
            assert row["raw_text"]  # the undecoded line is kept
        else:
            assert json.loads(row["record"])  # the row as delivered is kept
    if kind == "impossible_date":
        reasons = " ".join(quarantined[r]["reasons"] for r in broken_rows)
        assert "sched_dep_at is required" in reasons or "day" in reasons
    _assert_balanced(reaction)
    # 1% of a day misses the 99.9% completeness target (an ERROR a person hears about), but it is
    # not a systematic loss: the day's good rows flow on.
    completeness = reaction.check("cleaned", "completeness")
    assert not completeness.passed and completeness.severity.value == "ERROR"
    assert reaction.check("cleaned", "completeness_floor").passed and reaction.result.success


def test_an_unknown_destination_is_kept_and_counted_but_an_unknown_origin_is_quarantined(
    tmp_path: Path, clean_day: Reaction
) -> None:
    reaction = Reaction(tmp_path, ("unknown_airport",), rate=0.005)
    quarantined = reaction.quarantined()
    cleaned = reaction.table("cleaned")
    for record in reaction.manifest:
        if record.column == "origin":
            assert "origin.in_airports" in quarantined[record.row]["rules"]
        else:  # dest: the airports reference is known to lack real destinations, so it warns
            assert record.row not in quarantined
            assert (cleaned["_source_row"] == record.row).any()

    def broken_dest_rows(day: Reaction) -> int:
        references = day.check("cleaned", "referential_integrity").metadata["references"].value
        return references["dest.in_airports"]["rows_broken"]

    # The real day already has destinations missing from the reference (BQN, SJU, ...).
    injected = sum(r.column == "dest" for r in reaction.manifest)
    assert broken_dest_rows(reaction) == broken_dest_rows(clean_day) + injected
    _assert_balanced(reaction)


def test_duplicate_rows_are_removed_and_counted_not_quarantined(tmp_path: Path) -> None:
    reaction = Reaction(tmp_path, ("duplicate_rows",))
    assert reaction.metadata()["exact_duplicates_removed"] == len(reaction.manifest) > 0
    assert reaction.table("quarantine").empty
    assert len(reaction.table("cleaned")) == expected_daily_counts(DAY, DAY)[DAY]
    assert reaction.result.success
    _assert_balanced(reaction)


def test_ints_delivered_as_floats_are_a_type_change_that_blocks(tmp_path: Path) -> None:
    reaction = Reaction(tmp_path, ("ints_as_floats",))
    (record,) = reaction.manifest
    quarantine = reaction.table("quarantine")
    assert len(quarantine) > 0 and quarantine["rules"].str.contains(f"{record.column}.type").all()
    assert "is not a valid int" in quarantine["reasons"].iloc[0]
    floor = reaction.check("cleaned", "completeness_floor")
    assert not floor.passed and "quarantine/flights" in floor.description
    assert not reaction.result.success  # blocking: a systematic loss stops the day
    _assert_balanced(reaction)


def test_an_extra_column_is_kept_in_raw_and_warned_about(tmp_path: Path) -> None:
    reaction = Reaction(tmp_path, ("extra_column",))
    (record,) = reaction.manifest
    assert (reaction.table("raw")[record.column] == record.new).all()
    check = reaction.check("raw", "no_extra_columns")
    assert not check.passed and check.severity.value == "WARN"
    assert record.column not in reaction.table("cleaned").columns
    assert reaction.result.success


def test_a_missing_column_blocks_at_raw_and_loses_nothing(tmp_path: Path) -> None:
    reaction = Reaction(tmp_path, ("missing_column",))
    (record,) = reaction.manifest
    check = reaction.check("raw", "columns_present")
    assert not check.passed and record.column in check.description
    assert len(reaction.table("raw")) == expected_daily_counts(DAY, DAY)[DAY]
    assert reaction.table("cleaned").empty  # blocked: never built from the broken delivery


@pytest.mark.parametrize("kind", ["empty_file", "wrong_encoding_utf16"])
def test_an_unreadable_file_blocks_at_raw_with_the_reason(tmp_path: Path, kind: str) -> None:
    reaction = Reaction(tmp_path, (kind,))
    check = reaction.check("raw", "files_readable")
    assert not check.passed and f"flights/{DAY}.csv" in check.description
    raw = reaction.table("raw")
    assert len(raw) == 1 and raw["_source_row"].iloc[0] == 0 and raw["_parse_error"].iloc[0]
    assert reaction.table("cleaned").empty and not reaction.result.success


def test_a_truncated_file_quarantines_the_cut_line_and_blocks(tmp_path: Path) -> None:
    reaction = Reaction(tmp_path, ("truncated",))
    (record,) = reaction.manifest
    quarantined = reaction.quarantined()
    assert set(quarantined) == {record.row}
    assert quarantined[record.row]["raw_text"] == record.new
    # Every row before the cut arrived; the rows after it never did, and volume drift will say so.
    assert len(reaction.table("cleaned")) == record.row - 1
    assert not reaction.check("cleaned", "completeness").passed or record.row > 1000
    _assert_balanced(reaction)


def test_a_second_run_of_a_faulty_day_replaces_its_quarantine(tmp_path: Path) -> None:
    reaction = Reaction(tmp_path, ("changed_type",))
    first = reaction.table("quarantine")
    version = DeltaTable(str(reaction.lake / "quarantine" / "flights")).version()
    again = Reaction(tmp_path, ("changed_type",))
    second = again.table("quarantine")
    assert len(second) == len(first)
    assert DeltaTable(str(again.lake / "quarantine" / "flights")).version() > version
    assert not second.duplicated(["_source_file", "_source_row"]).any()
