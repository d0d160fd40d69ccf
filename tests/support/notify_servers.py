"""Real receivers for notification tests: an SMTP server (aiosmtpd) and a JSON web-hook server
(http.server in a thread), each on a free port, stoppable and restartable on the same port.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Wait:
    """A list that tests can wait on, with a deadline, instead of sleeping."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = threading.Condition()

    def add(self, item: Any) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.items) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.items)} of {count} arrived in {timeout} s")
                self._changed.wait(left)
            return list(self.items)


class SmtpSink:
    """An SMTP server that keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received = _Wait()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?from=agent@factory.local"
            "&to=ops@factory.local&mode=insecure"
        )

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self.received.items)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.add(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class WebhookSink:
    """An HTTP server that records each POST (path, headers, JSON body) and answers 200.

    `on_request(count)` runs before the answer: a test can kill the sender right there, after
    the message arrived but before its sender learns that it did.
    """

    def __init__(self, on_request: Callable[[int], None] | None = None) -> None:
        self.port = free_port()
        self.received = _Wait()
        self.on_request = on_request
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "hooks/alerts") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self.received.items)

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                sink.received.add({"path": self.path, "headers": dict(self.headers), "body": body})
                if sink.on_request is not None:
                    sink.on_request(len(sink.received.items))
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    return  # the sender is gone (a test killed it): nobody to answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
