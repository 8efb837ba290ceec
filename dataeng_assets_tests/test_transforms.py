"""Typing and conforming, as pure functions: no Dagster, no storage."""

import datetime as dt

import pandas as pd
import pytest

from dataeng_assets.contracts import ColumnSpec, Contract, parse_contract
from dataeng_assets.sources.flights import build_flight_times
from dataeng_assets.transforms.conform import (
    ContractViolation,
    cast_to_contract,
    clean_table,
    drop_exact_duplicates,
    local_to_utc,
)

CONTRACT = Contract(
    "test/table",
    "",
    (
        ColumnSpec("code", "string", nullable=False),
        ColumnSpec("count", "int"),
        ColumnSpec("ratio", "float"),
        ColumnSpec("flag", "bool"),
        ColumnSpec("at", "timestamp"),
    ),
    unique=("code",),
)


def _raw(**columns: list[str]) -> pd.DataFrame:
    rows = len(next(iter(columns.values())))
    return pd.DataFrame(
        {
            **columns,
            "_source_file": ["t/2013-01-01.csv"] * rows,
            "_source_row": list(range(1, rows + 1)),
        }
    )


def test_values_are_typed_and_missing_markers_become_missing() -> None:
    raw = _raw(
        code=["a", "b"],
        count=["1", "NA"],
        ratio=["0.5", ""],
        flag=["true", "0"],
        at=["2013-01-01T10:00:00Z", "NA"],
    )
    typed, problems = cast_to_contract(raw, CONTRACT)
    assert problems.empty
    assert typed["count"].tolist() == [1, pd.NA] and str(typed["count"].dtype) == "Int64"
    assert typed["ratio"].isna().tolist() == [False, True]
    assert typed["flag"].tolist() == [True, False]
    assert typed["at"].iloc[0] == pd.Timestamp("2013-01-01T10:00:00Z") and pd.isna(
        typed["at"].iloc[1]
    )


def test_a_value_that_cannot_be_typed_is_reported_with_its_file_and_row() -> None:
    raw = _raw(
        code=["a", "b", "c"],
        count=["1", "two", "3.5"],
        ratio=["1", "1", "1"],
        flag=["t", "f", "maybe"],
        at=["NA"] * 3,
    )
    _, problems = cast_to_contract(raw, CONTRACT)
    assert sorted(
        zip(problems["column"], problems["value"], problems["_source_row"], strict=True)
    ) == [("count", "3.5", 3), ("count", "two", 2), ("flag", "maybe", 3)]
    with pytest.raises(
        ContractViolation, match=r"t/2013-01-01.csv row 2: column 'count' value 'two'"
    ):
        clean_table(raw, CONTRACT)


def test_exact_duplicates_ignore_lineage_and_key_duplicates_keep_the_last_delivery() -> None:
    raw = _raw(
        code=["a", "a", "b", "b"],
        count=["1", "1", "1", "2"],
        ratio=["0"] * 4,
        flag=["t"] * 4,
        at=["NA"] * 4,
    )
    frame, exact = drop_exact_duplicates(raw)
    assert exact == 1 and len(frame) == 3
    result = clean_table(raw, CONTRACT, natural_key=["code"])
    assert (result.exact_duplicates_removed, result.key_duplicates_removed) == (1, 1)
    assert result.rows_in == result.rows_out + 2
    assert result.frame.set_index("code")["count"].to_dict() == {"a": 1, "b": 2}


def test_local_times_become_utc_across_daylight_saving() -> None:
    parts = pd.DataFrame(
        {
            "year": [2013, 2013, 2013],
            "month": [1, 7, 3],
            "day": [1, 1, 10],
            "hour": [5, 5, 2],
            "minute": [15, 15, 30],
        }
    )
    utc = local_to_utc(parts)
    assert utc.tolist() == [
        pd.Timestamp("2013-01-01T10:15Z"),  # EST, UTC-5
        pd.Timestamp("2013-07-01T09:15Z"),  # EDT, UTC-4
        pd.Timestamp("2013-03-10T07:30Z"),  # 02:30 does not exist that night: read as 03:30 EDT
    ]


def test_the_repeated_november_hour_is_told_apart_by_the_delivered_utc_hour() -> None:
    parts = pd.DataFrame({"year": [2013, 2013], "month": [11, 11], "day": [3, 3], "hour": [1, 1]})
    hint = pd.to_datetime(pd.Series(["2013-11-03T05:00:00Z", "2013-11-03T06:00:00Z"]), utc=True)
    assert local_to_utc(parts, hint_utc=hint).tolist() == hint.dt.as_unit("us").tolist()


def test_flight_times_and_the_cancelled_flag() -> None:
    flights = pd.DataFrame(
        {
            "year": [2013, 2013],
            "month": [1, 1],
            "day": [1, 1],
            "hour": [23, 6],
            "minute": [59, 0],
            "dep_time": pd.array([14, None], dtype="Int64"),
            "dep_delay": [15.0, None],
            "time_hour": pd.to_datetime(["2013-01-02T04:00Z", "2013-01-01T11:00Z"]),
        }
    )
    out = build_flight_times(flights)
    assert out["sched_dep_at"].tolist() == [
        pd.Timestamp("2013-01-02T04:59Z"),
        pd.Timestamp("2013-01-01T11:00Z"),
    ]
    assert out["dep_at"].iloc[0] == pd.Timestamp("2013-01-02T05:14Z") and pd.isna(
        out["dep_at"].iloc[1]
    )
    assert out["cancelled"].tolist() == [False, True]


def test_a_contract_names_unknown_types_and_keys_clearly() -> None:
    with pytest.raises(ValueError, match="unknown type 'integer'"):
        parse_contract({"table": "t", "columns": [{"name": "a", "type": "integer"}]})
    with pytest.raises(ValueError, match="unique key names unknown columns"):
        parse_contract({"table": "t", "unique": ["b"], "columns": [{"name": "a", "type": "int"}]})


def test_dates_pass_through_when_already_dates() -> None:
    contract = Contract("t", "", (ColumnSpec("date", "date"),))
    raw = pd.DataFrame({"date": [dt.date(2013, 1, 1)], "_source_file": ["x"], "_source_row": [1]})
    typed, problems = cast_to_contract(raw, contract)
    assert problems.empty and typed["date"].tolist() == [dt.date(2013, 1, 1)]
