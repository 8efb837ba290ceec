"""Resources built from the settings: the landing zone and the lake's IO manager."""

from __future__ import annotations

from typing import Any

from dagster import EnvVar

from dataeng_assets.assets import IO_MANAGER_KEY
from dataeng_assets.settings import PII_KEY_VAR, Settings, s3_credentials
from dataeng_assets.storage.delta_io_manager import DeltaLakeIOManager
from dataeng_assets.storage.object_store import ObjectStore
from dataeng_assets.storage.secrets import PiiKey


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
        "pii": PiiKey(key=EnvVar(PII_KEY_VAR)) if settings.pii_key_in_env else PiiKey(),
    }
