"""The replay into the landing zone, and how the raw layer reads (or refuses) delivered files."""

import datetime as dt
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from dagster import materialize

from dataeng_assets.definitions import ALL_ASSETS
from dataeng_assets.landing.files import (
    DeliveredFile,
    list_delivered,
    read_delivered,
)
from dataeng_assets.landing.replay import main, read_package_table, replay
from dataeng_assets.resources import build_resources
from dataeng_assets_tests.conftest import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    expected_daily_counts,
    local_settings,
)

FS = pafs.LocalFileSystem()
START, END = dt.date(2013, 3, 9), dt.date(2013, 3, 11)


def _file(path: Path, root: Path) -> DeliveredFile:
    return DeliveredFile(str(path), str(path.relative_to(root)), path.stat().st_size, None)


def test_replay_writes_one_file_per_day_with_the_packages_rows(tmp_path: Path) -> None:
    written = replay(FS, str(tmp_path), START, END)
    assert written == {"flights": 3, "weather": 3, "airlines": 1, "airports": 1, "planes": 1}
    for day, count in expected_daily_counts(START, END).items():
        table = read_delivered(FS, _file(tmp_path / "flights" / f"{day}.csv", tmp_path), "csv")
        assert len(table) == count
    assert (tmp_path / "planes" / "planes.csv").exists()
    weather = read_delivered(FS, _file(tmp_path / "weather" / "2013-03-10.csv", tmp_path), "csv")
    # 10 March 2013 lost an hour to daylight saving: 23 local hours per airport at most.
    assert 60 < len(weather) <= 3 * 23


def test_replay_is_idempotent(tmp_path: Path) -> None:
    replay(FS, str(tmp_path), START, START)
    first = (tmp_path / "flights" / f"{START}.csv").read_bytes()
    replay(FS, str(tmp_path), START, START)
    assert (tmp_path / "flights" / f"{START}.csv").read_bytes() == first
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_other_formats_read_back_as_the_same_strings(tmp_path: Path, fmt: str) -> None:
    replay(FS, str(tmp_path / "csv"), START, START)
    replay(FS, str(tmp_path / fmt), START, START, fmt=fmt)
    as_csv = read_delivered(
        FS, _file(tmp_path / "csv" / "flights" / f"{START}.csv", tmp_path / "csv"), "csv"
    )
    other = tmp_path / fmt / "flights" / f"{START}.{fmt}"
    assert read_delivered(FS, _file(other, tmp_path / fmt), fmt).equals(as_csv)


def test_the_replayed_strings_are_the_packages_own(tmp_path: Path) -> None:
    replay(FS, str(tmp_path), START, START)
    delivered = read_delivered(FS, _file(tmp_path / "airlines" / "airlines.csv", tmp_path), "csv")
    assert delivered.equals(read_package_table("airlines"))


def test_several_files_of_one_day_belong_to_it(tmp_path: Path) -> None:
    (tmp_path / "flights").mkdir()
    for name in ("2013-01-05.csv", "2013-01-05_late.csv", "2013-01-050.csv", "2013-01-05.json"):
        (tmp_path / "flights" / name).write_text("a\n1\n")
    found = list_delivered(FS, str(tmp_path), "flights/2013-01-05", "csv")
    assert [f.relative_path for f in found] == [
        "flights/2013-01-05.csv",
        "flights/2013-01-05_late.csv",
    ]


def test_the_cli_refuses_days_outside_the_data(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--start", "2012-12-31", "--end", "2013-01-01", "--dest", str(tmp_path)])
    assert "2013-01-01 .. 2013-12-31" in capsys.readouterr().err
    assert main(["--start", "2013-01-01", "--end", "2013-01-01", "--dest", str(tmp_path)]) == 0
    assert (tmp_path / "flights" / "2013-01-01.csv").exists()


def _raw_flights_error(landing: Path, lake: Path, day: str) -> str:
    result = materialize(
        ALL_ASSETS,
        selection="key:raw/flights",
        resources=build_resources(local_settings(landing, lake)),
        tags={RANGE_START_TAG: day, RANGE_END_TAG: day},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.error.message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no csv file for flights at"),
        (b"", "the file is empty"),
        (b"year,month,day\n2013,1,5\n", "missing declared column(s) ['dep_time'"),
        (b"year,month\n2013,1\n2013,1,5,7\n", "cannot be read as csv"),
    ],
)
def test_a_bad_delivery_fails_the_partition_with_a_clear_message(
    tmp_path: Path, content, message
) -> None:
    (tmp_path / "landing" / "flights").mkdir(parents=True)
    if content is not None:
        (tmp_path / "landing" / "flights" / "2013-01-05.csv").write_bytes(content)
    error = _raw_flights_error(tmp_path / "landing", tmp_path / "lake", "2013-01-05")
    assert message in error
    assert "2013-01-05" in error
    assert not (tmp_path / "lake" / "raw" / "flights" / "date=2013-01-05").exists()
