"""Alerts: what failed, where to look, and the channels that carry it to a person.

An ``Alert`` is a plain record (JSON-serialisable). ``AlertChannels`` is the resource that sends it to
the configured channels: a JSON-lines file and the Dagster log by default (no account needed), and
Slack, a generic webhook (JSON POST) and email (SMTP) when configured in the environment
(``dataeng_assets/settings.py``). A channel that fails does not stop the others.

Network I/O is retried with exponential backoff and jitter (a receiver restarting, a 5xx, a 429); a
refusal that another try cannot fix (4xx, a rejected recipient, a Slack ``ok: false``) is not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import random
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from dagster import ConfigurableResource
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

T = TypeVar("T")

# kinds of alert
CHECK_FAILED = "check_failed"
RUN_FAILED = "run_failed"
FRESHNESS = "freshness"
RECOVERED = "recovered"
UNMAPPABLE_FILE = "unmappable_file"
CIRCUIT_OPEN = "circuit_open"
CIRCUIT_CLOSED = "circuit_closed"
DELIVERY_MISSING = "delivery_missing"

_SAMPLE_ROWS = 5
_TEXT_LIMIT = 2000


@dataclasses.dataclass(frozen=True)
class Alert:
    """One message to a person: what failed, where, how badly, and a link to the run."""

    kind: str
    severity: str  # ERROR, WARN or INFO
    title: str
    # What "once per failure" counts: the same key is not alerted again until it recovers.
    key: str
    asset: str | None = None
    partition: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    source: str | None = None
    # Failed (or recovered) checks: asset, check, partition, severity, failing_rows, sample, ...
    checks: tuple[Mapping[str, Any], ...] = ()
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    at: str = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def to_dict(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["checks"] = [dict(c) for c in self.checks]
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Alert:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in document.items() if k in fields}
        values["checks"] = tuple(values.get("checks") or ())
        return cls(**values)

    def text(self) -> str:
        """The human-readable message (Slack, email, the log)."""
        lines = [f"[{self.severity}] {self.title}"]
        for name, value in (
            ("asset", self.asset),
            ("partition", self.partition),
            ("source", self.source),
            ("run", self.run_url or self.run_id),
        ):
            if value:
                lines.append(f"{name}: {value}")
        for item in self.checks:
            line = f"- check {item.get('asset')}:{item.get('check')}"
            if item.get("partition"):
                line += f" [{item['partition']}]"
            line += f" {item.get('severity', '')}"
            if item.get("failing_rows") is not None:
                line += f", {item['failing_rows']} failing row(s)"
            if item.get("description"):
                line += f": {item['description']}"
            lines.append(line)
            if item.get("sample"):
                lines.append(f"  sample: {json.dumps(item['sample'], default=str)[:500]}")
        for name, value in self.details.items():
            lines.append(f"{name}: {value}")
        return "\n".join(lines)[:_TEXT_LIMIT]


# --- retries ------------------------------------------------------------------------------------


class PermanentDeliveryError(RuntimeError):
    """The receiver refused the alert; sending it again would not help."""


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, PermanentDeliveryError):
        return False
    if isinstance(error, urllib.error.HTTPError):
        return error.code == 429 or error.code >= 500
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200)
        return status == 429 or status >= 500
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500  # 4xx: try again later; 5xx: refused
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return False
    return isinstance(error, OSError | TimeoutError | smtplib.SMTPServerDisconnected)


def with_retries(
    action: Callable[[], T],
    attempts: int,
    base_delay: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; on a transient error wait base·2^n ±50 % (jitter) and try again."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as error:
            if attempt == attempts or not _is_transient(error):
                raise
            # Jitter spreads the retries of many sensors so they do not hit a receiver together.
            sleep(base_delay * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


# --- channels -----------------------------------------------------------------------------------


class SlackAlertClient(SlackResource):
    """dagster-slack's resource with a configurable Web API base URL (a proxy, a test receiver)."""

    base_url: str = Field(default="https://slack.com/api/")

    def get_client(self) -> WebClient:
        return WebClient(token=self.token, base_url=self.base_url, timeout=10)


