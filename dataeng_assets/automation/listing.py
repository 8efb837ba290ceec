"""Listing the landing zone for the arrival sensors: a local folder or an S3 prefix.

The only difference between the two is here: how to list (``os.scandir`` or S3 ``ListObjectsV2``
through dagster-aws ``get_objects``) and how to name a file's content (SHA-256 of its bytes, or the
ETag S3 already computed). Everything after the listing is one code path (``landing_state.py``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from dataeng_assets.automation.landing_state import LandedObject
from dataeng_assets.storage.object_store import ObjectStore

_HASH_CHUNK = 1 << 20


class LandingLister:
    """Lists objects below the landing root's ``prefix`` and identifies their contents."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._client: Any = None

    def list(self, prefix: str) -> list[LandedObject]:
        if self.store.is_s3:
            return self._list_s3(prefix)
        return self._list_local(prefix)

    def content_id(self, obj: LandedObject) -> str:
        """The content's identity: the ETag when the listing has it, else the bytes' SHA-256."""
        if obj.etag:
            # An ETag is an MD5 for a single-part upload and stable for the same multipart upload:
            # the same bytes uploaded the same way give the same ETag, without a GET.
            return f"etag:{obj.etag}"
        digest = hashlib.sha256()
        with open(Path(self.store.uri(obj.key)), "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        return f"sha256:{digest.hexdigest()}"

    # --- local ----------------------------------------------------------------------------------

    def _list_local(self, prefix: str) -> list[LandedObject]:
        root = Path(self.store.uri())
        found: list[LandedObject] = []
        # A prefix ending in "/" is a folder; any other is a folder plus the start of a name
        # ("flights/2013-01-05" lists that day's files), as an S3 prefix would be.
        folder = prefix.rpartition("/")[0]
        stack = [root / folder] if folder else [root]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue  # nothing delivered yet, or removed while we looked
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folder_key = Path(entry.path).relative_to(root).as_posix() + "/"
                        if folder_key.startswith(prefix) or prefix.startswith(folder_key):
                            stack.append(Path(entry.path))
                        continue
                    stat = entry.stat()
                except FileNotFoundError:
                    continue  # renamed or deleted between the listing and the stat
                key = Path(entry.path).relative_to(root).as_posix()
                if not key.startswith(prefix):
                    continue
                found.append(
                    LandedObject(
                        key=key,
                        size=stat.st_size,
                        modified_ns=stat.st_mtime_ns,
                        # A write-then-rename gives a new inode and ctime even when the size and
                        # the mtime happen to match the old file's.
                        stamp=f"{stat.st_ino}:{stat.st_ctime_ns}",
                    )
                )
        return found

    # --- S3 -------------------------------------------------------------------------------------

    def _bucket_and_root(self) -> tuple[str, str]:
        """The bucket, and the landing root's key prefix inside it ("" or ending in "/")."""
        bucket, _, root = self.store.root.removeprefix("s3://").partition("/")
        root = root.strip("/")
        return bucket, f"{root}/" if root else ""

    def _s3_client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.store.endpoint_url or None,
                region_name=self.store.region or "us-east-1",
                aws_access_key_id=self.store.access_key_id,
                aws_secret_access_key=self.store.secret_access_key,
                # Path-style works with every S3-compatible server (MinIO, SeaweedFS); botocore
                # retries throttling and 5xx with backoff and jitter ("standard" mode).
                config=Config(
                    s3={"addressing_style": "path"} if self.store.endpoint_url else {},
                    retries={"mode": "standard", "max_attempts": 4},
                    connect_timeout=10,
                    read_timeout=30,
                ),
            )
        return self._client

    def _list_s3(self, prefix: str) -> list[LandedObject]:
        from dagster_aws.s3.sensor import get_objects

        bucket, root = self._bucket_and_root()
        # since_last_modified is not used: get_objects lists the whole prefix anyway and filters
        # afterwards, and a watermark misses late-completing multipart uploads (module docstring
        # of landing_state.py). The ETag in the listing makes the comparison cheap instead.
        objects = get_objects(bucket, prefix=root + prefix, client=self._s3_client())
        return [
            LandedObject(
                key=obj["Key"][len(root) :],
                size=int(obj.get("Size", 0)),
                modified_ns=int(obj["LastModified"].timestamp() * 1e9),
                etag=str(obj.get("ETag", "")).strip('"') or None,
            )
            for obj in objects
            if not obj["Key"].endswith("/")
        ]
