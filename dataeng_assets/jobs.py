"""Jobs: the main job materializes every asset for a window of days."""

from dagster import AssetSelection, define_asset_job

ALL_ASSETS_JOB = "all_assets"

all_assets_job = define_asset_job(
    ALL_ASSETS_JOB,
    selection=AssetSelection.all(),
    description="Landing files to raw, cleaned and feature tables for a window of days.",
)
