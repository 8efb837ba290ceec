"""Where files and tables live: a local folder or an S3 prefix, behind one resource."""

import posixpath
from pathlib import Path

import pyarrow.fs as pafs
from dagster import ConfigurableResource


class ObjectStore(ConfigurableResource):
    """A root folder (local path or ``s3://bucket/prefix``) and the options to reach it."""

    root: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    allow_http: bool = False

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def uri(self, *parts: str) -> str:
        """The full URI (or absolute local path) of ``parts`` below the root."""
        if self.is_s3:
            return posixpath.join(self.root.rstrip("/"), *parts)
        return str(Path(self.root).resolve().joinpath(*parts))

    def delta_storage_options(self) -> dict[str, str]:
        """Options for delta-rs (object_store). Empty for a local folder."""
        if not self.is_s3:
            return {}
        options = {
            # delta-rs commits a new log version with a conditional PUT (If-None-Match: *), so two
            # writers can never both write version N; no locking provider or unsafe rename needed.
            "conditional_put": "etag",
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            options["region"] = self.region
        if self.access_key_id:
            options["access_key_id"] = self.access_key_id
        if self.secret_access_key:
            options["secret_access_key"] = self.secret_access_key
        if self.allow_http:
            options["allow_http"] = "true"
        return options

    def _s3_filesystem(self) -> pafs.S3FileSystem:
        endpoint = self.endpoint_url or None
        scheme = None
        if endpoint and "://" in endpoint:
            scheme, endpoint = endpoint.split("://", 1)
        return pafs.S3FileSystem(
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
            region=self.region or "us-east-1",
            endpoint_override=endpoint,
            scheme=scheme or "https",
        )

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the root path inside it (for plain files, not Delta tables)."""
        if self.is_s3:
            return self._s3_filesystem(), self.root.removeprefix("s3://").rstrip("/")
        return pafs.LocalFileSystem(), str(Path(self.root).resolve())
