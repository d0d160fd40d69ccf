"""A running agent with the console on, and a small cookie-keeping HTTP client for its forms.

Shared by the console's HTTP and browser tests (no pytest imports).
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from agent.http.web.auth import hash_password
from tests.support.agent_process import AgentProcess, write_config
from tests.support.live import poll
from tests.support.mosquitto import Mosquitto, free_port

PASSWORDS = {"olga": "olga-operator-pw", "victor": "victor-viewer-pw"}
ROLES = {"olga": "operator", "victor": "viewer"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def users_toml(names: tuple[str, ...] = ("olga", "victor")) -> str:
    return "".join(
        f'\n[[http.users]]\nname = "{name}"\nrole = "{ROLES[name]}"\n'
        f'password_hash = "{hash_password(PASSWORDS[name])}"\n'
        for name in names
    )


def start_console(
    broker: Mosquitto,
    tmp_path: Path,
    *,
    users: bool = True,
    pages: bool = True,
    history: bool = False,
    http_extra: str = "",
    rules: Path | None = None,
) -> tuple[AgentProcess, int]:
    """A real agent with the console on a free port; `history`: the readings table on (charts);
    `http_extra`: more `[http]` settings; `rules`: a rules folder (default: the repository's)."""
    port = free_port()
    http = (
        f"\n[http]\nenabled = true\nport = {port}\nmax_message_age_s = 0\n"
        f'pages = {"true" if pages else "false"}\nsession_secret = "test-secret"\n'
        f"{http_extra}"
    )
    config = write_config(
        tmp_path,
        port=broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id=f"agent-{tmp_path.name}",
        rules=rules,
        extra=http
        + (users_toml() if users else "")
        + ("\n[history]\nenabled = true\n" if history else ""),
    )
    process = AgentProcess(config, cwd=tmp_path)
    process.start()
    process.wait_for("http_started", timeout=15)
    poll(lambda: _status(port, "/readyz") == 200, 15, "the agent ready (broker connected)")
    return process, port


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Client:
    """Keeps the session cookie like a browser; `post` does not follow the 303 (to see it)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.jar = http.cookiejar.CookieJar()
        cookies = urllib.request.HTTPCookieProcessor(self.jar)
        self._follow = urllib.request.build_opener(cookies)
        self._stay = urllib.request.build_opener(cookies, _NoRedirect())

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with self._follow.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(
        self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """(status, body, Location) of a form post."""
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self._stay.open(request, timeout=15) as response:
                return response.status, response.read().decode(), ""
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers.get("Location") or ""

    def csrf(self, path: str = "/alerts") -> str:
        status, page = self.get(path)
        found = _CSRF.search(page)
        assert status == 200 and found, f"no CSRF token on {path} ({status})"
        return found[1]

    def login(self, name: str) -> None:
        status, _, location = self.post(
            "/login", {"csrf": self.csrf("/login"), "name": name, "password": PASSWORDS[name]}
        )
        assert (status, location) == (303, "/alerts"), f"login as {name}: {status}"
