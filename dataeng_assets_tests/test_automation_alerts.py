"""Alerts: the channels against real local receivers, and the alert sensor over a real instance
(SQLite and the local PostgreSQL): once per failure, a recovery note, failed checks named."""

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    DagsterInstance,
    MetadataValue,
    Output,
    StaticPartitionsDefinition,
    asset,
    build_sensor_context,
    materialize,
)
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from dataeng_assets.automation import build_alert_channels
from dataeng_assets.automation.alert_sensor import AlertCursor, build_alert_sensor
from dataeng_assets.automation.alerts import Alert, AlertChannels
from dataeng_assets.settings import load_settings
from dataeng_assets_tests.conftest import use_dagster_home
from dataeng_assets_tests.receivers import free_port, http_receiver, slack_answer, smtp_receiver

UI = "http://127.0.0.1:3999"
LOG = logging.getLogger("alerts-test")


def _alert() -> Alert:
    return Alert(
        kind="check_failed",
        severity="ERROR",
        title="1 asset check(s) failed: cleaned/flights:schema [2013-01-05]",
        key="run-1",
        asset="cleaned/flights",
        partition="2013-01-05",
        run_id="run-1",
        run_url=f"{UI}/runs/run-1",
        checks=(
            {
                "asset": "cleaned/flights",
                "check": "schema",
                "partition": "2013-01-05",
                "severity": "ERROR",
                "failing_rows": 2,
                "sample": [{"column": "dep_delay", "failure": "abc"}],
            },
        ),
    )


def _channels(tmp_path: Path, channels: list[str], **config) -> AlertChannels:
    return AlertChannels(
        channels=channels,
        file_path=str(tmp_path / "alerts.jsonl"),
        ui_url=UI,
        retry_base_seconds=0.01,
        **config,
    )


def _file_alerts(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- channels -----------------------------------------------------------------------------------


def test_one_alert_reaches_every_configured_channel(tmp_path: Path) -> None:
    with (
        http_receiver() as hook,
        http_receiver(answer=slack_answer) as slack,
        smtp_receiver() as smtp,
    ):
        channels = _channels(
            tmp_path,
            ["file", "log", "webhook", "slack", "email"],
            webhook_url=f"{hook.url}/hook",
            slack_token="test-slack-token",
            slack_channel="#data-alerts",
            slack_api_url=f"{slack.url}/api/",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            email_from="dagster@example.org",
            email_to=["oncall@example.org"],
        )
        assert channels.send(_alert(), LOG) == {}

    (posted,) = hook.requests
    payload = posted.json()
    assert posted.path == "/hook"
    assert payload["checks"][0]["check"] == "schema"
    assert payload["run_url"] == f"{UI}/runs/run-1"
    assert "cleaned/flights:schema" in payload["text"]

    (message,) = slack.requests
    assert message.path == "/api/chat.postMessage"
    assert message.headers["Authorization"] == "Bearer test-slack-token"
    body = message.json()
    assert body["channel"] == "#data-alerts"
    assert "check cleaned/flights:schema [2013-01-05] ERROR, 2 failing row(s)" in body["text"]

    (mail,) = smtp.messages
    assert mail["To"] == "oncall@example.org"
    assert mail["Subject"].strip().startswith("[dataeng ERROR] 1 asset check(s) failed")
    assert f"{UI}/runs/run-1" in mail.get_content()

    (line,) = _file_alerts(tmp_path / "alerts.jsonl")
    assert line["key"] == "run-1" and line["checks"][0]["failing_rows"] == 2


def test_a_transient_http_error_is_retried_and_a_refusal_is_not(tmp_path: Path) -> None:
    with http_receiver(statuses=[503, 502]) as flaky:
        channels = _channels(tmp_path, ["webhook"], webhook_url=flaky.url)
        assert channels.send(_alert(), LOG) == {}
        assert len(flaky.requests) == 3  # two 5xx, then delivered

    with http_receiver(statuses=[400]) as refusing:
        channels = _channels(tmp_path, ["webhook", "file"], webhook_url=refusing.url)
        failed = channels.send(_alert(), LOG)
        assert list(failed) == ["webhook"] and "HTTP 400" in failed["webhook"]
        assert len(refusing.requests) == 1  # a 400 is not retried
    # The other channels still deliver.
    assert len(_file_alerts(tmp_path / "alerts.jsonl")) == 1


def test_a_slack_refusal_is_not_retried(tmp_path: Path) -> None:
    refuse = lambda _: {"ok": False, "error": "channel_not_found"}  # noqa: E731
    with http_receiver(answer=refuse) as slack:
        channels = _channels(
            tmp_path,
            ["slack"],
            slack_token="xoxb-test",
            slack_channel="#nowhere",
            slack_api_url=f"{slack.url}/api/",
        )
        failed = channels.send(_alert(), LOG)
    assert "channel_not_found" in failed["slack"]
    assert len(slack.requests) == 1


def test_channels_and_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "DATAENG_ALERT_CHANNELS": "file,webhook,slack",
        "DATAENG_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook?token=secret",
        "DATAENG_SLACK_TOKEN": "xoxb-secret",
        "DATAENG_SLACK_CHANNEL": "#alerts",
        "DATAENG_UI_URL": "http://127.0.0.1:3000/",
    }
    settings = load_settings(env)
    assert settings.alerts.channels == ("file", "webhook", "slack")
    assert settings.alerts.ui_url == "http://127.0.0.1:3000"
    resource = build_alert_channels(settings)
    # The resource holds references to the variables, never their values (the UI shows names).
    assert "xoxb-secret" not in repr(resource) and "token=secret" not in repr(resource)
    with pytest.raises(ValueError, match="unknown channel"):
        load_settings({"DATAENG_ALERT_CHANNELS": "file,pager"})


