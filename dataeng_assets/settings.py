"""The one place the environment is read: where the landing zone and the lake live, and how to reach S3.

Everything else receives these values as resource configuration. Local folders are the default, so a
fresh clone runs without any account; set ``DATAENG_LAKE_ROOT=s3://bucket/lake`` (and the ``AWS_*``
variables) to move the same code to S3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dagster import EnvVar

# The repository root when the package is used from a clone (the supported way, see README).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

DATA_DIR_VAR = "DATAENG_DATA_DIR"
LANDING_ROOT_VAR = "DATAENG_LANDING_ROOT"
LAKE_ROOT_VAR = "DATAENG_LAKE_ROOT"
S3_ENDPOINT_VAR = "AWS_ENDPOINT_URL"
S3_REGION_VAR = "AWS_REGION"
S3_ACCESS_KEY_VAR = "AWS_ACCESS_KEY_ID"
S3_SECRET_KEY_VAR = "AWS_SECRET_ACCESS_KEY"
S3_ALLOW_HTTP_VAR = "AWS_ALLOW_HTTP"


@dataclass(frozen=True)
class Settings:
    """Where data lives. Roots are local folders or ``s3://bucket/prefix`` URIs."""

    landing_root: str
    lake_root: str
    s3_endpoint_url: str | None
    s3_region: str | None
    s3_allow_http: bool
    # Credentials are not kept here: they reach resources as EnvVar, never as plain config.
    s3_credentials_in_env: bool

    @property
    def uses_s3(self) -> bool:
        return any(root.startswith("s3://") for root in (self.landing_root, self.lake_root))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get(DATA_DIR_VAR) or PROJECT_ROOT / "data")
    return Settings(
        landing_root=env.get(LANDING_ROOT_VAR) or str(data_dir / "landing"),
        lake_root=env.get(LAKE_ROOT_VAR) or str(data_dir / "lake"),
        s3_endpoint_url=env.get(S3_ENDPOINT_VAR) or None,
        s3_region=env.get(S3_REGION_VAR) or None,
        s3_allow_http=env.get(S3_ALLOW_HTTP_VAR, "").lower() in {"1", "true", "yes"},
        s3_credentials_in_env=bool(env.get(S3_ACCESS_KEY_VAR)),
    )


def s3_credentials() -> dict[str, EnvVar]:
    """The S3 secrets as EnvVar references: the UI shows the variable's name, never its value."""
    return {
        "access_key_id": EnvVar(S3_ACCESS_KEY_VAR),
        "secret_access_key": EnvVar(S3_SECRET_KEY_VAR),
    }
