"""The code location: assets generated from the source registry, resources from the settings."""

from dagster import Definitions, in_process_executor

from dataeng_assets.assets.factory import build_source_assets
from dataeng_assets.assets.features import flight_delay
from dataeng_assets.assets.quality import build_scorecard_asset
from dataeng_assets.automation import automate_assets, build_automation
from dataeng_assets.jobs import all_assets_job
from dataeng_assets.resources import build_resources
from dataeng_assets.settings import load_settings
from dataeng_assets.sources import registry

SOURCES = list(registry().values())
ALL_ASSETS = [*build_source_assets(SOURCES), flight_delay, build_scorecard_asset(SOURCES)]

SETTINGS = load_settings()

defs = Definitions.merge(
    Definitions(
        # Downstream assets follow their upstream by Declarative Automation, and each table's op
        # is in its own pool: two runs never write the same Delta table at once.
        assets=automate_assets(ALL_ASSETS),
        jobs=[all_assets_job],
        resources=build_resources(SETTINGS),
        # Steps share one process: each step's work is seconds, a fresh process per step would
        # cost more than the step. Runs scale out through the run launcher (a container per run).
        executor=in_process_executor,
    ),
    # Arrival sensors, daily schedules, alerts, and the sensor of Declarative Automation.
    build_automation(SETTINGS, SOURCES),
)
