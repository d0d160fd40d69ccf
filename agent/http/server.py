"""The HTTP edge: `/healthz` (the process answers), `/readyz` (it can do its job), `/metrics`,
and, with `[http] pages = true`, the console's pages (`agent.http.web`) on the same port.

A small threaded server from the standard library on its own thread; it only reads state (the
console's buttons hand their commands to the ingest thread).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agent.http.health import Check, run_checks

if TYPE_CHECKING:
    from agent.http.web.routes import Console

log = structlog.get_logger(__name__)

MAX_FORM_BYTES = 16_384


class HealthServer:
    """Serves the three endpoints on `host:port` until `stop()`; port 0 picks a free one."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        checks: Mapping[str, Check],
        console: Console | None = None,
    ) -> None:
        self._registry = registry
        self._checks = dict(checks)
        self._console = console
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http", kwargs={"poll_interval": 0.2}
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http_started", host=self._server.server_address[0], port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        log.info("http_stopped")

    def metrics_text(self) -> bytes:
        return generate_latest(self._registry)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        results = run_checks(self._checks)
        failing = sorted(name for name, result in results.items() if not result.ok)
        body = {
            "status": "not ready" if failing else "ready",
            "failing": failing,
            "checks": {n: {"ok": r.ok, "detail": r.detail} for n, r in results.items()},
        }
        return (HTTPStatus.SERVICE_UNAVAILABLE if failing else HTTPStatus.OK), body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send(HTTPStatus.OK, b'{"status": "alive"}\n', "application/json")
                elif path == "/readyz":
                    status, body = server.readiness()
                    self._send(status, json.dumps(body).encode() + b"\n", "application/json")
                elif path == "/metrics":
                    self._send(HTTPStatus.OK, server.metrics_text(), CONTENT_TYPE_LATEST)
                elif server._console is not None and server._console.handles(path):
                    self._page("GET", b"")
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"try /healthz, /readyz or /metrics\n")

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                if server._console is None or not server._console.handles(path):
                    self._send(HTTPStatus.NOT_FOUND, b"nothing to post to here\n")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_FORM_BYTES:
                    self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"form too large\n")
                    return
                self._page("POST", self.rfile.read(length))

            def _page(self, method: str, body: bytes) -> None:
                from agent.http.web.app import Request

                assert server._console is not None
                url = urlsplit(self.path)
                request = Request(
                    method,
                    url.path,
                    parse_qs(url.query),
                    parse_qs(body.decode("utf-8", "replace")),
                    self.headers.get("Cookie") or "",
                    str(self.client_address[0]),
                    {name.lower(): value for name, value in self.headers.items()},
                )
                try:
                    response = server._console.handle(request)
                except Exception:  # a broken page must not take the health endpoints along
                    log.exception("console_page_failed", method=method, path=url.path)
                    self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"the page failed; see the log\n")
                    return
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)

            def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http_request", request=self.requestline)

        return Handler
