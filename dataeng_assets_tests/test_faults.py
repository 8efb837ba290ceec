"""Fault injection in the replay: each kind corrupts what it says, and the manifest says exactly where.

The manifest is what the quality tests hold the platform against, so these tests check it cell by
cell: a record's row and column hold its ``new`` value in the delivered file, the clean file held its
``original`` there, and nothing outside the records changed.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from dataeng_assets.landing.faults import (
    FAULTS,
    MISSING_MARKERS,
    UNKNOWN_AIRPORTS,
    UNKNOWN_CARRIERS,
    FaultNotApplicable,
    FaultPlan,
    FaultRecord,
    check_faults,
    read_manifest,
)
from dataeng_assets.landing.files import DeliveredFile, list_delivered, read_delivered
from dataeng_assets.landing.replay import main, read_package_table, replay
from dataeng_assets.resources import build_resources
from dataeng_assets_tests.conftest import local_settings, read_table, run_window

FS = pafs.LocalFileSystem()
DAY = dt.date(2013, 2, 28)  # February: an impossible day is 29, 30, 31 or 32
KEY = DAY.isoformat()
FLIGHTS_FILE = f"flights/{KEY}.csv"
WEATHER_FILE = f"weather/{KEY}.csv"
ROW_KINDS = [
    "null_required",
    "out_of_range",
    "unknown_carrier",
    "unknown_airport",
    "impossible_date",
    "changed_type",
]
LINE_KINDS = ["malformed_line", "wrong_encoding_latin1", "invalid_utf8"]

# sha256 of what the replay wrote before fault injection existed (commit c51e1d3), for 2013-02-28
# and 2013-03-01: without --fault, not one byte may change.
GOLDEN = {
    "csv/airlines/airlines.csv": "162551bd3401a12d63db3d92b7e66af3017d2e40d55919d6a678489323c10609",
    "csv/airports/airports.csv": "36c290b69800422f36618f471a042b670b9329e8eb0686eff44f371a9761e148",
    "csv/planes/planes.csv": "778962edec8339f6f6edb1d6506869f61cab573eda03d7e162d2899c76d04c1a",
    "csv/flights/2013-02-28.csv": "7402ce81cdaebca335ee40d524e509f0b8b167eba42127a7ea17289b19a27e9e",
    "csv/flights/2013-03-01.csv": "5d925bc27212996c312df2a5b8d8bd37e1a9d95d58b4a128390aa22febfa6d13",
    "csv/weather/2013-02-28.csv": "3cf914b44b571fb661bca086b734098b70879f8fdc37dda56f87eef2ff22f257",
    "csv/weather/2013-03-01.csv": "f2713f894a20761a29491f586c18c077fe451edd15e45bf22fde325c11b61c3a",
    "jsonl/flights/2013-02-28.jsonl": "3ae1d432f541a647b347d8aad74a5763f24ff1d8d1f80a1f033fffc39dc755d4",
    "jsonl/weather/2013-02-28.jsonl": "e6de7a89179c01ecb6e36148150aa9e237846e86c0ba580d7d46f5832eb44520",
}


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The day replayed without faults (read only)."""
    root = tmp_path_factory.mktemp("clean")
    replay(FS, str(root), DAY, DAY)
    return root


def _deliver(root: Path, *kinds: str, source: str = "flights", **plan) -> list[FaultRecord]:
    """Replay DAY with these faults into ``root``; the manifest written for ``source``."""
    replay(FS, str(root), DAY, DAY, faults=FaultPlan(kinds=kinds, sources=(source,), **plan))
    return read_manifest(FS, str(root), source, KEY)


def _read(root: Path, relative: str) -> pa.Table:
    path = root / relative
    file = DeliveredFile(str(path), relative, path.stat().st_size, None)
    return read_delivered(FS, file, "csv")


def _lines(root: Path, relative: str) -> list[bytes]:
    """``lines[row]`` is data row ``row`` as delivered (``lines[0]`` the header)."""
    return (root / relative).read_bytes().split(b"\n")


def _cells(table: pa.Table) -> dict[tuple[int, str], str]:
    """Every value by (1-based row, column)."""
    return {
        (row, name): value
        for name in table.column_names
        for row, value in enumerate(table[name].to_pylist(), start=1)
    }


# --- the registry -------------------------------------------------------------------------------


