"""The console's HTTP surface without a socket: a `Request` in, a `Response` out, so the pages
are served by the agent's small threaded server (`agent/http/server.py`) and tested without one.
Templates come from the package (Jinja2, autoescaped), static files too: no CDN, no build step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# Pages load only what the agent serves: no inline script, no other origin, no framing.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    form: Mapping[str, Sequence[str]] = field(default_factory=dict)
    cookie_header: str = ""
    client: str = "127.0.0.1"  # the peer's address
    headers: Mapping[str, str] = field(default_factory=dict)  # by lower-case name

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def from_loopback(self) -> bool:
        return self.client.startswith("127.") or self.client in ("::1", "localhost")

    def cookie(self, name: str) -> str | None:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.cookie_header)
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def templates() -> Environment:
    return Environment(
        loader=PackageLoader("agent.http.web", "templates"),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # shipped in the package: no file check on every include
    )


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of `static/` by its URL path, with its content type, read once at start."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("agent.http.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            files[f"/static/{entry.name}"] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def html(status: int, text: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(status, text.encode(), headers=(*SECURITY_HEADERS, *headers))


def json_response(body: bytes, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(HTTPStatus.OK, body, "application/json", (*SECURITY_HEADERS, *headers))


def redirect(location: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(HTTPStatus.SEE_OTHER, b"", "text/plain", (("Location", location), *headers))


def safe_back(target: str | None, default: str) -> str:
    """A same-site path to go back to after a form (never another host: `//x` or `http:`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def render(env: Environment, name: str, **context: Any) -> str:
    return env.get_template(name).render(**context)
