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
    REFERENCES_SELECTION,
    expected_daily_counts,
    local_settings,
    read_table,
    selection_of,
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


def _deliver_and_run(tmp_path: Path, content: bytes | None):
    """Deliver one file for 2013-01-05 (next to a good snapshot of the references) and run it."""
    landing = tmp_path / "landing"
    replay(FS, str(landing), dt.date(2013, 1, 5), dt.date(2013, 1, 5))
    target = landing / "flights" / "2013-01-05.csv"
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)
    resources = build_resources(local_settings(landing, tmp_path / "lake"))
    assert materialize(ALL_ASSETS, selection=REFERENCES_SELECTION, resources=resources).success
    return materialize(
        ALL_ASSETS,
        selection=selection_of("flights"),
        resources=resources,
        tags={RANGE_START_TAG: "2013-01-05", RANGE_END_TAG: "2013-01-05"},
        raise_on_error=False,
    )


def _checks(result) -> dict[str, tuple[bool, str]]:
    return {
        e.asset_check_evaluation_data.check_name: (
            e.asset_check_evaluation_data.passed,
            e.asset_check_evaluation_data.description or "",
        )
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_missing_delivery_fails_the_partition_and_writes_nothing(tmp_path: Path) -> None:
    result = _deliver_and_run(tmp_path, None)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no csv file for flights at" in failure.step_failure_data.error.message
    assert "2013-01-05" in failure.step_failure_data.error.message
    assert not (tmp_path / "lake" / "raw" / "flights" / "date=2013-01-05").exists()


@pytest.mark.parametrize(
    ("content", "check", "message"),
    [
        (b"", "files_readable", "empty file"),
        (b"year,month,day\n2013,1,5\n", "columns_present", "lacks ['dep_time'"),
    ],
)
def test_an_unusable_file_is_kept_in_raw_and_blocks_cleaning(
    tmp_path: Path, content, check, message
) -> None:
    result = _deliver_and_run(tmp_path, content)
    assert not result.success
    passed, description = _checks(result)[check]
    assert not passed and message in description and "flights/2013-01-05.csv" in description
    # Nothing is lost: raw holds what was delivered; nothing downstream was built from it.
    raw = read_table(str(tmp_path / "lake" / "raw" / "flights"))
    assert len(raw) >= 1 and (raw["_source_file"] == "flights/2013-01-05.csv").all()
    assert not (tmp_path / "lake" / "cleaned" / "flights").exists()


def test_a_malformed_line_is_quarantined_with_its_text_and_the_rest_loads(tmp_path: Path) -> None:
    good = read_package_table("flights").slice(0, 3)
    header = ",".join(good.column_names)
    lines = [",".join(r) for r in zip(*(c.to_pylist() for c in good.columns), strict=True)]
    content = "\n".join([header, lines[0], "2013,1,5,oops", lines[1]]) + "\n"
    # The package's first rows are dated 2013-01-01: redate them to the file's day.
    content = content.replace("2013,1,1,", "2013,1,5,").replace("2013-01-01T", "2013-01-05T")
    result = _deliver_and_run(tmp_path, content.encode())
    checks = _checks(result)
    assert checks["lines_parseable"][0] is False
    # One line in three lost: below the completeness floor (blocking), so nothing downstream runs.
    assert checks["completeness_floor"][0] is False and not result.success
    cleaned = read_table(str(tmp_path / "lake" / "cleaned" / "flights"))
    quarantine = read_table(str(tmp_path / "lake" / "quarantine" / "flights"))
    assert len(cleaned) == 2
    assert quarantine[["_source_row", "layer", "rules", "raw_text"]].values.tolist() == [
        [2, "raw", "parse_error", "2013,1,5,oops"]
    ]
    assert "4 field(s) where the header has 19" in quarantine["reasons"].iloc[0]