def test_the_unknown_codes_are_unknown_to_the_reference_tables() -> None:
    carriers = set(read_package_table("airlines")["carrier"].to_pylist())
    airports = set(read_package_table("airports")["faa"].to_pylist())
    assert carriers.isdisjoint(UNKNOWN_CARRIERS)
    assert airports.isdisjoint(UNKNOWN_AIRPORTS)
    # Upper case already: the cleaned layer's normalising cannot turn them into known codes.
    assert all(c == c.upper() for c in (*UNKNOWN_CARRIERS, *UNKNOWN_AIRPORTS))


def test_every_kind_the_issue_lists_exists() -> None:
    assert set(FAULTS) == {
        *ROW_KINDS,
        *LINE_KINDS,
        "duplicate_rows",
        "ints_as_floats",
        "extra_column",
        "missing_column",
        "truncated",
        "wrong_encoding_utf16",
        "empty_file",
    }
    # Every kind applies to flights as CSV, and all combine but the two that rewrite the whole file.
    assert (
        check_faults(set(FAULTS) - {"empty_file", "wrong_encoding_utf16"}, "flights", "csv") == []
    )
    assert check_faults(["empty_file", "null_required"], "flights", "csv") == [
        "empty_file cannot be combined with other faults"
    ]


# --- faults on values: the records point at exactly the cells that changed ------------------------


def _check_value(kind: str, record: FaultRecord) -> None:
    """The new value is wrong in the way the kind says (judged here, not by the injector)."""
    new, column = record.new, record.column
    assert new is not None and column is not None
    if kind == "null_required":
        assert new in MISSING_MARKERS and record.original not in MISSING_MARKERS
    elif kind == "out_of_range":
        number = float(new)
        bad = {
            "distance": number < 0,
            "air_time": number < 0,
            "dep_delay": number >= 10_000,
            "arr_delay": number <= -10_000,
            "month": not 1 <= number <= 12,
            "hour": not 0 <= number <= 23,
            "minute": not 0 <= number <= 59,
            "humid": number > 100,
            "wind_dir": number > 360,
            "wind_speed": number < 0,
            "precip": number < 0,
        }
        assert bad[column], record
    elif kind == "unknown_carrier":
        assert column == "carrier"
        assert new not in read_package_table("airlines")["carrier"].to_pylist()
    elif kind == "unknown_airport":
        assert column in ("origin", "dest")
        assert new not in read_package_table("airports")["faa"].to_pylist()
    elif kind == "impossible_date":
        assert column == "day"
        assert int(new) > calendar.monthrange(2013, 2)[1]  # DAY is in February 2013
    elif kind == "changed_type":
        with pytest.raises(ValueError):
            float(new)


@pytest.mark.parametrize("kind", ROW_KINDS)
def test_a_value_fault_changes_exactly_the_cells_its_manifest_lists(
    tmp_path: Path, clean: Path, kind: str
) -> None:
    records = _deliver(tmp_path, kind)
    before, after = _cells(_read(clean, FLIGHTS_FILE)), _cells(_read(tmp_path, FLIGHTS_FILE))
    expected_rows = max(1, round(0.01 * _read(clean, FLIGHTS_FILE).num_rows))
    assert len(records) == expected_rows
    assert len({r.row for r in records}) == len(records)  # one fault per row
    for record in records:
        assert (record.kind, record.file) == (kind, FLIGHTS_FILE)
        assert before[record.row, record.column] == record.original
        assert after[record.row, record.column] == record.new != record.original
        _check_value(kind, record)
    changed = {cell for cell in before if before[cell] != after[cell]}
    assert changed == {(r.row, r.column) for r in records}


@pytest.mark.parametrize("kind", ["null_required", "out_of_range", "unknown_airport"])
def test_weather_is_corrupted_the_same_way(tmp_path: Path, clean: Path, kind: str) -> None:
    records = _deliver(tmp_path, kind, source="weather", rate=0.1)
    before, after = _cells(_read(clean, WEATHER_FILE)), _cells(_read(tmp_path, WEATHER_FILE))
    assert len(records) == round(0.1 * _read(clean, WEATHER_FILE).num_rows)
    for record in records:
        assert record.file == WEATHER_FILE
        assert before[record.row, record.column] == record.original
        assert after[record.row, record.column] == record.new
        _check_value(kind, record)
    assert {c for c in before if before[c] != after[c]} == {(r.row, r.column) for r in records}
    # Flights were not asked for: delivered clean, no manifest.
    assert (tmp_path / FLIGHTS_FILE).read_bytes() == (clean / FLIGHTS_FILE).read_bytes()
    assert read_manifest(FS, str(tmp_path), "flights", KEY) == []