# --- the alert sensor over a real instance ------------------------------------------------------


class NumbersConfig(Config):
    positive_ok: bool = True
    not_empty_ok: bool = True


def _numbers_asset(prefix: str):
    key = AssetKey([prefix, "numbers"])

    @asset(
        key=key,
        partitions_def=StaticPartitionsDefinition(["a", "b"]),
        check_specs=[
            AssetCheckSpec("positive", asset=key),
            AssetCheckSpec("not_empty", asset=key, blocking=True),
        ],
    )
    def numbers(context: AssetExecutionContext, config: NumbersConfig):
        yield Output([1, 2, 3])
        yield AssetCheckResult(
            check_name="positive",
            passed=config.positive_ok,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "failing_rows": 0 if config.positive_ok else 3,
                "examples": MetadataValue.json([{"value": -1}, {"value": -2}]),
            },
        )
        yield AssetCheckResult(check_name="not_empty", passed=config.not_empty_ok)

    @asset(key=AssetKey([prefix, "broken"]))
    def broken() -> None:
        raise ValueError("boom: the upstream API answered nonsense")

    return numbers, broken


@pytest.fixture(params=["sqlite", "postgres"])
def instance(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    use_dagster_home(request.param, tmp_path / "dagster_home", monkeypatch)
    with DagsterInstance.get() as dagster_instance:
        yield dagster_instance


class AlertSensorHarness:
    """Ticks the real alert sensor and keeps the alerts that concern this test's runs."""

    def __init__(self, instance: DagsterInstance, channels: AlertChannels, prefix: str) -> None:
        self.instance = instance
        self.channels = channels
        self.prefix = prefix
        self.sensor = build_alert_sensor()
        self.cursor: str | None = None
        self.seen = 0

    def tick(self) -> list[dict]:
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"alerts": self.channels}
        )
        result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        alerts = _file_alerts(Path(self.channels.file_path))
        new, self.seen = alerts[self.seen :], len(alerts)
        # The PostgreSQL database is shared: keep the alerts about this test's assets only.
        return [a for a in new if (a.get("asset") or "").startswith(self.prefix)]


