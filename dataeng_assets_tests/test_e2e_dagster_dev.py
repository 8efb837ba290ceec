"""End to end: ``dagster dev`` on the repository's workspace, a backfill launched through GraphQL.

The backfill is launched with the UI's own ``launchPartitionBackfill`` mutation (the "Materialize"
partitions dialog for assets): an asset selection plus partition names. With
``BackfillPolicy.single_run()`` the backfill daemon turns the three days into one run tagged with
a partition range, and the Delta table must hold exactly those days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dagster import materialize

from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.resources import build_resources
from dataeng_assets.settings import PROJECT_ROOT
from dataeng_assets_tests.conftest import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    REFERENCES_SELECTION,
    expected_daily_counts,
    local_settings,
    read_table,
)
from dataeng_assets_tests.dagster_dev import (
    GRAPHQL_DOCUMENTS,
    LOOPBACK,
    DagsterDev,
    run_dagster_dev,
)

START, END = dt.date(2013, 1, 2), dt.date(2013, 1, 4)
# cleaned and quarantine are one step (a multi-asset): the UI selects them together too.
ASSETS = [["raw", "flights"], ["cleaned", "flights"], ["quarantine", "flights"]]


def _days(start: dt.date, end: dt.date) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _daily_counts(frame: pd.DataFrame) -> dict[dt.date, int]:
    return {d: int(n) for d, n in frame["date"].value_counts().items()}


@pytest.fixture(scope="module")
def dagster_dev(
    landing_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagsterDev]:
    """One ``dagster dev`` per module (tests in the module share it, and its lake)."""
    work = tmp_path_factory.mktemp("dagster_dev")
    # The reference tables the cleaning checks flights against, materialized beforehand.
    references = materialize(
        ALL_ASSETS,
        selection=REFERENCES_SELECTION,
        resources=build_resources(local_settings(landing_dir, work / "lake")),
    )
    assert references.success
    # Sensors and schedules start stopped: this module drives its own backfill, and the arrival
    # sensors would otherwise ingest every landed day and queue ahead of it (test_automation_e2e
    # covers them).
    with run_dagster_dev(
        PROJECT_ROOT,
        landing=landing_dir,
        lake=work / "lake",
        work_dir=work,
        extra_env={"DATAENG_AUTOMATION": "off"},
    ) as server:
        yield server


def test_graphql_documents_match_the_installed_schema() -> None:
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    schema = create_schema().graphql_schema
    for name, document in GRAPHQL_DOCUMENTS.items():
        errors = validate(schema, parse(document))
        assert not errors, f"{name}: {[e.message for e in errors]}"


def _assert_loopback_only(server: DagsterDev) -> None:
    listeners = server.listening_sockets()
    assert any(x.port == server.port for x in listeners), (
        f"webserver port {server.port} not found among {listeners} of pids {server.pids()}"
    )
    exposed = [x for x in listeners if x.address != LOOPBACK]
    assert not exposed, f"dagster dev listens beyond {LOOPBACK}: {exposed}"


@pytest.mark.e2e
def test_dagster_dev_listens_on_loopback_only(dagster_dev: DagsterDev) -> None:
    # webserver, daemon, code-server proxy and gRPC code server all share the process group.
    assert len(dagster_dev.pids()) >= 4, dagster_dev.pids()
    _assert_loopback_only(dagster_dev)


@pytest.mark.e2e
def test_backfill_through_graphql_materializes_exactly_the_requested_days(
    dagster_dev: DagsterDev,
) -> None:
    days = _days(START, END)
    backfill_id = dagster_dev.launch_asset_backfill(ASSETS, days)

    backfill = dagster_dev.wait_for_backfill(backfill_id, timeout=180)

    report = dagster_dev.describe_backfill(backfill)
    assert backfill["isAssetBackfill"], report
    assert sorted(backfill["partitionNames"]) == days, report
    # single_run(): one run for the whole range, tagged like the conftest's run_window.
    assert len(backfill["runs"]) == 1, report
    tags = {t["key"]: t["value"] for t in backfill["runs"][0]["tags"]}
    assert (tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)) == (days[0], days[-1]), report

    expected = expected_daily_counts(START, END)
    assert set(expected) == {dt.date.fromisoformat(d) for d in days}
    # The arrival sensors (on by default) may ingest other landed days meanwhile: compare the
    # backfilled days only.
    for key in ASSETS[:2]:
        counts = _daily_counts(read_table(str(dagster_dev.lake.joinpath(*key))))
        assert {d: counts.get(d) for d in expected} == expected, "/".join(key)
    quarantine = read_table(str(dagster_dev.lake.joinpath(*ASSETS[2])))
    assert not quarantine["date"].isin(expected).any()  # the real days are clean

    # The UI shows every check on every backfilled day, though the three days were one run.
    statuses = dagster_dev.check_partition_statuses(["cleaned", "flights"])
    assert "row_accounting" in statuses and "key_unique" in statuses, statuses
    for name, ranges in statuses.items():
        succeeded = [(r["startKey"], r["endKey"]) for r in ranges if r["status"] == "SUCCEEDED"]
        assert (days[0], days[-1]) in succeeded, f"{name}: {ranges}"

    # Run workers are in the group too; still nothing beyond loopback.
    _assert_loopback_only(dagster_dev)
