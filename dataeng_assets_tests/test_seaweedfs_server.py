"""The SeaweedFS S3 test server: loopback-only, Delta round-trip, safe commits."""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.exceptions
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from dataeng_assets_tests.conftest import S3_BUCKET as BUCKET
from dataeng_assets_tests.seaweedfs import S3Server

pytestmark = pytest.mark.s3


def _uri() -> str:
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


def _rows(ids: list[int], tag: str = "a") -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "tag": pa.array([tag] * len(ids))})


def _listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(ip, port) of every TCP socket in LISTEN state owned by ``pid``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(table):
            continue
        with open(table) as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:  # 0A == TCP_LISTEN
                    continue
                addr_hex, port_hex = local.split(":")
                raw = bytes.fromhex(addr_hex)
                # /proc stores the address as host-order 32-bit words
                raw = b"".join(
                    struct.pack("<I", w) for w in struct.unpack(f">{len(raw) // 4}I", raw)
                )
                found.append((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def test_listens_on_loopback_only(s3_server: S3Server) -> None:
    sockets = _listening_sockets(s3_server.pid)
    s3_port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    assert s3_port in {port for _, port in sockets}, sockets
    # master, volume, filer, s3, admin + their grpc ports; nothing else.
    assert len(sockets) == 10, sockets
    not_loopback = [(ip, port) for ip, port in sockets if not ipaddress.ip_address(ip).is_loopback]
    assert not not_loopback, f"weed listens beyond loopback: {not_loopback}"


def test_requests_are_authenticated(s3_server: S3Server) -> None:
    wrong = S3Server(s3_server.endpoint_url, s3_server.access_key, "wrong-secret", s3_server.region)
    with pytest.raises(botocore.exceptions.ClientError):
        wrong.boto3_client().list_objects_v2(Bucket=BUCKET)


def test_delta_roundtrip(s3_server: S3Server) -> None:
    uri, opts = _uri(), s3_server.storage_options()
    write_deltalake(uri, _rows([1, 2, 3]), storage_options=opts)
    write_deltalake(uri, _rows([4, 5]), mode="append", storage_options=opts)
    write_deltalake(
        uri, _rows([2, 3], "b"), mode="overwrite", predicate="id IN (2, 3)", storage_options=opts
    )

    dt = DeltaTable(uri, storage_options=opts)
    assert dt.version() == 2
    expected = pa.table(
        {"id": pa.array([1, 2, 3, 4, 5], pa.int64()), "tag": ["a", "b", "b", "a", "a"]}
    )
    assert dt.to_pyarrow_table().sort_by("id").equals(expected)


class _CommitGateProxy:
    """Loopback HTTP proxy in front of the S3 endpoint that holds the first
    ``parties`` PUTs of ``_delta_log/*.json`` until all of them have arrived.

    This makes the race deterministic: every writer has already chosen its
    commit version before any of them reaches the store, so they all try to
    create the *same* ``_delta_log/N.json``. Later requests pass straight
    through. Status codes of commit PUTs are recorded.
    """

    def __init__(self, upstream_url: str, parties: int) -> None:
        host, port = upstream_url.removeprefix("http://").rsplit(":", 1)
        self.barrier = threading.Barrier(parties, timeout=20)
        self.gated = parties
        self.lock = threading.Lock()
        self.commit_statuses: list[int] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                is_commit = (
                    self.command == "PUT"
                    and "/_delta_log/" in self.path
                    and self.path.split("?")[0].endswith(".json")
                )
                if is_commit:
                    proxy._maybe_wait()
                # Host and all signed headers pass through unchanged (SigV4).
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                if is_commit:
                    with proxy.lock:
                        proxy.commit_statuses.append(resp.status)
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                head_len = resp.getheader("Content-Length", "0")
                self.send_header(
                    "Content-Length", head_len if self.command == "HEAD" else str(len(data))
                )
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _maybe_wait(self) -> None:
        with self.lock:
            if self.gated == 0:
                return
            self.gated -= 1
        self.barrier.wait()

    def __enter__(self) -> _CommitGateProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _race(
    uri: str, opts: dict[str, str], n: int, mode: str, retries: int | None
) -> dict[int, BaseException | None]:
    """``n`` threads each commit one row ``[i]``; returns exception or None per thread."""
    results: dict[int, BaseException | None] = {}

    def writer(i: int) -> None:
        try:
            write_deltalake(
                uri,
                _rows([i]),
                mode=mode,  # type: ignore[arg-type]
                storage_options=opts,
                commit_properties=CommitProperties(max_commit_retries=retries),
            )
            results[i] = None
        except Exception as exc:  # inspected by the caller
            results[i] = exc

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == n, "a writer thread hung"
    return results


def test_store_rejects_overwriting_a_commit_file(s3_server: S3Server) -> None:
    """The primitive delta-rs relies on: PUT If-None-Match: * on an existing key -> 412."""
    uri, opts = _uri(), s3_server.storage_options()
    write_deltalake(uri, _rows([1]), storage_options=opts)
    key = uri.removeprefix(f"s3://{BUCKET}/") + "/_delta_log/00000000000000000000.json"
    client = s3_server.boto3_client()
    before = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"{}", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == before


@pytest.mark.parametrize("mode", ["create", "append"])
def test_concurrent_commit_to_same_version_raises_instead_of_losing_data(
    s3_server: S3Server, mode: str
) -> None:
    uri, n = _uri(), 5
    if mode == "append":
        write_deltalake(uri, _rows([-1]), storage_options=s3_server.storage_options())
    with _CommitGateProxy(s3_server.endpoint_url, parties=n) as proxy:
        opts = {**s3_server.storage_options(), "AWS_ENDPOINT_URL": proxy.url}
        results = _race(uri, opts, n, "error" if mode == "create" else "append", retries=0)

    # All n writers PUT the same _delta_log/N.json; the store let exactly one in.
    assert sorted(proxy.commit_statuses) == [200] + [412] * (n - 1)
    winners = [i for i, exc in results.items() if exc is None]
    losers = [exc for exc in results.values() if exc is not None]
    assert len(winners) == 1, results
    assert all(isinstance(exc, CommitFailedError) for exc in losers), losers

    dt = DeltaTable(uri, storage_options=s3_server.storage_options())
    assert dt.version() == (0 if mode == "create" else 1)
    base = [] if mode == "create" else [-1]
    assert sorted(dt.to_pyarrow_table()["id"].to_pylist()) == sorted(base + winners)


def test_concurrent_appends_with_retries_keep_every_commit(s3_server: S3Server) -> None:
    uri, n = _uri(), 5
    write_deltalake(uri, _rows([-1]), storage_options=s3_server.storage_options())
    with _CommitGateProxy(s3_server.endpoint_url, parties=n) as proxy:
        opts = {**s3_server.storage_options(), "AWS_ENDPOINT_URL": proxy.url}
        results = _race(uri, opts, n, "append", retries=None)  # default: 15 retries

    assert all(exc is None for exc in results.values()), results
    assert proxy.commit_statuses.count(412) >= n - 1  # collisions did happen...
    dt = DeltaTable(uri, storage_options=s3_server.storage_options())
    assert dt.version() == n  # ...yet every append got its own version
    assert sorted(dt.to_pyarrow_table()["id"].to_pylist()) == list(range(-1, n))
