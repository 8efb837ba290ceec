"""Resources built from the settings: the landing zone and the lake's IO manager."""

from __future__ import annotations

from typing import Any

from dataeng_assets.assets import IO_MANAGER_KEY
from dataeng_assets.settings import Settings, s3_credentials
from dataeng_assets.storage.delta_io_manager import DeltaLakeIOManager
from dataeng_assets.storage.object_store import ObjectStore


def object_store(root: str, settings: Settings) -> ObjectStore:
    """A store for ``root``; S3 roots get the endpoint and the credentials (as EnvVar) too."""
    if not root.startswith("s3://"):
        return ObjectStore(root=root)
    options: dict[str, Any] = {
        "endpoint_url": settings.s3_endpoint_url,
        "region": settings.s3_region,
        "allow_http": settings.s3_allow_http,
    }
    if settings.s3_credentials_in_env:
        options.update(s3_credentials())
    return ObjectStore(root=root, **options)


def build_resources(settings: Settings) -> dict[str, Any]:
    return {
        "landing": object_store(settings.landing_root, settings),
        IO_MANAGER_KEY: DeltaLakeIOManager(store=object_store(settings.lake_root, settings)),
    }