def test_fault_rate_sets_how_many_rows(tmp_path: Path, clean: Path) -> None:
    rows = _read(clean, FLIGHTS_FILE).num_rows
    assert len(_deliver(tmp_path / "a", "changed_type", rate=0.05)) == round(0.05 * rows)
    assert len(_deliver(tmp_path / "b", "changed_type", rate=1e-9)) == 1  # at least one


def test_duplicate_rows_adds_exact_copies_and_nothing_else(tmp_path: Path, clean: Path) -> None:
    records = _deliver(tmp_path, "duplicate_rows", rate=0.02)
    original, delivered = _read(clean, FLIGHTS_FILE), _read(tmp_path, FLIGHTS_FILE)
    assert delivered.num_rows == original.num_rows + len(records) > original.num_rows
    rows = delivered.to_pylist()
    for record in records:
        assert record.copy_of is not None and record.copy_of < record.row  # the copy comes later
        assert rows[record.row - 1] == rows[record.copy_of - 1]
    copies = {r.row for r in records}
    kept = [row for number, row in enumerate(rows, start=1) if number not in copies]
    assert kept == original.to_pylist()


# --- faults on whole columns --------------------------------------------------------------------


def test_extra_column_adds_one_undeclared_column(tmp_path: Path, clean: Path) -> None:
    (record,) = _deliver(tmp_path, "extra_column")
    delivered = _read(tmp_path, FLIGHTS_FILE)
    assert record.row is None and record.column not in _read(clean, FLIGHTS_FILE).column_names
    assert set(delivered[record.column].to_pylist()) == {record.new}
    assert delivered.drop_columns([record.column]).equals(_read(clean, FLIGHTS_FILE))


def test_missing_column_leaves_one_column_out(tmp_path: Path, clean: Path) -> None:
    (record,) = _deliver(tmp_path, "missing_column")
    original = _read(clean, FLIGHTS_FILE)
    assert record.row is None and record.column in original.column_names
    assert _read(tmp_path, FLIGHTS_FILE).equals(original.drop_columns([record.column]))


def test_ints_as_floats_writes_a_whole_integer_column_as_floats(
    tmp_path: Path, clean: Path
) -> None:
    (record,) = _deliver(tmp_path, "ints_as_floats")
    original, delivered = _read(clean, FLIGHTS_FILE), _read(tmp_path, FLIGHTS_FILE)
    assert record.row is None
    pairs = list(
        zip(original[record.column].to_pylist(), delivered[record.column].to_pylist(), strict=True)
    )
    assert all(new == (f"{old}.0" if old != "NA" else old) for old, new in pairs)
    assert any(new.endswith(".0") for _, new in pairs)
    others = [c for c in original.column_names if c != record.column]
    assert delivered.select(others).equals(original.select(others))


# --- faults in the bytes ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LINE_KINDS)
def test_a_line_fault_changes_exactly_the_lines_its_manifest_lists(
    tmp_path: Path, clean: Path, kind: str
) -> None:
    records = _deliver(tmp_path, kind)
    before, after = _lines(clean, FLIGHTS_FILE), _lines(tmp_path, FLIGHTS_FILE)
    header = before[0].decode().split(",")
    assert records and len(before) == len(after)
    for record in records:
        line = after[record.row]
        if kind == "malformed_line":
            assert len(line.split(b",")) != len(header)
            assert record.original == before[record.row].decode()
            assert record.new == line.decode()
            continue
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")
        value = line.split(b",")[header.index(record.column)]
        assert value.decode("utf-8", errors="backslashreplace") == record.new
        assert (
            before[record.row].split(b",")[header.index(record.column)].decode() == record.original
        )
        if kind == "wrong_encoding_latin1":  # read as latin-1 it is the value plus an accent
            text = value.decode("latin-1")
            assert text[:-1] == record.original and not text[-1].isascii()
    unchanged = [n for n in range(len(before)) if n not in {r.row for r in records}]
    assert all(before[n] == after[n] for n in unchanged)


