"""Typing and conforming, as pure functions: no Dagster, no storage."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dataeng_assets.contracts import ColumnSpec, Contract, parse_contract
from dataeng_assets.sources.flights import build_flight_times
from dataeng_assets.transforms.conform import (
    ContractViolation,
    _narrow_delivered_text,
    _repeated,
    cast_to_contract,
    clean_table,
    distinct_rows,
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


def test_a_value_that_cannot_be_typed_is_quarantined_with_its_file_row_and_value() -> None:
    raw = _raw(code=["a", "b", "c"], count=["1", "two", "3.5"], ratio=["1", "1", "1"],
               flag=["t", "f", "maybe"], at=["NA"] * 3)  # fmt: skip
    _, problems = cast_to_contract(raw, CONTRACT)
    assert sorted(zip(problems["rule"], problems["row"], strict=True)) == [
        ("count.type", 1), ("count.type", 2), ("flag.type", 2)
    ]  # fmt: skip
    result = clean_table(raw, CONTRACT)
    assert result.frame["code"].tolist() == ["a"]
    quarantine = result.quarantine.set_index("_source_row")
    assert quarantine.loc[2, "reasons"] == "count: 'two' is not a valid int"
    assert quarantine.loc[3, "rules"] == "count.type; flag.type"
    assert json.loads(quarantine.loc[3, "record"])["count"] == "3.5"
    assert (quarantine["_source_file"] == "t/2013-01-01.csv").all()
    assert result.balanced and result.rows_quarantined == 2


def test_an_integer_beyond_int64_is_quarantined_and_big_ones_stay_exact() -> None:
    big = str(2**63 - 1)  # the largest int64: exact, not rounded through a float
    raw = _raw(code=["a", "b", "c", "d"], count=[big, str(2**63), "-" + str(2**63 + 1), "x"],
               ratio=["1"] * 4, flag=["t"] * 4, at=["NA"] * 4)  # fmt: skip
    result = clean_table(raw, CONTRACT)
    assert result.frame["code"].tolist() == ["a"]
    assert result.frame["count"].tolist() == [2**63 - 1]
    reasons = result.quarantine.set_index("_source_row")["reasons"]
    assert reasons[2] == f"count: '{2**63}' is not a valid int"
    assert reasons[3] == f"count: '-{2**63 + 1}' is not a valid int"
    assert result.balanced and result.rows_quarantined == 3


def test_columns_cast_side_by_side_keep_their_own_values_and_problems_in_contract_order() -> None:
    """The fast casts run on several threads: each typed column is still its own, whichever
    finishes first, and the problems come in the contract's column order."""
    names = [f"c{i}" for i in range(12)]
    contract = Contract("t", "", tuple(ColumnSpec(n, "int" if i % 2 else "float")
                                       for i, n in enumerate(names)))  # fmt: skip
    columns = {n: [str(i * 1000 + row) for row in range(500)] for i, n in enumerate(names)}
    columns["c9"][7] = "nine"  # the slow path for c9 and c4, the fast one for the others
    columns["c4"][3] = "four"
    typed, problems = cast_to_contract(_raw(**columns), contract)
    for i, name in enumerate(names):
        expected = [i * 1000 + row for row in range(500)]
        bad = {"c9": 7, "c4": 3}.get(name)
        got = typed[name].tolist()
        assert [v for r, v in enumerate(got) if r != bad] == [
            v for r, v in enumerate(expected) if r != bad
        ], name
        assert bad is None or pd.isna(got[bad]), name
        assert str(typed[name].dtype) == ("Int64" if i % 2 else "float64"), name
    assert list(zip(problems["rule"], problems["row"], strict=True)) == [
        ("c4.type", 3), ("c9.type", 7)
    ]  # fmt: skip
    assert problems["reason"].tolist() == [
        "c4: 'four' is not a valid float", "c9: 'nine' is not a valid int"
    ]  # fmt: skip


def test_exact_duplicates_are_counted_and_superseded_rows_are_quarantined() -> None:
    raw = _raw(code=["a", "a", "b", "b"], count=["1", "1", "1", "2"], ratio=["0"] * 4,
               flag=["t"] * 4, at=["NA"] * 4)  # fmt: skip
    frame, exact = drop_exact_duplicates(raw)
    assert exact == 1 and len(frame) == 3
    result = clean_table(raw, CONTRACT, natural_key=["code"])
    assert (result.exact_duplicates_removed, result.rows_quarantined) == (1, 1)
    assert result.rows_in == result.rows_out + 2
    assert result.frame.set_index("code")["count"].to_dict() == {"a": 1, "b": 2}
    assert result.quarantine[["_source_row", "rules"]].values.tolist() == [[3, "superseded"]]


