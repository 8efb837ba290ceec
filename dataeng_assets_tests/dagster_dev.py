"""Throw-away ``dagster dev`` for end-to-end tests, driven through the webserver's GraphQL API.

``run_dagster_dev(...)`` starts the venv's ``dagster dev`` on a free loopback port with a temporary
``DAGSTER_HOME`` (holding a copy of the repository's ``dagster.yaml``) and the landing zone / lake
roots in the environment, waits until the code location is loaded and yields a :class:`DagsterDev`::

    with run_dagster_dev(repo_root, landing=landing, lake=lake, work_dir=tmp) as dev:
        backfill_id = dev.launch_asset_backfill([["raw", "flights"]], ["2013-01-02"])
        dev.wait_for_backfill(backfill_id)

Process handling:

* ``dagster dev`` maps SIGTERM onto whatever SIGINT does. A shell running it in the background
  (non-interactive) leaves SIGINT ignored, so both signals end up ignored and it cannot be
  stopped. The child therefore gets default SIGINT/SIGTERM dispositions back before ``exec``.
* It runs in its own session/process group (webserver, daemon, code-server proxy, gRPC code
  server and run workers all inherit it); stopping sends SIGTERM to the group, waits, then
  SIGKILLs whatever is left.
* :meth:`DagsterDev.listening_sockets` lists the TCP listeners of every process in the group
  (from ``/proc``), so a test can assert that nothing listens beyond loopback. On Linux the
  code server that ``dagster dev`` spawns serves gRPC on a Unix socket, not a TCP port.

Only the standard library is used here (the GraphQL documents are plain strings, checked against
the installed ``dagster_graphql`` schema by the tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BACKFILL_QUERY",
    "GRAPHQL_DOCUMENTS",
    "LAUNCH_PARTITION_BACKFILL_MUTATION",
    "RUN_EVENTS_QUERY",
    "WORKSPACE_QUERY",
    "DagsterDev",
    "DagsterDevError",
    "Listener",
    "run_dagster_dev",
]

LOOPBACK = "127.0.0.1"
_LOG_TAIL_CHARS = 6000
_STOP_TIMEOUT = 30.0

# The UI's own mutation (ui-core LaunchAssetChoosePartitionsDialog -> LAUNCH_PARTITION_BACKFILL_MUTATION).
LAUNCH_PARTITION_BACKFILL_MUTATION = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on Error { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on PythonError { stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

WORKSPACE_QUERY = """
query WorkspaceLoadStatus {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message stack }
  }
}
"""

BACKFILL_QUERY = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      isAssetBackfill
      numPartitions
      partitionNames
      assetSelection { path }
      timestamp
      endTimestamp
      error { message stack }
      runs { runId status startTime endTime tags { key value } }
    }
    ... on Error { message }
    ... on PythonError { stack }
  }
}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message level stepKey eventType }
        ... on ErrorEvent { error { className message stack } }
      }
    }
    ... on Error { message }
  }
}
"""

# What the asset's Checks tab shows per partition: each check's status by range of days.
CHECK_PARTITIONS_QUERY = """
query CheckPartitions($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      assetChecksOrError {
        __typename
        ... on AssetChecks {
          checks {
            name
            blocking
            partitionStatuses {
              __typename
              ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
            }
          }
        }
      }
    }
  }
}
"""

GRAPHQL_DOCUMENTS = {
    "CHECK_PARTITIONS_QUERY": CHECK_PARTITIONS_QUERY,
    "LAUNCH_PARTITION_BACKFILL_MUTATION": LAUNCH_PARTITION_BACKFILL_MUTATION,
    "WORKSPACE_QUERY": WORKSPACE_QUERY,
    "BACKFILL_QUERY": BACKFILL_QUERY,
    "RUN_EVENTS_QUERY": RUN_EVENTS_QUERY,
}

BACKFILL_TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
BACKFILL_SUCCESS = {"COMPLETED", "COMPLETED_SUCCESS"}
RUN_FAILED = {"FAILURE", "CANCELED"}


class DagsterDevError(RuntimeError):
    """``dagster dev`` could not be started, or a GraphQL call failed."""


@dataclasses.dataclass(frozen=True)
class Listener:
    """A listening TCP socket of one process of the group."""

    pid: int
    address: str
    port: int

    @property
    def is_loopback_v4(self) -> bool:
        return self.address == LOOPBACK