def test_truncated_cuts_the_file_inside_a_line(tmp_path: Path, clean: Path) -> None:
    (record,) = _deliver(tmp_path, "truncated")
    original, data = (clean / FLIGHTS_FILE).read_bytes(), (tmp_path / FLIGHTS_FILE).read_bytes()
    assert original.startswith(data) and not data.endswith(b"\n")
    lines = data.split(b"\n")
    assert len(lines) - 1 == record.row  # the partial line is the last, and it is row `row`
    assert lines[-1].decode() == record.new
    assert original.split(b"\n")[record.row].decode() == record.original
    assert 0 < len(record.new) < len(record.original)  # partial: neither empty nor whole


def test_truncated_cuts_the_header_of_a_day_without_rows(tmp_path: Path) -> None:
    last = dt.date(2013, 12, 31)  # the weather data ends the day before: a header-only file
    plan = FaultPlan(("truncated",), sources=("weather",))
    replay(FS, str(tmp_path), last, last, faults=plan)
    (record,) = read_manifest(FS, str(tmp_path), "weather", last.isoformat())
    data = (tmp_path / "weather" / f"{last}.csv").read_bytes()
    assert record.row is None and b"\n" not in data
    assert record.original.startswith(data.decode()) and data.decode() == record.new


def test_empty_file_is_zero_bytes(tmp_path: Path) -> None:
    (record,) = _deliver(tmp_path, "empty_file")
    assert (tmp_path / FLIGHTS_FILE).read_bytes() == b""
    assert (record.kind, record.row, record.column) == ("empty_file", None, None)


def test_wrong_encoding_utf16_is_the_same_text_in_another_encoding(
    tmp_path: Path, clean: Path
) -> None:
    (record,) = _deliver(tmp_path, "wrong_encoding_utf16")
    data = (tmp_path / FLIGHTS_FILE).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert data.decode("utf-16") == (clean / FLIGHTS_FILE).read_text(encoding="utf-8")
    assert record.row is None


# --- several faults in one file -----------------------------------------------------------------


def test_combined_faults_never_share_a_row_and_every_record_stays_true(
    tmp_path: Path, clean: Path
) -> None:
    kinds = [k for k in FAULTS if k not in ("empty_file", "missing_column", "wrong_encoding_utf16")]
    records = _deliver(tmp_path, *kinds, rate=0.02, seed=7)
    assert {r.kind for r in records} == set(kinds)
    named = [n for r in records for n in (r.row, r.copy_of) if n is not None]
    assert len(named) == len(set(named))
    lines = _lines(tmp_path, FLIGHTS_FILE)
    header = lines[0].decode().split(",")
    (cut,) = [r for r in records if r.kind == "truncated"]
    assert cut.row == len(lines) - 1 == max(named)  # nothing recorded for rows never delivered
    for record in records:
        if record.row is None:
            continue
        line = lines[record.row].decode("utf-8", errors="backslashreplace")
        if record.kind == "duplicate_rows":
            assert lines[record.row] == lines[record.copy_of]
        elif record.kind in ("malformed_line", "truncated"):
            assert line == record.new
        else:  # one value changed: the delivered cell holds the new value
            assert line.split(",")[header.index(record.column)] == record.new, record


def test_an_impossible_plan_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    plan = FaultPlan(("unknown_carrier",), sources=("flights", "weather"))
    with pytest.raises(FaultNotApplicable, match="unknown_carrier does not apply to weather"):
        replay(FS, str(tmp_path), DAY, DAY, faults=plan)
    assert not list(tmp_path.iterdir())


# --- reproducibility, and no change without faults ----------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_same_seed_gives_the_same_bytes_and_manifest(tmp_path: Path) -> None:
    kinds = ("duplicate_rows", "out_of_range", "malformed_line", "truncated")
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        plan = FaultPlan(kinds, sources=("flights", "weather"), seed=seed)
        replay(FS, str(tmp_path / name), DAY, DAY, faults=plan)
    a, b, c = (_tree(tmp_path / name) for name in "abc")
    assert a == b
    assert f"_faults/weather/{KEY}.jsonl" in a
    assert a[FLIGHTS_FILE] != c[FLIGHTS_FILE]
    assert a[f"_faults/flights/{KEY}.jsonl"] != c[f"_faults/flights/{KEY}.jsonl"]


