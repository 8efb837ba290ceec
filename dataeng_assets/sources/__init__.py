"""The source registry: typed entries loaded from ``sources.yaml``.

The registry never imports an asset; the asset factory reads the registry.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from dataeng_assets.contracts import Contract, load_contract

REGISTRY_PATH = Path(__file__).parent / "sources.yaml"
FORMATS = ("csv", "parquet", "jsonl")
Transform = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class Source:
    """One source delivered into the landing zone."""

    name: str
    description: str
    owner: str
    landing: str
    format: Literal["csv", "parquet", "jsonl"]
    partitioning: Literal["daily", "snapshot"]
    natural_key: tuple[str, ...]
    contracts: dict[str, str]
    time_column: str | None = None
    normalise: tuple[str, ...] = ()
    na_values: tuple[str, ...] = ("", "NA")
    transform: str | None = None
    drift_columns: tuple[str, ...] = ()

    @property
    def is_daily(self) -> bool:
        return self.partitioning == "daily"

    @property
    def raw_contract(self) -> Contract:
        return load_contract(self.contracts["raw"])

    @property
    def cleaned_contract(self) -> Contract:
        return load_contract(self.contracts["cleaned"])

    def transform_function(self) -> Transform | None:
        if not self.transform:
            return None
        module_name, _, attr = self.transform.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def landing_stem(self, day: str | None = None) -> str:
        """The landing path without extension, e.g. ``flights/2013-01-05``."""
        if self.is_daily:
            if day is None:
                raise ValueError(f"{self.name} is daily: a day is needed")
            return self.landing.format(date=day)
        return self.landing

    def fingerprint(self) -> str:
        """What the cleaned data depends on: entry, contracts and transform source (code version)."""
        parts = [repr(self), self.raw_contract.source_text, self.cleaned_contract.source_text]
        function = self.transform_function()
        if function is not None:
            parts.append(inspect.getsource(inspect.getmodule(function)))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _parse_source(name: str, entry: dict[str, Any]) -> Source:
    fmt = entry.get("format", "csv")
    if fmt not in FORMATS:
        raise ValueError(f"source {name!r}: format {fmt!r} is not one of {FORMATS}")
    partitioning = entry.get("partitioning")
    if partitioning not in ("daily", "snapshot"):
        raise ValueError(f"source {name!r}: partitioning must be 'daily' or 'snapshot'")
    if partitioning == "daily" and "{date}" not in entry["landing"]:
        raise ValueError(f"source {name!r}: a daily source's landing path needs '{{date}}'")
    source = Source(
        name=name,
        description=str(entry.get("description", "")).strip(),
        owner=str(entry.get("owner", "team:data-platform")),
        landing=str(entry["landing"]),
        format=fmt,
        partitioning=partitioning,
        natural_key=tuple(entry.get("natural_key") or ()),
        contracts=dict(entry["contracts"]),
        time_column=entry.get("time_column"),
        normalise=tuple(entry.get("normalise") or ()),
        na_values=tuple(str(v) for v in entry.get("na_values", ("", "NA"))),
        transform=entry.get("transform"),
        drift_columns=tuple(entry.get("drift_columns") or ()),
    )
    cleaned = source.cleaned_contract
    for column in (*source.natural_key, *source.normalise, *source.drift_columns):
        if column not in cleaned.column_names:
            raise ValueError(f"source {name!r}: {column!r} is not in {cleaned.name}'s contract")
    if source.is_daily and "date" not in cleaned.column_names:
        raise ValueError(f"source {name!r}: a daily source's cleaned contract needs 'date'")
    return source


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, Source]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {name: _parse_source(name, entry) for name, entry in document["sources"].items()}


@cache
def registry() -> dict[str, Source]:
    """The registry shipped with the package (cached: it is read once per process)."""
    return load_registry()