def test_rule_actions_decide_drop_warn_and_fail() -> None:
    contract = parse_contract(
        {
            "table": "t",
            "columns": [
                {"name": "v", "type": "int", "checks": [{"in_range": [0, 10]}]},
                {"name": "w", "type": "int", "checks": [{"less_than": 5, "action": "warn"}]},
                {"name": "x", "type": "int", "nullable": False},
            ],
            "rules": [{"name": "v_below_w", "expression": "v <= w", "action": "fail"}],
        }
    )
    raw = _raw(v=["1", "20", "3"], w=["2", "21", "4"], x=["1", "1", "NA"])
    result = clean_table(raw, contract)
    assert result.frame["v"].tolist() == [1]
    assert sorted(result.quarantine["rules"]) == ["v.in_range", "x.not_null"]
    assert result.rule_counts["w.less_than"] == 1  # warned, kept
    broken = _raw(v=["4"], w=["2"], x=["1"])
    with pytest.raises(ContractViolation, match="v_below_w"):
        clean_table(broken, contract)


def test_each_violation_names_its_own_value_when_values_repeat() -> None:
    contract = parse_contract(
        {
            "table": "t",
            "columns": [
                {"name": "code", "type": "string", "checks": [{"isin": ["a"], "action": "warn"}]},
                {"name": "n", "type": "int", "checks": [{"less_than": 5, "action": "warn"}]},
                {"name": "r", "type": "float", "checks": [{"less_than": 1, "action": "warn"}]},
            ],
        }
    )
    raw = _raw(code=["b", "a", "c", "b", "it's"], n=["7", "1", "9", "7", "7"],
               r=["1.5", "0", "2.25", "1.75", "1.5"])  # fmt: skip
    result = clean_table(raw, contract)
    reasons = result.violations.groupby("rule")["reason"].agg(list).to_dict()
    assert [r.split(" breaks")[0] for r in reasons["code.isin"]] == [
        "code: 'b'", "code: 'c'", "code: 'b'", 'code: "it\'s"',
    ]  # fmt: skip
    assert [r.split(" breaks")[0] for r in reasons["n.less_than"]] == [
        "n: 7",
        "n: 9",
        "n: 7",
        "n: 7",
    ]
    assert [r.split(" breaks")[0] for r in reasons["r.less_than"]] == [
        "r: 1.5",
        "r: 2.25",
        "r: 1.75",
        "r: 1.5",
    ]
    assert result.rows_out == 5  # warned, all kept


def test_unparseable_lines_go_to_quarantine_with_their_text() -> None:
    raw = _raw(
        code=["a", None], count=["1", None], ratio=["1", None], flag=["t", None], at=["NA", None]
    )
    raw["_parse_error"] = [None, "3 field(s) where the header has 5"]
    raw["_raw_text"] = [None, "b,2,x"]
    result = clean_table(raw, CONTRACT)
    row = result.quarantine.iloc[0]
    assert (row["layer"], row["rules"], row["raw_text"]) == ("raw", "parse_error", "b,2,x")
    assert result.balanced


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


def test_flight_times_arrivals_in_the_destinations_zone_and_the_cancelled_flag() -> None:
    flights = pd.DataFrame({
        "year": [2013, 2013], "month": [1, 1], "day": [1, 1], "hour": [23, 6], "minute": [59, 0],
        "dep_time": pd.array([14, None], dtype="Int64"), "dep_delay": [15.0, None],
        "sched_arr_time": pd.array([245, 830], dtype="Int64"), "arr_delay": [20.0, None],
        "dest": ["LAX", "XXX"],
        "time_hour": pd.to_datetime(["2013-01-02T04:00Z", "2013-01-01T11:00Z"]),
    })  # fmt: skip
    airports = pd.DataFrame({"faa": ["LAX"], "tzone": ["America/Los_Angeles"]})
    out = build_flight_times(flights, {"airports": airports})
    assert out["sched_dep_at"].tolist() == [
        pd.Timestamp("2013-01-02T04:59Z"), pd.Timestamp("2013-01-01T11:00Z")
    ]  # fmt: skip
    assert out["dep_at"].iloc[0] == pd.Timestamp("2013-01-02T05:14Z") and pd.isna(
        out["dep_at"].iloc[1]
    )
    # 02:45 in Los Angeles (UTC-8) the next day: after the 23:59 New York departure.
    assert out["sched_arr_at"].iloc[0] == pd.Timestamp("2013-01-02T10:45Z")
    assert out["arr_at"].iloc[0] == pd.Timestamp("2013-01-02T11:05Z")
    assert out["block_time"].iloc[0] == 351.0
    assert pd.isna(out["sched_arr_at"].iloc[1])  # an airport without a known zone
    assert out["cancelled"].tolist() == [False, True]


