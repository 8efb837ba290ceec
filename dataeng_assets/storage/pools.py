"""Concurrency pools: one per Delta table, so two runs never write the same table at once.

``dagster.yaml`` limits every pool to one slot; each asset's op names the pool of the table it
writes (a multi-asset the pool of its first table), whatever launched the run.
"""

from dagster import AssetKey

POOL_PREFIX = "lake/"


def table_pool(key: AssetKey) -> str:
    """The concurrency pool of the op that writes ``key`` (``lake/cleaned/flights``)."""
    return POOL_PREFIX + "/".join(key.path)