class AlertChannels(ConfigurableResource):
    """Where alerts go. Defaults need no account: a JSON-lines file and the Dagster log."""

    channels: list[str] = Field(default=["file", "log"])
    file_path: str = Field(description="JSON-lines file the 'file' channel appends to.")
    ui_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of the Dagster UI.")
    webhook_url: str | None = None
    slack_token: str | None = None
    slack_channel: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    email_from: str | None = None
    email_to: list[str] = Field(default_factory=list)
    attempts: int = 4
    retry_base_seconds: float = 0.5
    timeout_seconds: float = 10.0

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def send(
        self,
        alert: Alert,
        log: logging.Logger | Any,
        only: Sequence[str] | None = None,
    ) -> dict[str, str]:
        """Send to every channel (or ``only`` these); returns the channels that failed and why."""
        failed: dict[str, str] = {}
        for channel in only or self.channels:
            try:
                self._send_one(channel, alert, log)
            except Exception as error:
                failed[channel] = f"{type(error).__name__}: {error}"
                log.error(f"alert channel {channel!r} failed for {alert.key!r}: {error}")
        return failed

    def _send_one(self, channel: str, alert: Alert, log: logging.Logger | Any) -> None:
        if channel == "log":
            level = {"ERROR": log.error, "WARN": log.warning}.get(alert.severity, log.info)
            level(f"ALERT {alert.text()}")
        elif channel == "file":
            self._to_file(alert)
        elif channel == "webhook":
            with_retries(lambda: self._to_webhook(alert), self.attempts, self.retry_base_seconds)
        elif channel == "slack":
            with_retries(lambda: self._to_slack(alert), self.attempts, self.retry_base_seconds)
        elif channel == "email":
            with_retries(lambda: self._to_email(alert), self.attempts, self.retry_base_seconds)
        else:
            raise PermanentDeliveryError(f"unknown alert channel {channel!r}")

    def _to_file(self, alert: Alert) -> None:
        path = Path(self.file_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(alert.to_dict(), default=str, sort_keys=True) + "\n"
        # One write of one line in append mode: lines from several sensors do not interleave.
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def _to_webhook(self, alert: Alert) -> None:
        if not self.webhook_url:
            raise PermanentDeliveryError("the webhook channel is on but no URL is configured")
        # "text" as well, so that Slack/Teams incoming-webhook URLs accept the same payload.
        body = json.dumps({**alert.to_dict(), "text": alert.text()}, default=str).encode()
        request = urllib.request.Request(
            self.webhook_url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "dataeng-assets-alerts"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except urllib.error.HTTPError as error:
            if error.code == 429 or error.code >= 500:
                raise
            raise PermanentDeliveryError(f"webhook answered HTTP {error.code}") from error

    def _to_slack(self, alert: Alert) -> None:
        if not (self.slack_token and self.slack_channel):
            raise PermanentDeliveryError("the slack channel needs a token and a channel")
        client = SlackAlertClient(token=self.slack_token, base_url=self.slack_api_url).get_client()
        try:
            client.chat_postMessage(channel=self.slack_channel, text=alert.text())
        except SlackApiError as error:
            status = getattr(error.response, "status_code", 200)
            if status == 429 or status >= 500:
                raise
            raise PermanentDeliveryError(f"slack refused: {error.response.get('error')}") from error

    def _to_email(self, alert: Alert) -> None:
        if not (self.smtp_host and self.email_from and self.email_to):
            raise PermanentDeliveryError("the email channel needs a host, a sender and recipients")
        message = EmailMessage()
        message["Subject"] = f"[dataeng {alert.severity}] {alert.title}"[:200]
        message["From"] = self.email_from
        message["To"] = ", ".join(self.email_to)
        message.set_content(
            alert.text() + "\n\n" + json.dumps(alert.to_dict(), default=str, indent=1)
        )
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds) as smtp:
            if self.smtp_starttls:
                smtp.starttls()
            if self.smtp_user and self.smtp_password:
                smtp.login(self.smtp_user, self.smtp_password)
            smtp.send_message(message)


def sample_rows(value: Any) -> Any:
    """A few rows of a sample, JSON-friendly."""
    if isinstance(value, list):
        return value[:_SAMPLE_ROWS]
    if isinstance(value, dict) and len(value) > _SAMPLE_ROWS * 4:
        return dict(list(value.items())[: _SAMPLE_ROWS * 4])
    return value