def test_a_days_faults_do_not_depend_on_the_replayed_range(tmp_path: Path) -> None:
    plan = FaultPlan(("changed_type", "truncated"), seed=3)
    replay(FS, str(tmp_path / "one"), DAY, DAY, faults=plan)
    replay(FS, str(tmp_path / "range"), DAY - dt.timedelta(days=2), DAY, faults=plan)
    for relative in (FLIGHTS_FILE, f"_faults/flights/{KEY}.jsonl"):
        assert (tmp_path / "one" / relative).read_bytes() == (
            tmp_path / "range" / relative
        ).read_bytes()


def test_without_faults_the_replay_writes_the_same_bytes_as_before(tmp_path: Path) -> None:
    replay(FS, str(tmp_path / "csv"), DAY, DAY + dt.timedelta(days=1))
    replay(FS, str(tmp_path / "jsonl"), DAY, DAY, fmt="jsonl")
    written = {
        relative: hashlib.sha256(data).hexdigest()
        for relative, data in _tree(tmp_path).items()
        if relative in GOLDEN
    }
    assert written == GOLDEN
    assert not (tmp_path / "csv" / "_faults").exists()


def test_days_outside_fault_days_are_delivered_clean_and_a_clean_redelivery_drops_the_manifest(
    tmp_path: Path,
) -> None:
    next_day = DAY + dt.timedelta(days=1)
    plan = FaultPlan(("unknown_carrier",), days=frozenset({next_day}))
    replay(FS, str(tmp_path), DAY, next_day, faults=plan)
    digest = hashlib.sha256((tmp_path / FLIGHTS_FILE).read_bytes()).hexdigest()
    assert digest == GOLDEN[f"csv/{FLIGHTS_FILE}"]
    assert read_manifest(FS, str(tmp_path), "flights", KEY) == []
    assert read_manifest(FS, str(tmp_path), "flights", next_day.isoformat())
    replay(FS, str(tmp_path), next_day, next_day)  # delivered again, clean
    assert not (tmp_path / "_faults" / "flights" / f"{next_day}.jsonl").exists()


# --- the command, and what the raw layer sees ---------------------------------------------------


def test_the_cli_writes_the_manifest_where_the_raw_layer_never_looks(tmp_path: Path) -> None:
    args = ["--start", "2013-02-27", "--end", KEY, "--dest", str(tmp_path), "--seed", "1"]
    assert (
        main([*args, "--fault", "unknown_carrier", "--fault", "truncated", "--fault-days", KEY])
        == 0
    )
    manifests = sorted(p.relative_to(tmp_path) for p in (tmp_path / "_faults").rglob("*"))
    assert [str(p) for p in manifests] == ["_faults/flights", f"_faults/flights/{KEY}.jsonl"]
    lines = (tmp_path / "_faults" / "flights" / f"{KEY}.jsonl").read_text().splitlines()
    assert {json.loads(line)["kind"] for line in lines} == {"unknown_carrier", "truncated"}
    found = list_delivered(FS, str(tmp_path), f"flights/{KEY}", "csv")
    assert [f.relative_path for f in found] == [FLIGHTS_FILE]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seed", "3"], "--seed without --fault"),
        (["--fault", "empty_file", "--fault", "truncated"], "cannot be combined"),
        (["--fault", "unknown_carrier", "--fault-source", "weather"], "does not apply to weather"),
        (
            ["--fault", "truncated", "--format", "parquet"],
            "does not apply to flights delivered as parquet",
        ),
        (["--fault", "truncated", "--fault-days", "2013-03-05"], "outside --start .. --end"),
        (["--fault", "truncated", "--fault-rate", "0"], "--fault-rate"),
    ],
)
def test_the_cli_refuses_fault_options_it_cannot_honour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit):
        main(["--start", KEY, "--end", KEY, "--dest", str(tmp_path), *extra])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "flights").exists()


def test_the_manifest_rows_are_raws_source_rows(tmp_path: Path) -> None:
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    records = _deliver(landing, "duplicate_rows", "unknown_carrier", "out_of_range", seed=2)
    run_window(build_resources(local_settings(landing, lake)), DAY, DAY, "key:raw/flights")
    raw = read_table(str(lake / "raw" / "flights")).set_index(["_source_file", "_source_row"])
    for record in records:
        row = raw.loc[(record.file, record.row)]
        if record.kind == "duplicate_rows":
            columns = [c for c in raw.columns if not c.startswith("_")]
            copied = raw.loc[(record.file, record.copy_of)]
            assert row[columns].equals(copied[columns])
        else:
            assert row[record.column] == record.new