def test_a_contract_names_unknown_types_and_keys_clearly() -> None:
    with pytest.raises(ValueError, match="unknown type 'integer'"):
        parse_contract({"table": "t", "columns": [{"name": "a", "type": "integer"}]})
    with pytest.raises(ValueError, match="action must be one of"):
        parse_contract(
            {
                "table": "t",
                "columns": [
                    {"name": "a", "type": "int", "checks": [{"gt": 1, "action": "ignore"}]}
                ],
            }
        )
    with pytest.raises(ValueError, match="unique key names unknown columns"):
        parse_contract({"table": "t", "unique": ["b"], "columns": [{"name": "a", "type": "int"}]})


def test_dates_pass_through_when_already_dates() -> None:
    contract = Contract("t", "", (ColumnSpec("date", "date"),))
    raw = pd.DataFrame({"date": [dt.date(2013, 1, 1)], "_source_file": ["x"], "_source_row": [1]})
    typed, problems = cast_to_contract(raw, contract)
    assert problems.empty and typed["date"].tolist() == [dt.date(2013, 1, 1)]


def test_typing_keeps_each_value_on_its_row_when_rows_were_dropped_before() -> None:
    raw = _raw(code=["a", "b", "c"], count=["1", "2", "3"], ratio=["0.5", "1.5", "2.5"],
               flag=["t", "f", "t"], at=["2013-01-01T10:00:00Z"] * 3)  # fmt: skip
    subset = raw.drop(index=[0])  # labels 1 and 2, as after an unparseable first row
    typed, problems = cast_to_contract(subset, CONTRACT)
    assert problems.empty
    assert typed["count"].to_dict() == {1: 2, 2: 3}
    assert typed["ratio"].to_dict() == {1: 1.5, 2: 2.5}


def test_padded_values_and_missing_markers_type_like_stripped_ones() -> None:
    raw = _raw(code=[" a ", "b", "c"], count=[" 7", " NA ", "8 x"], ratio=["1.5 ", "nan", ""],
               flag=["t", "f", "t"], at=[" 2013-01-01T10:00:00Z", "NA", "NA"])  # fmt: skip
    typed, problems = cast_to_contract(raw, CONTRACT)
    assert typed["count"].tolist()[:2] == [7, pd.NA] and str(typed["count"].dtype) == "Int64"
    assert typed["code"].tolist() == ["a", "b", "c"]
    assert typed["at"].iloc[0] == pd.Timestamp("2013-01-01T10:00:00Z")
    # The reason shows the value as compared (stripped); NaN is not a valid float.
    assert sorted(problems["reason"]) == [
        "count: '8 x' is not a valid int",
        "ratio: 'nan' is not a valid float",
    ]


def test_exact_duplicates_treat_missing_as_equal_and_keep_the_first_delivery() -> None:
    raw = _raw(code=["a", "a", "a", "b"], count=["NA", "NA", "1", "NA"], ratio=["0"] * 4,
               flag=["t"] * 4, at=["NA"] * 4)  # fmt: skip
    typed, _ = cast_to_contract(raw, CONTRACT)
    frame, exact = drop_exact_duplicates(typed)
    assert exact == 1 and frame["_source_row"].tolist() == [1, 3, 4]


def test_a_later_file_supersedes_whatever_the_row_order() -> None:
    raw = _raw(code=["a", "b", "a", "b"], count=["1", "2", "3", "4"], ratio=["0"] * 4,
               flag=["t"] * 4, at=["NA"] * 4)  # fmt: skip
    raw["_source_file"] = ["t/2013-01-01_fix.csv", "t/2013-01-01.csv"] * 2
    result = clean_table(raw, CONTRACT, natural_key=["code"])
    assert result.frame.set_index("code")["count"].to_dict() == {"a": 3, "b": 4}
    assert result.quarantine["_source_file"].tolist() == [
        "t/2013-01-01_fix.csv",
        "t/2013-01-01.csv",
    ]
    assert result.balanced


