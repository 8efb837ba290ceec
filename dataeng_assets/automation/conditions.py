"""Declarative Automation for everything downstream of raw (each table's pool is named by its op).

Raw tables are fed by the arrival sensors and the daily schedules. Every asset that has upstream
assets (cleaned, quarantine, features, quality, and later marts) gets ``DOWNSTREAM_CONDITION``:
Dagster's ``eager()`` without its "latest time window only" clause, so a late correction of March
flows through March's partitions as well as today's, and only once every blocking check of its
upstream assets has passed. The assets are not edited: the condition is applied to their specs
where the definitions are assembled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from dagster import (
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
)
from dagster._core.definitions.asset_checks.asset_checks_definition import AssetChecksDefinition

DOWNSTREAM_CONDITION = (
    AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager (every partition) once upstream blocking checks pass")

T = TypeVar("T")


def with_downstream_condition(spec: AssetSpec) -> AssetSpec:
    """The downstream condition on an asset with upstream assets, unless it has its own."""
    if not spec.deps or spec.automation_condition is not None:
        return spec
    return spec.replace_attributes(automation_condition=DOWNSTREAM_CONDITION)


def automate_assets(assets: Iterable[T]) -> list[T]:
    """The downstream condition on the downstream specs (each op names its table's pool itself:
    see dataeng_assets/storage/pools.py)."""
    return [
        a.map_asset_specs(with_downstream_condition)  # type: ignore[misc]
        if isinstance(a, AssetsDefinition) and not isinstance(a, AssetChecksDefinition)
        else a
        for a in assets
    ]
