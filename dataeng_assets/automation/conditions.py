"""Declarative Automation for everything downstream of raw, and one concurrency pool per table.

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
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    In,
    OpDefinition,
    Out,
)
from dagster._core.definitions.asset_checks.asset_checks_definition import AssetChecksDefinition

DOWNSTREAM_CONDITION = (
    AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager (every partition) once upstream blocking checks pass")

POOL_PREFIX = "lake/"
T = TypeVar("T")


def with_downstream_condition(spec: AssetSpec) -> AssetSpec:
    """The downstream condition on an asset with upstream assets, unless it has its own."""
    if not spec.deps or spec.automation_condition is not None:
        return spec
    return spec.replace_attributes(automation_condition=DOWNSTREAM_CONDITION)


def table_pool(key: AssetKey) -> str:
    """The concurrency pool of the op that writes ``key`` (``lake/cleaned/flights``)."""
    return POOL_PREFIX + "/".join(key.path)


def with_table_pool(assets_def: AssetsDefinition) -> AssetsDefinition:
    """The same assets, their op in the pool of the table it writes.

    Every asset key is written by exactly one op, so a pool per op with a limit of 1 (dagster.yaml,
    ``concurrency.pools.default_limit``) means that two runs never write the same Delta table at
    the same time, whatever launched them (sensor, schedule, automation, backfill, the UI). Runs
    writing different tables still run side by side. A multi-asset's pool is named after its
    first table. An op that already names a pool keeps it.
    """
    op = assets_def.node_def if assets_def.is_executable and assets_def.keys else None
    if isinstance(assets_def, AssetChecksDefinition) or not isinstance(op, OpDefinition) or op.pool:
        return assets_def
    pooled = OpDefinition(
        compute_fn=op.compute_fn,
        name=op.name,
        ins={d.name: In.from_definition(d) for d in op.input_defs},
        outs={d.name: Out.from_definition(d) for d in op.output_defs},
        description=op.description,
        config_schema=op.config_schema,
        required_resource_keys=op.required_resource_keys,
        tags=op.tags,
        retry_policy=op.retry_policy,
        code_version=op._version,  # what OpDefinition.with_replaced_properties copies
        pool=table_pool(min(assets_def.keys, key=lambda k: k.path)),
    )
    return AssetsDefinition(**{**assets_def.get_attributes_dict(), "node_def": pooled})


def automate_assets(assets: Iterable[T]) -> list[T]:
    """Each table's op in its pool, and the downstream condition on the downstream specs."""
    return [
        with_table_pool(a).map_asset_specs(with_downstream_condition)  # type: ignore[misc]
        if isinstance(a, AssetsDefinition) and not isinstance(a, AssetChecksDefinition)
        else a
        for a in assets
    ]
