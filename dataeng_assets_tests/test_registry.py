"""Sources are declared: a plain file source needs one registry entry and its contracts, no Python."""

import datetime as dt
import json
from pathlib import Path

import pytest
from dagster import materialize

from dataeng_assets.assets.factory import build_source_assets
from dataeng_assets.resources import build_resources
from dataeng_assets.sources import load_registry, registry
from dataeng_assets_tests.conftest import RANGE_END_TAG, RANGE_START_TAG, local_settings, read_table

REGISTRY = """
sources:
  fuel_prices:
    description: Daily jet fuel price per airport.
    landing: fuel_prices/{{date}}
    format: csv
    partitioning: daily
    natural_key: [airport]
    normalise: [airport]
    contracts: {{raw: {raw}, cleaned: {cleaned}}}
"""
RAW_CONTRACT = """
table: raw/fuel_prices
columns:
  - {name: airport, type: string}
  - {name: usd_per_gallon, type: string}
"""
CLEANED_CONTRACT = """
table: cleaned/fuel_prices
description: Jet fuel price per airport and day.
unique: [airport]
columns:
  - {name: date, type: date, nullable: false}
  - {name: airport, type: string, nullable: false, description: FAA code.}
  - {name: usd_per_gallon, type: float, description: Price in USD., checks: [{greater_than: 0}]}
"""


def test_the_shipped_registry_declares_the_five_sources() -> None:
    sources = registry()
    assert set(sources) == {"flights", "weather", "airlines", "airports", "planes"}
    assert {s.name for s in sources.values() if s.is_daily} == {"flights", "weather"}
    assert sources["flights"].transform_function().__name__ == "build_flight_times"
    assert sources["planes"].transform is None


def test_a_plain_source_needs_no_python(tmp_path: Path) -> None:
    (tmp_path / "raw.yaml").write_text(RAW_CONTRACT)
    (tmp_path / "cleaned.yaml").write_text(CLEANED_CONTRACT)
    (tmp_path / "sources.yaml").write_text(
        REGISTRY.format(raw=tmp_path / "raw.yaml", cleaned=tmp_path / "cleaned.yaml")
    )
    landing = tmp_path / "landing" / "fuel_prices"
    landing.mkdir(parents=True)
    (landing / "2013-01-01.csv").write_text(
        "airport,usd_per_gallon\njfk ,3.10\nLGA,3.05\nLGA,3.05\n"
    )
    # A second delivery for the same day: its JFK price corrects the first one.
    (landing / "2013-01-01_correction.csv").write_text("airport,usd_per_gallon\nJFK,3.12\n")
    (landing / "2013-01-02.csv").write_text("airport,usd_per_gallon\nEWR,NA\n")

    sources = load_registry(tmp_path / "sources.yaml")
    result = materialize(
        build_source_assets(list(sources.values())),
        resources=build_resources(local_settings(tmp_path / "landing", tmp_path / "lake")),
        tags={RANGE_START_TAG: "2013-01-01", RANGE_END_TAG: "2013-01-02"},
    )
    assert result.success
    cleaned = read_table(str(tmp_path / "lake" / "cleaned" / "fuel_prices")).sort_values(
        ["date", "airport"]
    )
    assert cleaned[["date", "airport"]].values.tolist() == [
        [dt.date(2013, 1, 1), "JFK"],
        [dt.date(2013, 1, 1), "LGA"],
        [dt.date(2013, 1, 2), "EWR"],
    ]
    assert cleaned["usd_per_gallon"].tolist()[:2] == [3.12, 3.05]
    assert cleaned["usd_per_gallon"].isna().tolist() == [False, False, True]
    metadata = result.asset_materializations_for_node("cleaned__fuel_prices")[0].metadata
    assert metadata["exact_duplicates_removed"].value == 1
    # The first JFK price is superseded by the correction: kept in quarantine, not lost.
    assert metadata["rows_quarantined"].value == 1
    assert metadata["rows_in"].value == 5 and metadata["rows_out"].value == 3
    quarantine = read_table(str(tmp_path / "lake" / "quarantine" / "fuel_prices"))
    assert quarantine[["_source_file", "_source_row", "rules"]].values.tolist() == [
        ["fuel_prices/2013-01-01.csv", 1, "superseded"]
    ]
    assert json.loads(quarantine["record"].iloc[0]) == {"airport": "jfk ", "usd_per_gallon": "3.10"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "xml"}, "format 'xml' is not one of"),
        ({"partitioning": "hourly"}, "partitioning must be 'daily' or 'snapshot'"),
        ({"landing": "fuel_prices/all"}, "a daily source's landing path needs '{date}'"),
        ({"natural_key": "[price]"}, "'price' is not in cleaned/fuel_prices's contract"),
    ],
)
def test_a_wrong_entry_is_refused_with_a_clear_message(tmp_path: Path, change, message) -> None:
    (tmp_path / "raw.yaml").write_text(RAW_CONTRACT)
    (tmp_path / "cleaned.yaml").write_text(CLEANED_CONTRACT)
    text = REGISTRY.format(raw=tmp_path / "raw.yaml", cleaned=tmp_path / "cleaned.yaml")
    for field, value in change.items():
        lines = [
            f"    {field}: {value}" if line.strip().startswith(f"{field}:") else line
            for line in text.splitlines()
        ]
        text = "\n".join(lines)
    (tmp_path / "sources.yaml").write_text(text)
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")
    ):
        load_registry(tmp_path / "sources.yaml")
