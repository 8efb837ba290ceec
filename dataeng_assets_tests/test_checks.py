"""The check results themselves, without Dagster: per day, the same as per window, dates checked."""

import datetime as dt

import pandas as pd

from dataeng_assets.checks import (
    KEY_UNIQUE,
    QUARANTINE_RATE,
    REFERENTIAL_INTEGRITY,
    ROW_ACCOUNTING,
    SCHEMA,
    cleaned_results,
    cleaned_results_by_day,
    day_names,
    schema_failures,
)
from dataeng_assets.contracts import parse_contract
from dataeng_assets.transforms.conform import clean_table

CONTRACT = parse_contract(
    {
        "name": "cleaned/trips",
        "columns": [
            {"name": "date", "type": "date", "nullable": False},
            {"name": "trip", "type": "int"},
            {"name": "carrier", "type": "string",
             "references": {"table": "carriers", "column": "code", "action": "warn", "max_rate": 0.5}},
            {"name": "km", "type": "float", "checks": [{"in_range": [0, 100], "action": "drop"}]},
        ],
    }
)  # fmt: skip
D1, D2 = dt.date(2013, 1, 8), dt.date(2013, 1, 9)


def _raw(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "trip", "carrier", "km"]).astype(
        {"trip": "str", "km": "str", "carrier": "str"}
    )
    return frame.assign(
        _source_file=[f"trips/{d}.csv" for d in frame["date"]],
        _source_row=range(1, len(frame) + 1),
    )


def _by_name(results: list) -> dict:
    return {r.check_name: r for r in results}


def test_each_day_is_judged_on_its_own_rows() -> None:
    raw = _raw(
        [(D1, 1, "AA", 10), (D1, 2, "AA", 20), (D1, 2, "AA", 20),  # an exact duplicate on day 1
         (D2, 3, "ZZ", 30), (D2, 4, "AA", 500), (D2, 5, "AA", 40)]  # unknown carrier, bad km
    )  # fmt: skip
    carriers = pd.DataFrame({"code": ["AA"]})
    result = clean_table(raw, CONTRACT, natural_key=["trip"], references={"carriers": carriers})
    days = [D1.isoformat(), D2.isoformat()]

    by_day = cleaned_results_by_day(
        None, result, raw, CONTRACT, ["trip"], {"carriers": carriers}, days
    )

    first, second = _by_name(by_day[days[0]]), _by_name(by_day[days[1]])
    assert first[ROW_ACCOUNTING].metadata["rows_in"].value == 3
    assert first[ROW_ACCOUNTING].metadata["exact_duplicates_removed"].value == 1
    assert first[ROW_ACCOUNTING].passed and second[ROW_ACCOUNTING].passed
    assert second[ROW_ACCOUNTING].metadata["rows_quarantined"].value == 1
    assert first[QUARANTINE_RATE].passed and not second[QUARANTINE_RATE].passed
    assert second[QUARANTINE_RATE].metadata["rows_quarantined"].value == 1
    references = second[REFERENTIAL_INTEGRITY].metadata["references"].value
    assert references["carrier.in_carriers"]["unmatched_in_output"] == 1
    assert (
        first[REFERENTIAL_INTEGRITY]
        .metadata["references"]
        .value["carrier.in_carriers"]["unmatched_in_output"]
        == 0
    )
    examples = (
        second[QUARANTINE_RATE.replace("quarantine_rate", "completeness")]
        .metadata["examples"]
        .value
    )
    assert [(e["_source_file"], e["_source_row"]) for e in examples] == [
        ("trips/2013-01-09.csv", 5)
    ]
    # The days add up to the window's own results.
    window = _by_name(cleaned_results(None, result, CONTRACT, ["trip"], {"carriers": carriers}))
    for name in ("rows_in", "rows_out", "rows_quarantined", "exact_duplicates_removed"):
        assert window[ROW_ACCOUNTING].metadata[name].value == sum(
            _by_name(by_day[d])[ROW_ACCOUNTING].metadata[name].value for d in days
        )
    assert window[KEY_UNIQUE].passed and first[KEY_UNIQUE].passed and first[SCHEMA].passed


def test_dates_are_checked_by_type_and_nullability() -> None:
    good = pd.DataFrame({"date": [D1, D2], "trip": pd.array([1, 2], "Int64"),
                         "carrier": ["AA", "AA"], "km": [1.0, 2.0]})  # fmt: skip
    assert schema_failures(CONTRACT, good).empty
    as_text = good.assign(date=["2013-01-08", "2013-01-09"])
    failures = schema_failures(CONTRACT, as_text)
    assert list(failures["column"]) == ["date"] and failures["index"].isna().all()
    missing = good.assign(date=[D1, None])
    failures = schema_failures(CONTRACT, missing)
    assert list(failures["column"]) == ["date"] and list(failures["index"]) == [1]


def test_day_names_are_partition_keys() -> None:
    values = pd.Series([D2, D1, D2, None], dtype="object")
    assert list(day_names(values)) == ["2013-01-09", "2013-01-08", "2013-01-09", None]


def test_the_schema_check_leaves_the_checked_frame_as_it_was() -> None:
    """Validated in place (no copy): a failing column is reported, never converted or dropped."""
    frame = pd.DataFrame({"date": [D1, D2], "trip": ["1", "x"], "carrier": ["AA", None],
                          "km": [1.5, 2.0], "extra": [1, 2]})  # fmt: skip
    before = frame.copy()
    failures = schema_failures(CONTRACT, frame)
    assert set(failures["column"]) == {"trip"}
    pd.testing.assert_frame_equal(frame, before)