@dataclasses.dataclass
class DagsterDev:
    """A running ``dagster dev`` and the folders it was given."""

    url: str
    port: int
    pgid: int
    home: Path
    landing: Path
    lake: Path
    log_path: Path
    process: subprocess.Popen

    # --- GraphQL --------------------------------------------------------------------------------

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """POST a document to ``/graphql`` as the UI does; returns ``data`` or raises."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise DagsterDevError(f"GraphQL HTTP {exc.code}: {detail}") from exc
        if payload.get("errors"):
            raise DagsterDevError(f"GraphQL errors: {json.dumps(payload['errors'], indent=1)}")
        return payload["data"]

    def launch_asset_backfill(
        self,
        asset_keys: Sequence[Sequence[str]],
        partition_names: Sequence[str],
        tags: dict[str, str] | None = None,
    ) -> str:
        """Launch a backfill of ``asset_keys`` for ``partition_names``, as the UI's dialog does."""
        ui_tags = {**(tags or {}), "dagster/from_ui": "true"}  # tagsWithUIExecutionTags
        params = {
            "tags": [{"key": k, "value": v} for k, v in ui_tags.items()],
            "assetSelection": [{"path": list(key)} for key in asset_keys],
            "partitionNames": list(partition_names),
            "fromFailure": False,
        }
        data = self.graphql(LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": params})
        result = data["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise DagsterDevError(f"launchPartitionBackfill failed: {json.dumps(result, indent=1)}")
        return result["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        result = self.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})[
            "partitionBackfillOrError"
        ]
        if result["__typename"] != "PartitionBackfill":
            raise DagsterDevError(f"backfill {backfill_id}: {json.dumps(result, indent=1)}")
        return result

    def wait_for_backfill(
        self, backfill_id: str, timeout: float = 180.0, interval: float = 1.0
    ) -> dict[str, Any]:
        """Poll until the backfill is terminal; raise with run errors unless it succeeded."""
        deadline = time.monotonic() + timeout
        backfill = self.backfill(backfill_id)
        while time.monotonic() < deadline:
            self._check_alive()
            backfill = self.backfill(backfill_id)
            failed_runs = [r for r in backfill["runs"] if r["status"] in RUN_FAILED]
            if backfill["status"] in BACKFILL_TERMINAL or failed_runs:
                break
            time.sleep(interval)
        else:
            raise DagsterDevError(
                f"backfill {backfill_id} not finished after {timeout:.0f}s\n"
                + self.describe_backfill(backfill)
            )
        if backfill["status"] not in BACKFILL_SUCCESS or any(
            r["status"] != "SUCCESS" for r in backfill["runs"]
        ):
            raise DagsterDevError(
                f"backfill {backfill_id} did not succeed\n" + self.describe_backfill(backfill)
            )
        return backfill

    def check_partition_statuses(self, asset_key: list[str]) -> dict[str, list[dict[str, str]]]:
        """Per check of the asset: its status ranges by partition, as the UI receives them."""
        node = self.graphql(CHECK_PARTITIONS_QUERY, {"assetKey": {"path": asset_key}})[
            "assetNodeOrError"
        ]
        checks = node.get("assetChecksOrError", {})
        if checks.get("__typename") != "AssetChecks":
            raise DagsterDevError(f"checks of {asset_key}: {json.dumps(node, indent=1)}")
        return {
            check["name"]: (check["partitionStatuses"] or {}).get("ranges", [])
            for check in checks["checks"]
        }

    def run_error_events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events that carry an error or are logged at ERROR/CRITICAL level."""
        events: list[dict[str, Any]] = []
        cursor = None
        for _ in range(100):  # pages
            page = self.graphql(RUN_EVENTS_QUERY, {"runId": run_id, "afterCursor": cursor})
            logs = page["logsForRun"]
            if logs["__typename"] != "EventConnection":
                return [{"message": f"logsForRun: {json.dumps(logs)}"}]
            events += logs["events"]
            cursor = logs["cursor"]
            if not logs["hasMore"]:
                break
        return [e for e in events if e.get("error") or e.get("level") in {"ERROR", "CRITICAL"}]

    def describe_backfill(self, backfill: dict[str, Any]) -> str:
        """A failure report: backfill status and error, each run, error events, the log's tail."""
        lines = [
            f"backfill {backfill.get('id')}: status={backfill.get('status')} "
            f"partitions={backfill.get('partitionNames')}"
        ]
        if backfill.get("error"):
            err = backfill["error"]
            lines.append(f"backfill error: {err['message']}\n{''.join(err.get('stack') or [])}")
        for run in backfill.get("runs") or []:
            lines.append(f"run {run['runId']}: {run['status']}")
            if run["status"] == "SUCCESS":
                continue
            try:
                events = self.run_error_events(run["runId"])
            except DagsterDevError as exc:
                events = [{"message": f"(could not read events: {exc})"}]
            for event in events:
                lines.append(
                    f"  [{event.get('eventType')}] {event.get('stepKey') or ''} "
                    f"{event.get('message', '')}"
                )
                if event.get("error"):
                    err = event["error"]
                    lines.append(f"    {err.get('className')}: {err.get('message')}")
                    lines.append("    " + "    ".join(err.get("stack") or []))
        lines.append(f"--- dagster dev log tail ({self.log_path}) ---\n{self.log_tail()}")
        return "\n".join(lines)

    # --- processes ------------------------------------------------------------------------------

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        return _tail(self.log_path, chars)

    def pids(self) -> list[int]:
        """Live (non-zombie) processes of the group."""
        return _group_pids(self.pgid)

    def listening_sockets(self) -> list[Listener]:
        """Every listening TCP (v4 and v6) socket held by a process of the group."""
        return _listeners(self.pids())

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise DagsterDevError(
                f"dagster dev exited with {self.process.returncode}\n{self.log_tail()}"
            )


# --- /proc helpers ------------------------------------------------------------------------------


def _tail(path: Path, chars: int) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in {"Z", "X"}:
            pids.append(int(entry))
    return sorted(pids)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp{,6} print the address as 32-bit words in host (little-endian) order.
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(swapped)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def _tcp_listeners_by_inode() -> dict[int, tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":  # 0A = TCP_LISTEN
                continue
            address, port = cols[1].split(":")
            found[int(cols[9])] = (_decode_address(address), int(port, 16))
    return found


def _listeners(pids: Sequence[int]) -> list[Listener]:
    by_inode = _tcp_listeners_by_inode()
    result = []
    for pid in pids:
        for inode in _socket_inodes(pid):
            if inode in by_inode:
                address, port = by_inode[inode]
                result.append(Listener(pid=pid, address=address, port=port))
    return sorted(set(result), key=lambda item: (item.port, item.pid))


# --- start / stop -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _default_signals() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def find_dagster() -> Path:
    """The ``dagster`` script next to the running interpreter (the venv's)."""
    candidate = Path(sys.executable).parent / "dagster"
    if candidate.exists():
        return candidate
    found = shutil.which("dagster")
    if not found:
        raise DagsterDevError(f"no dagster executable next to {sys.executable} or on PATH")
    return Path(found)


def stop_group(process: subprocess.Popen, pgid: int, timeout: float = _STOP_TIMEOUT) -> None:
    """SIGTERM the process group, wait for all of it, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()  # reaps the leader so it does not linger as a zombie
            if not _group_pids(pgid):
                break
            time.sleep(0.2)
        if not _group_pids(pgid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _wait_until_loaded(dev: DagsterDev, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        dev._check_alive()
        try:
            with urllib.request.urlopen(f"{dev.url}/server_info", timeout=5) as response:
                json.load(response)
            workspace = dev.graphql(WORKSPACE_QUERY, timeout=10)["workspaceOrError"]
        except (OSError, DagsterDevError, ValueError) as exc:
            last = repr(exc)
        else:
            if workspace["__typename"] != "Workspace":
                raise DagsterDevError(f"workspace error: {json.dumps(workspace, indent=1)}")
            entries = workspace["locationEntries"]
            last = json.dumps(entries)
            for entry in entries:
                loaded = entry.get("locationOrLoadError") or {}
                if loaded.get("__typename") == "PythonError":
                    raise DagsterDevError(
                        f"code location {entry['name']} failed to load: {loaded['message']}\n"
                        + "".join(loaded.get("stack") or [])
                        + f"\n--- log tail ---\n{dev.log_tail()}"
                    )
            if entries and all(
                e["loadStatus"] == "LOADED"
                and (e.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
                for e in entries
            ):
                return
        time.sleep(0.5)
    raise DagsterDevError(
        f"dagster dev not ready after {timeout:.0f}s (last: {last})\n"
        f"--- log tail ({dev.log_path}) ---\n{dev.log_tail()}"
    )


@contextlib.contextmanager
def run_dagster_dev(
    repo_root: Path,
    *,
    landing: Path | str,
    lake: Path | str,
    work_dir: Path,
    startup_timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    attempts: int = 3,
) -> Iterator[DagsterDev]:
    """Start ``dagster dev`` for ``repo_root``'s workspace; stop its whole process group after."""
    repo_root = Path(repo_root).resolve()
    home = work_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo_root / "dagster.yaml", home / "dagster.yaml")
    Path(lake).mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DATAENG_LANDING_ROOT": str(landing),
        "DATAENG_LAKE_ROOT": str(lake),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    for name in ("DAGSTER_GRPC_PORT", "DAGSTER_GRPC_SOCKET", "DAGSTER_GRPC_HOST"):
        env.pop(name, None)
    dagster = find_dagster()

    for attempt in range(1, attempts + 1):
        port = _free_port()
        log_path = work_dir / f"dagster_dev.{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(dagster),
                    "dev",
                    "-w",
                    str(repo_root / "workspace.yaml"),
                    "-h",
                    LOOPBACK,
                    "-p",
                    str(port),
                ],
                cwd=repo_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_signals,
            )
        pgid = process.pid  # a new session: the leader's pid is the group id
        dev = DagsterDev(
            url=f"http://{LOOPBACK}:{port}",
            port=port,
            pgid=pgid,
            home=home,
            landing=Path(landing),
            lake=Path(lake),
            log_path=log_path,
            process=process,
        )
        try:
            _wait_until_loaded(dev, startup_timeout)
        except DagsterDevError:
            stop_group(process, pgid)
            port_taken = "address already in use" in dev.log_tail(100_000).lower()
            if port_taken and attempt < attempts:
                continue
            raise
        except BaseException:
            stop_group(process, pgid)
            raise
        try:
            yield dev
        finally:
            stop_group(process, pgid)
        return
