"""The console's pages and forms: alerts, actions, login; live rows as JSON; the buttons.

A button becomes the same command the MQTT command topic carries, handed to the daemon's ingest
thread through `ConsoleData.apply` (it stays the only writer), with `by` = the logged-in user.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

import structlog

from agent.config import HttpSettings
from agent.errors import TransitionError
from agent.http.web import views
from agent.http.web.app import (
    Request,
    Response,
    html,
    json_response,
    redirect,
    render,
    safe_back,
    static_files,
    templates,
)
from agent.http.web.auth import COOKIE, Session, Sessions, Users, csrf_ok, new_session

log = structlog.get_logger(__name__)

POLL_S = 3
_COMMAND_PATH = re.compile(r"^/(alerts|actions)/(\d{1,18})/(ack|resolve|done|cancel)$")
_COMMAND_WORDS = {
    "ack": "acknowledged",
    "resolve": "resolved",
    "done": "done",
    "cancel": "cancelled",
}


class ConsoleUnavailable(Exception):
    """The daemon did not apply a command in time (stopping, or the database is down)."""


class ConsoleData(Protocol):
    """What the pages read, and how a button's command reaches the ingest thread."""

    def alerts(self) -> list[dict[str, Any]]: ...

    def actions(self) -> list[dict[str, Any]]: ...

    def apply(self, command: str, target: str, id: int, by: str) -> dict[str, Any]: ...