def test_the_alert_sensor_alerts_once_per_failure_and_notes_recovery(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    prefix = f"alerttest_{uuid.uuid4().hex[:8]}"
    numbers, broken = _numbers_asset(prefix)
    channels = _channels(tmp_path, ["file", "log"])
    harness = AlertSensorHarness(instance, channels, prefix)

    def run(partition: str, **config: bool):
        return materialize(
            [numbers],
            instance=instance,
            partition_key=partition,
            run_config={"ops": {numbers.op.name: {"config": config}}},
            raise_on_error=False,
        )

    # History is not alerted: a failure before the sensor's first tick stays quiet.
    run("a", positive_ok=False)
    assert harness.tick() == []

    # A WARN check fails; the run itself succeeds (dagster issue #29896): still alerted.
    first = run("a", positive_ok=False)
    assert first.success
    (alert,) = harness.tick()
    assert alert["kind"] == "check_failed" and alert["severity"] == "WARN"
    (check,) = alert["checks"]
    assert (check["asset"], check["check"], check["partition"]) == (
        f"{prefix}/numbers",
        "positive",
        "a",
    )
    assert check["failing_rows"] == 3 and check["sample"] == [{"value": -1}, {"value": -2}]
    assert alert["run_url"] == f"{UI}/runs/{first.run_id}"

    # The same failure again: no second alert (no storm on every run or tick).
    run("a", positive_ok=False)
    assert harness.tick() == []
    assert harness.tick() == []

    # A blocking check fails and with it the run: one alert naming the check.
    blocked = run("b", not_empty_ok=False)
    assert not blocked.success
    (alert,) = harness.tick()
    assert [c["check"] for c in alert["checks"]] == ["not_empty"]
    assert alert["severity"] == "ERROR" and "(the run failed)" in alert["title"]
    assert alert["run_id"] == blocked.run_id

    # The checks pass again: one recovery note each, then silence.
    run("a")
    (note,) = harness.tick()
    assert note["kind"] == "recovered" and note["checks"][0]["check"] == "positive"
    run("b")
    (note,) = harness.tick()
    assert note["kind"] == "recovered"
    assert {c["check"] for c in note["checks"]} >= {"not_empty"}
    assert harness.tick() == []

    # A run that fails without any check: a run-failure alert with the error.
    failed = materialize([broken], instance=instance, raise_on_error=False)
    (alert,) = harness.tick()
    assert alert["kind"] == "run_failed" and alert["run_id"] == failed.run_id
    assert "boom" in json.dumps(alert["details"])


def test_freshness_changes_are_alerted_and_recovered(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    prefix = f"freshtest_{uuid.uuid4().hex[:8]}"
    key = AssetKey([prefix, "table"])
    harness = AlertSensorHarness(instance, _channels(tmp_path, ["file"]), prefix)
    assert harness.tick() == []

    # What the freshness daemon records when a FreshnessPolicy is missed, and when it is met.
    def report(previous: FreshnessState, new: FreshnessState, at: float) -> None:
        instance.report_runless_asset_event(
            FreshnessStateChange(
                key=key, previous_state=previous, new_state=new, state_change_timestamp=at
            )
        )

    report(FreshnessState.PASS, FreshnessState.FAIL, 1.0)
    (alert,) = harness.tick()
    assert alert["kind"] == "freshness" and alert["severity"] == "ERROR"
    assert alert["asset"] == f"{prefix}/table"
    assert harness.tick() == []
    report(FreshnessState.FAIL, FreshnessState.PASS, 2.0)
    (note,) = harness.tick()
    assert note["kind"] == "recovered"


def test_an_alert_that_cannot_be_delivered_is_retried_on_later_ticks(tmp_path: Path) -> None:
    port = free_port()
    prefix = f"pendingtest_{uuid.uuid4().hex[:8]}"
    numbers, _ = _numbers_asset(prefix)
    channels = _channels(tmp_path, ["file", "webhook"], webhook_url=f"http://127.0.0.1:{port}/h")
    with DagsterInstance.ephemeral() as instance:
        harness = AlertSensorHarness(instance, channels, prefix)
        harness.tick()
        materialize(
            [numbers],
            instance=instance,
            partition_key="a",
            run_config={"ops": {numbers.op.name: {"config": {"positive_ok": False}}}},
        )
        # Nobody listens on the webhook's port: the file gets it, the webhook is kept for later.
        (alert,) = harness.tick()
        assert AlertCursor.decode(harness.cursor).pending[0]["channels"] == ["webhook"]
        with http_receiver(port=port) as hook:
            harness.tick()
            (delivered,) = hook.requests
        assert delivered.json()["key"] == alert["key"]
        assert AlertCursor.decode(harness.cursor).pending == []
