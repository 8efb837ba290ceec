"""The code location: assets generated from the source registry, resources from the settings."""

from dagster import Definitions, in_process_executor

from dataeng_assets.assets.factory import build_source_assets
from dataeng_assets.assets.features import flight_delay
from dataeng_assets.jobs import all_assets_job
from dataeng_assets.resources import build_resources
from dataeng_assets.settings import load_settings
from dataeng_assets.sources import registry

ALL_ASSETS = [*build_source_assets(list(registry().values())), flight_delay]

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[all_assets_job],
    resources=build_resources(load_settings()),
    # Steps share one process: each step's work is seconds, a fresh process per step would cost
    # more than the step. Runs scale out through the run launcher (a container per run) instead.
    executor=in_process_executor,
)
