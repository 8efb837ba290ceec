"""Real local receivers for the alert channels: an HTTP server (webhook, Slack's Web API) and an
SMTP server (aiosmtpd). Each listens on 127.0.0.1 on a free port and records what it received.

    with http_receiver() as hook:                 # hook.url, hook.requests
        ...
    with http_receiver(statuses=[503, 503]) as hook:   # answer 503 twice, then 200
        ...
    with smtp_receiver() as smtp:                 # smtp.port, smtp.messages
        ...

The Slack receiver answers like the Web API (``{"ok": true, ...}``); ``slack_sdk`` is pointed at it
with its ``base_url``.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode()))


@dataclass
class HttpReceiver:
    url: str
    requests: list[ReceivedRequest] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give first, then 200
    answer: Callable[[ReceivedRequest], dict[str, Any]] = lambda _: {"ok": True}
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 120.0) -> list[ReceivedRequest]:
        """Wait until ``count`` requests arrived (an event to wait for, not a timed assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.1)
        raise TimeoutError(f"{self.url}: {len(self.requests)} request(s), expected {count}")

    def snapshot(self) -> list[ReceivedRequest]:
        with self.lock:
            return list(self.requests)


def _handler(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = ReceivedRequest(
                self.path, dict(self.headers.items()), self.rfile.read(length)
            )
            with receiver.lock:
                receiver.requests.append(request)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            body = json.dumps(receiver.answer(request) if status == 200 else {"ok": False})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@contextlib.contextmanager
def http_receiver(
    statuses: list[int] | None = None,
    answer: Callable[[ReceivedRequest], dict[str, Any]] | None = None,
    port: int = 0,
) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(url="", statuses=list(statuses or []))
    if answer is not None:
        receiver.answer = answer
    server = ThreadingHTTPServer((LOOPBACK, port), _handler(receiver))
    receiver.url = f"http://{LOOPBACK}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def slack_answer(request: ReceivedRequest) -> dict[str, Any]:
    """What Slack's Web API answers to chat.postMessage."""
    return {"ok": True, "channel": "C0TEST", "ts": f"{time.time():.6f}"}


@dataclass
class SmtpReceiver:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    from aiosmtpd.controller import Controller

    receiver = SmtpReceiver(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            receiver.messages.append(message)  # type: ignore[arg-type]
            return "250 OK"

    controller = Controller(Handler(), hostname=LOOPBACK, port=receiver.port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


@contextlib.contextmanager
def tcp_relay(port: int, target: tuple[str, int]) -> Iterator[None]:
    """Listen on 127.0.0.1:``port`` and pipe every connection to ``target``.

    Before it starts, a client of ``port`` is refused: a real network fault. The retry tests let
    a step fail on the refused port and open the relay while Dagster waits to retry.
    """
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((LOOPBACK, port))
    server.listen(64)
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(target, timeout=30)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