class Console:
    """Handles one request at a time from any thread; it keeps no state but its settings."""

    def __init__(self, settings: HttpSettings, data: ConsoleData) -> None:
        self._data = data
        self._users = Users(settings.users)
        secret = settings.session_secret
        self._sessions = Sessions(
            secret.get_secret_value() if secret else secrets.token_urlsafe(32),
            settings.session_max_age_s,
        )
        self._secure = settings.public_url.startswith("https://")
        self._env = templates()
        self._static = static_files()
        self._pages: dict[str, Callable[[Request, Session], Response]] = {
            "/alerts": self._alerts_page,
            "/actions": self._actions_page,
            "/api/alerts": self._alerts_rows,
            "/api/actions": self._actions_rows,
            "/login": self._login_page,
        }

    def handles(self, path: str) -> bool:
        return (
            path in ("/", *self._pages, "/logout")
            or path in self._static
            or _COMMAND_PATH.match(path) is not None
        )

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path in self._static:
            body, content_type = self._static[request.path]
            return Response(HTTPStatus.OK, body, content_type, (("Cache-Control", "max-age=300"),))
        if not self._users.configured and not request.from_loopback:
            # Nobody logs in, so nobody is known: only this machine sees the pages.
            return html(
                HTTPStatus.FORBIDDEN,
                "<!doctype html><title>403</title><p>The console answers other machines only "
                "once [http] users are configured; until then it is read-only on 127.0.0.1.</p>",
            )
        stored = self._sessions.read(request.cookie(COOKIE))
        session = stored or new_session()
        response = self._route(request, session)
        if stored is None and not any(k == "Set-Cookie" for k, _ in response.headers):
            response = self._with_cookie(response, session)  # a CSRF token for the first form
        return response

    def _route(self, request: Request, session: Session) -> Response:
        if request.method == "GET":
            if request.path == "/":
                return redirect("/alerts")
            page = self._pages.get(request.path)
            if page is None:
                return self._error(HTTPStatus.NOT_FOUND, "no such page", session)
            return page(request, session)
        if request.method != "POST":
            return self._error(HTTPStatus.METHOD_NOT_ALLOWED, "GET or POST only", session)
        if not csrf_ok(session, request.field("csrf")):
            log.warning("console_csrf_refused", path=request.path, user=session.user)
            return self._error(
                HTTPStatus.FORBIDDEN,
                "the form's token is missing or stale: reload the page",
                session,
            )
        if request.path == "/login":
            return self._login(request, session)
        if request.path == "/logout":
            return redirect("/alerts", (self._cookie(new_session()),))
        match = _COMMAND_PATH.match(request.path)
        if match is None:
            return self._error(HTTPStatus.NOT_FOUND, "no such form", session)
        return self._command(request, session, match[1], int(match[2]), match[3])

    # -- pages -----------------------------------------------------------------------------

    def _alerts_page(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.alerts(self._data.alerts(), filters)
        return html(HTTPStatus.OK, self._page("alerts.html", session, filters, rows=rows))

    def _actions_page(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.actions(self._data.actions(), filters)
        return html(HTTPStatus.OK, self._page("actions.html", session, filters, rows=rows))

    def _alerts_rows(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.alerts(self._data.alerts(), filters)
        return self._rows("alert_rows.html", session, filters, rows)

    def _actions_rows(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.actions(self._data.actions(), filters)
        return self._rows("action_rows.html", session, filters, rows)

    def _rows(
        self, name: str, session: Session, filters: views.Filters, rows: list[dict[str, Any]]
    ) -> Response:
        """The table body, rendered by the same template as the page, for the live update."""
        context = self._context(session, filters)
        body = {
            "html": render(self._env, name, rows=rows, **context),
            "open": sum(1 for row in rows if row["open"]),
            "ids": [row["id"] for row in rows],
        }
        return json_response(json.dumps(body).encode())

    def _login_page(self, request: Request, session: Session) -> Response:
        return html(HTTPStatus.OK, self._page("login.html", session, views.Filters(), problem=""))

    def _login(self, request: Request, session: Session) -> Response:
        name = (request.field("name") or "").strip()
        user = self._users.check(name, request.field("password") or "")
        if user is None:
            log.warning("console_login_refused", user=name)
            page = self._page(
                "login.html", session, views.Filters(), problem="wrong name or password"
            )
            return html(HTTPStatus.UNAUTHORIZED, page)
        log.info("console_login", user=user.name, role=user.role)
        fresh = new_session(user.name)
        return redirect(safe_back(request.field("back"), "/alerts"), (self._cookie(fresh),))

    # -- buttons ---------------------------------------------------------------------------

    def _command(
        self, request: Request, session: Session, table: str, id: int, command: str
    ) -> Response:
        if not self._users.configured:
            return self._error(
                HTTPStatus.FORBIDDEN, "read-only: no users are configured ([http] users)", session
            )
        if not self._users.may_act(session.user):
            who = f"{session.user} is a viewer" if session.user else "log in first"
            log.warning("console_command_refused", user=session.user, command=command, id=id)
            problem = f"only operators may {command}: {who}"
            return self._error(HTTPStatus.FORBIDDEN, problem, session)
        target = "alert" if table == "alerts" else "action"
        try:
            row = self._data.apply(command, target, id, session.user)
        except TransitionError as exc:
            return self._error(HTTPStatus.CONFLICT, str(exc), session)
        except ConsoleUnavailable as exc:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), session)
        log.info(
            "console_command",
            user=session.user,
            command=command,
            table=target,
            id=id,
            status=row.get("status"),
        )
        return redirect(safe_back(request.field("back"), f"/{table}"))

    # -- helpers ---------------------------------------------------------------------------

    def _context(self, session: Session, filters: views.Filters) -> dict[str, Any]:
        return {
            "user": session.user,
            "role": self._users.role(session.user),
            "may_act": self._users.configured and self._users.may_act(session.user),
            "users_configured": self._users.configured,
            "csrf": session.csrf,
            "filters": filters,
            "query": filters.query(),
            "poll_s": POLL_S,
            "words": _COMMAND_WORDS,
        }

    def _page(self, name: str, session: Session, filters: views.Filters, **extra: Any) -> str:
        return render(self._env, name, **self._context(session, filters), **extra)

    def _error(self, status: int, problem: str, session: Session) -> Response:
        page = self._page("error.html", session, views.Filters(), status=status, problem=problem)
        return html(status, page)

    def _cookie(self, session: Session) -> tuple[str, str]:
        value = (
            f"{COOKIE}={self._sessions.write(session)}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={self._sessions.max_age_s}"
        )
        return "Set-Cookie", value + ("; Secure" if self._secure else "")

    def _with_cookie(self, response: Response, session: Session) -> Response:
        return Response(
            response.status,
            response.body,
            response.content_type,
            (*response.headers, self._cookie(session)),
        )
