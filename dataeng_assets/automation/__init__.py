"""The platform running by itself: arrival sensors, daily schedules, Declarative Automation,
concurrency pools, alerts and circuit breakers.

``definitions.py`` merges ``build_automation(settings, sources)`` (jobs, sensors, schedules and the
alerts resource) and passes its assets through ``automate_assets``: the downstream automation
condition on their specs, each table's op in its own concurrency pool. No asset factory is edited.
See docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
)

from dataeng_assets.automation.alert_sensor import build_alert_sensor
from dataeng_assets.automation.alerts import AlertChannels
from dataeng_assets.automation.arrival import (
    arrival_sensor_name,
    build_arrival_sensor,
    build_ingest_job,
)
from dataeng_assets.automation.conditions import DOWNSTREAM_CONDITION, automate_assets
from dataeng_assets.automation.daily_arrival import (
    DAILY_ARRIVAL_SENSOR,
    build_daily_arrival_sensor,
    build_daily_job,
)
from dataeng_assets.automation.schedules import build_daily_schedule
from dataeng_assets.settings import Settings, alert_secrets
from dataeng_assets.sources import Source

AUTOMATION_SENSOR = "downstream_automation"
ALERTS_RESOURCE_KEY = "alerts"


def build_alert_channels(settings: Settings) -> AlertChannels:
    """The alerts resource from the settings; secrets reach it as EnvVar."""
    alerts = settings.alerts
    return AlertChannels(
        channels=list(alerts.channels),
        file_path=alerts.file_path,
        ui_url=alerts.ui_url,
        slack_channel=alerts.slack_channel,
        slack_api_url=alerts.slack_api_url,
        smtp_host=alerts.smtp_host,
        smtp_port=alerts.smtp_port,
        smtp_user=alerts.smtp_user,
        smtp_starttls=alerts.smtp_starttls,
        email_from=alerts.email_from,
        email_to=list(alerts.email_to),
        **alert_secrets(alerts),
    )


def arrival_sensor_names(sources: Iterable[Source]) -> list[str]:
    """The sensors that watch the landing zone: one for all daily sources, one per snapshot."""
    sources = list(sources)
    daily = [DAILY_ARRIVAL_SENSOR] if any(s.is_daily for s in sources) else []
    return daily + [arrival_sensor_name(s) for s in sources if not s.is_daily]


def build_automation(settings: Settings, sources: Iterable[Source]) -> Definitions:
    """Per source an ingestion job, and (daily sources) its schedule; the daily sources' arrival
    sensor with its day job, an arrival sensor per snapshot source; plus the alert sensor and the
    automation sensor for everything downstream. All on by default (``DATAENG_AUTOMATION=off``
    starts them stopped, e.g. for a test that drives runs itself)."""
    interval = settings.sensor_interval_seconds
    arrival_interval = settings.arrival_interval_seconds
    on = settings.automation_on
    sensor_status = DefaultSensorStatus.RUNNING if on else DefaultSensorStatus.STOPPED
    schedule_status = DefaultScheduleStatus.RUNNING if on else DefaultScheduleStatus.STOPPED
    jobs, sensors, schedules = [], [], []
    sources = list(sources)
    daily = [s for s in sources if s.is_daily]
    if daily:
        day_job = build_daily_job(daily)
        jobs.append(day_job)
        sensors.append(
            build_daily_arrival_sensor(
                daily,
                day_job,
                minimum_interval_seconds=arrival_interval,
                default_status=sensor_status,
            )
        )
    for source in sources:
        job = build_ingest_job(source)
        jobs.append(job)
        if source.is_daily:
            schedules.append(build_daily_schedule(source, job, default_status=schedule_status))
        else:
            sensors.append(
                build_arrival_sensor(
                    source,
                    job,
                    minimum_interval_seconds=arrival_interval,
                    default_status=sensor_status,
                )
            )
    sensors.append(
        build_alert_sensor(minimum_interval_seconds=interval, default_status=sensor_status)
    )
    sensors.append(
        AutomationConditionSensorDefinition(
            AUTOMATION_SENSOR,
            target=AssetSelection.all(),
            default_status=sensor_status,
            minimum_interval_seconds=interval,
            description="Cleaned, quarantine, features and quality follow their upstream tables.",
        )
    )
    return Definitions(
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources={ALERTS_RESOURCE_KEY: build_alert_channels(settings)},
    )


__all__ = [
    "ALERTS_RESOURCE_KEY",
    "AUTOMATION_SENSOR",
    "DAILY_ARRIVAL_SENSOR",
    "DOWNSTREAM_CONDITION",
    "arrival_sensor_names",
    "automate_assets",
    "build_alert_channels",
    "build_automation",
]
