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
PII_KEY_VAR = "DATAENG_PII_KEY"
# Alerts (dataeng_assets/automation): where they go. Secrets (tokens, passwords, webhook URLs that
# embed a token) reach the resource as EnvVar, like the S3 credentials.
ALERT_CHANNELS_VAR = "DATAENG_ALERT_CHANNELS"
ALERT_FILE_VAR = "DATAENG_ALERT_FILE"
ALERT_WEBHOOK_URL_VAR = "DATAENG_ALERT_WEBHOOK_URL"
SLACK_TOKEN_VAR = "DATAENG_SLACK_TOKEN"
SLACK_CHANNEL_VAR = "DATAENG_SLACK_CHANNEL"
SLACK_API_URL_VAR = "DATAENG_SLACK_API_URL"
SMTP_HOST_VAR = "DATAENG_SMTP_HOST"
SMTP_PORT_VAR = "DATAENG_SMTP_PORT"
SMTP_USER_VAR = "DATAENG_SMTP_USER"
SMTP_PASSWORD_VAR = "DATAENG_SMTP_PASSWORD"
SMTP_STARTTLS_VAR = "DATAENG_SMTP_STARTTLS"
ALERT_EMAIL_FROM_VAR = "DATAENG_ALERT_EMAIL_FROM"
ALERT_EMAIL_TO_VAR = "DATAENG_ALERT_EMAIL_TO"
UI_URL_VAR = "DATAENG_UI_URL"
SENSOR_INTERVAL_VAR = "DATAENG_SENSOR_INTERVAL_SECONDS"
ARRIVAL_INTERVAL_VAR = "DATAENG_ARRIVAL_INTERVAL_SECONDS"
AUTOMATION_VAR = "DATAENG_AUTOMATION"
ALERT_CHANNELS = ("file", "log", "webhook", "slack", "email")


@dataclass(frozen=True)
class AlertSettings:
    """Which alert channels are on and how to reach them (secrets stay in the environment)."""

    channels: tuple[str, ...] = ("file", "log")
    file_path: str = str(PROJECT_ROOT / "data" / "alerts" / "alerts.jsonl")
    ui_url: str = "http://127.0.0.1:3000"
    webhook_url_in_env: bool = False
    slack_token_in_env: bool = False
    slack_channel: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password_in_env: bool = False
    smtp_starttls: bool = False
    email_from: str | None = None
    email_to: tuple[str, ...] = ()


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
    alerts: AlertSettings = AlertSettings()
    # How often the alert and automation sensors look (seconds).
    sensor_interval_seconds: int = 30
    # How often the arrival sensors look. Dagster's sensor daemon wakes every 5 s (a constant of
    # dagster._daemon.sensor); just under that, they tick at every wake-up. At exactly 5 s a tick
    # that starts a few milliseconds early is skipped, and a delivery waits 10 s. A tick lists the
    # landing prefixes: milliseconds on a folder, about a second on S3 with 10,000 files.
    arrival_interval_seconds: int = 4
    # Sensors and schedules start switched on (DATAENG_AUTOMATION=off: all start stopped).
    automation_on: bool = True
    pii_key_in_env: bool = False

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
        pii_key_in_env=bool(env.get(PII_KEY_VAR)),
        alerts=_alert_settings(env, data_dir),
        sensor_interval_seconds=int(env.get(SENSOR_INTERVAL_VAR) or 30),
        arrival_interval_seconds=int(env.get(ARRIVAL_INTERVAL_VAR) or 4),
        automation_on=env.get(AUTOMATION_VAR, "on").lower() not in {"off", "0", "false", "no"},
    )


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _alert_settings(env: Mapping[str, str], data_dir: Path) -> AlertSettings:
    channels = _split(env.get(ALERT_CHANNELS_VAR)) or AlertSettings.channels
    unknown = sorted(set(channels) - set(ALERT_CHANNELS))
    if unknown:
        raise ValueError(
            f"{ALERT_CHANNELS_VAR}: unknown channel(s) {unknown}; use {ALERT_CHANNELS}"
        )
    return AlertSettings(
        channels=channels,
        file_path=env.get(ALERT_FILE_VAR) or str(data_dir / "alerts" / "alerts.jsonl"),
        ui_url=(env.get(UI_URL_VAR) or AlertSettings.ui_url).rstrip("/"),
        webhook_url_in_env=bool(env.get(ALERT_WEBHOOK_URL_VAR)),
        slack_token_in_env=bool(env.get(SLACK_TOKEN_VAR)),
        slack_channel=env.get(SLACK_CHANNEL_VAR) or None,
        slack_api_url=env.get(SLACK_API_URL_VAR) or AlertSettings.slack_api_url,
        smtp_host=env.get(SMTP_HOST_VAR) or None,
        smtp_port=int(env.get(SMTP_PORT_VAR) or 25),
        smtp_user=env.get(SMTP_USER_VAR) or None,
        smtp_password_in_env=bool(env.get(SMTP_PASSWORD_VAR)),
        smtp_starttls=env.get(SMTP_STARTTLS_VAR, "").lower() in {"1", "true", "yes"},
        email_from=env.get(ALERT_EMAIL_FROM_VAR) or None,
        email_to=_split(env.get(ALERT_EMAIL_TO_VAR)),
    )


def alert_secrets(alerts: AlertSettings) -> dict[str, EnvVar]:
    """The alert channels' secrets that are set, as EnvVar references (never plain config)."""
    secrets = {
        "webhook_url": (alerts.webhook_url_in_env, ALERT_WEBHOOK_URL_VAR),
        "slack_token": (alerts.slack_token_in_env, SLACK_TOKEN_VAR),
        "smtp_password": (alerts.smtp_password_in_env, SMTP_PASSWORD_VAR),
    }
    return {field: EnvVar(var) for field, (is_set, var) in secrets.items() if is_set}


def s3_credentials() -> dict[str, EnvVar]:
    """The S3 secrets as EnvVar references: the UI shows the variable's name, never its value."""
    return {
        "access_key_id": EnvVar(S3_ACCESS_KEY_VAR),
        "secret_access_key": EnvVar(S3_SECRET_KEY_VAR),
    }