def test_local_times_are_converted_per_row_however_often_they_repeat() -> None:
    parts = pd.DataFrame(
        {
            "year": pd.array([2013] * 6, dtype="Int64"),
            "month": pd.array([1, 2, 1, 13, 1, None], dtype="Int64"),
            "day": pd.array([1, 30, 1, 1, 1, 1], dtype="Int64"),
            "hour": pd.array([5, 5, 5, 5, 24, 5], dtype="Int64"),
            "minute": pd.array([15, 15, 15, 15, 0, 15], dtype="Int64"),
        }
    )
    utc = local_to_utc(parts)
    expected = pd.Timestamp("2013-01-01T10:15Z")
    assert utc.iloc[0] == utc.iloc[2] == expected
    assert utc.iloc[[1, 3, 5]].isna().all()  # 30 February, month 13, no month
    assert utc.iloc[4] == pd.Timestamp("2013-01-02T05:00Z")  # hour 24: midnight the next day
    assert str(utc.dtype) == "datetime64[us, UTC]"


def test_a_quarantined_record_is_the_delivered_row_whatever_its_characters() -> None:
    """Quotes, backslashes, accents, control characters, missing values: json.dumps' text."""
    codes = ['say "hi"', "back\\slash", "café", "ctl\x01", "", None, "plain"]
    raw = _raw(code=codes, count=["x"] * len(codes), ratio=["1"] * len(codes),
               flag=["t"] * len(codes), at=["NA"] * len(codes))  # fmt: skip
    result = clean_table(raw, CONTRACT)
    quarantine = result.quarantine.set_index("_source_row")
    assert len(quarantine) == len(codes)
    for row, code in enumerate(codes, start=1):
        delivered = {"code": code, "count": "x", "ratio": "1", "flag": "t", "at": "NA"}
        assert quarantine.loc[row, "record"] == json.dumps(delivered)


def test_rows_are_grouped_as_pandas_groups_them_when_the_key_space_is_large() -> None:
    """Two columns of 1,500 distinct values each: 2.25M possible keys over 3,000 rows, numbered
    by sorting rather than through a lookup table."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "a": pd.array(rng.integers(0, 1_500, 3_000) * 7_919, dtype="Int64"),
            "b": pd.Series(rng.integers(0, 1_500, 3_000)).map("v{}".format).astype("str"),
        }
    )
    frame.loc[::97, "b"] = None  # missing equals missing
    groups, representatives = distinct_rows(frame, ["a", "b"])
    expected = frame.groupby(["a", "b"], dropna=False, sort=False).ngroup().to_numpy()
    # The same partition of the rows (group numbers may differ), each group's representative in it.
    assert len(set(zip(groups, expected, strict=True))) == len(set(groups)) == len(set(expected))
    assert (groups[representatives] == np.arange(len(representatives))).all()
    assert (_repeated(frame, ["a", "b"]) == frame.duplicated(keep=False).to_numpy()).all()


def test_the_delivered_text_kept_for_the_quarantine_is_narrowed_not_changed() -> None:
    raw = _raw(code=["a", None, "ccc"], count=["1", "NA", "x"], ratio=["0"] * 3,
               flag=["t"] * 3, at=["NA"] * 3)  # fmt: skip
    raw["date"] = [dt.date(2013, 1, 1)] * 3
    narrow = _narrow_delivered_text(raw)
    for column in ("code", "count"):
        assert pa.array(narrow[column]).type == pa.string()  # 32-bit offsets
        assert narrow[column].tolist()[::2] == raw[column].tolist()[::2]
        assert narrow[column].isna().tolist() == raw[column].isna().tolist()
    for column in ("_source_file", "_source_row", "date"):  # lineage and the day are left alone
        assert narrow[column].dtype == raw[column].dtype
    assert raw["code"].dtype == "str"  # the caller's frame is untouched


def test_each_delivered_rows_day_is_kept_for_the_accounting() -> None:
    raw = _raw(code=["a", "a", "b", "c"], count=["1", "1", "x", "3"], ratio=["0"] * 4,
               flag=["t"] * 4, at=["NA"] * 4)  # fmt: skip
    raw["date"] = [
        dt.date(2013, 1, 1),
        dt.date(2013, 1, 1),
        dt.date(2013, 1, 2),
        dt.date(2013, 1, 2),
    ]
    result = clean_table(raw, CONTRACT, natural_key=["code"])
    # Every delivered row, whether cleaned, quarantined (b) or an exact duplicate (the second a).
    assert result.delivered_days["date"].tolist() == raw["date"].tolist()
    assert (result.rows_out, result.rows_quarantined, result.exact_duplicates_removed) == (2, 1, 1)
    assert clean_table(raw.drop(columns="date"), CONTRACT).delivered_days is None
