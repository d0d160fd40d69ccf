"""The console's pages and forms: alerts, actions, machines, stock, a decision's detail, dead
letters, rules, login; live rows as JSON; the buttons.

A button becomes the same command the MQTT command topic carries, handed to the daemon's ingest
thread through `ConsoleData.apply` (it stays the only writer), with `by` = the logged-in user.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote, urlencode

import structlog

from agent.app.deadletters import BrokerUnavailable, Resent
from agent.config import HttpSettings
from agent.errors import TransitionError
from agent.http.web import decisions, letters, plant, rules, views
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
from agent.http.web.auth import (
    COOKIE,
    ProxyAuth,
    Session,
    Sessions,
    Users,
    csrf_ok,
    new_session,
)
from agent.model import Fact
from agent.rulebook.rules import Rule
from agent.world.history import Reading

log = structlog.get_logger(__name__)

POLL_S = 3
REPROCESS = "/dead-letters/reprocess"
_COMMAND_PATH = re.compile(r"^/(alerts|actions)/(\d{1,18})/(ack|resolve|done|cancel)$")
_SUBJECT_PATH = re.compile(r"^/(machines|stock)/([^/]{1,200})/([^/]{1,200})$")
_DETAIL_PATH = re.compile(r"^/(alerts|actions|dead-letters)/(\d{1,18})$")
# Chart periods: the machine page's default and longest, the stock page's (hours).
MACHINE_HOURS = (4.0, 24.0 * 7)
STOCK_HOURS = (24.0 * 14, 24.0 * 90)
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

    def open_alerts(self, rule_ids: Sequence[str] = ()) -> list[dict[str, Any]]: ...

    def rule_alerts(self, rule_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def actions(self) -> list[dict[str, Any]]: ...

    def apply(self, command: str, target: str, id: int, by: str) -> dict[str, Any]: ...

    def facts(self) -> list[Fact]: ...

    def readings(self, kind: str, site: str, subject: str, since: datetime) -> list[Reading]: ...

    def find(self, table: str, id: int) -> dict[str, Any] | None: ...

    def rule(self, rule_id: str) -> Rule | None: ...

    def rules(self) -> rules.RulesState: ...

    def receipts(self) -> list[dict[str, Any]]: ...

    def dead_letters(self) -> list[dict[str, Any]]: ...

    def reprocess(self, ids: list[int]) -> list[Resent]: ...


class Console:
    """Handles one request at a time from any thread; it keeps no state but its settings."""

    def __init__(self, settings: HttpSettings, data: ConsoleData) -> None:
        self._data = data
        self._users = Users(settings.users)
        self._proxy = ProxyAuth(settings, self._users)
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
            "/machines": self._machines_page,
            "/stock": self._stock_page,
            "/api/machines": self._machines_rows,
            "/api/stock": self._stock_rows,
            "/dead-letters": self._letters_page,
            "/rules": self._rules_page,
            "/login": self._login_page,
        }

    def handles(self, path: str) -> bool:
        return (
            path in ("/", *self._pages, "/logout", REPROCESS)
            or path in self._static
            or _COMMAND_PATH.match(path) is not None
            or _SUBJECT_PATH.match(path) is not None
            or _DETAIL_PATH.match(path) is not None
        )

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path in self._static:
            body, content_type = self._static[request.path]
            return Response(HTTPStatus.OK, body, content_type, (("Cache-Control", "max-age=300"),))
        from_proxy = self._proxy.enabled and self._proxy.trusted(request.client)
        if not self._users.configured and not from_proxy and not request.from_loopback:
            # Nobody logs in, so nobody is known: only this machine sees the pages.
            return html(
                HTTPStatus.FORBIDDEN,
                "<!doctype html><title>403</title><p>The console answers other machines only "
                "once [http] users are configured; until then it is read-only on 127.0.0.1.</p>",
            )
        stored = self._sessions.read(request.cookie(COOKIE))
        session = stored or new_session()
        named = self._proxy.session(request.client, request.header(self._proxy.header), session)
        response = self._route(request, named or session)
        if stored is None and not any(k == "Set-Cookie" for k, _ in response.headers):
            response = self._with_cookie(response, session)  # a CSRF token for the first form
        return response

    def _route(self, request: Request, session: Session) -> Response:
        if request.method == "GET":
            if request.path == "/":
                return redirect("/alerts")
            page = self._pages.get(request.path)
            subject = _SUBJECT_PATH.match(request.path)
            detail = _DETAIL_PATH.match(request.path)
            if page is None and detail is not None:
                if detail[1] == "dead-letters":
                    return self._letter_page(request, session, int(detail[2]))
                return self._decision_page(request, session, detail[1], int(detail[2]))
            if page is None and subject is not None:
                site, name = unquote(subject[2]), unquote(subject[3])
                if subject[1] == "machines":
                    return self._machine_page(request, session, site, name)
                return self._item_page(request, session, site, name)
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
        if request.path == REPROCESS:
            return self._reprocess(request, session)
        match = _COMMAND_PATH.match(request.path)
        if match is None:
            return self._error(HTTPStatus.NOT_FOUND, "no such form", session)
        return self._command(request, session, match[1], int(match[2]), match[3])

    # -- pages -----------------------------------------------------------------------------

    def _alerts_page(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.alerts(self._alerts_for(filters), filters)
        return html(HTTPStatus.OK, self._page("alerts.html", session, filters, rows=rows))

    def _actions_page(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.actions(self._data.actions(), filters)
        totals = views.supplier_totals(rows)  # of the open reorders these filters keep
        page = self._page("actions.html", session, filters, rows=rows, totals=totals)
        return html(HTTPStatus.OK, page)

    def _alerts_rows(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.alerts(self._alerts_for(filters), filters)
        return self._rows("alert_rows.html", session, filters, rows)

    def _actions_rows(self, request: Request, session: Session) -> Response:
        filters = views.Filters.of(request.query)
        rows = views.actions(self._data.actions(), filters)
        return self._rows("action_rows.html", session, filters, rows)

    def _machines_page(self, request: Request, session: Session) -> Response:
        reliable = plant.reliability(self._data.rule_alerts(plant.DOWN_RULES))
        rows = plant.machines(self._data.facts(), datetime.now(UTC), reliable)
        return html(HTTPStatus.OK, self._page("machines.html", session, views.Filters(), rows=rows))

    def _stock_page(self, request: Request, session: Session) -> Response:
        rows = plant.stock(self._data.facts())
        return html(HTTPStatus.OK, self._page("stock.html", session, views.Filters(), rows=rows))

    def _machines_rows(self, request: Request, session: Session) -> Response:
        reliable = plant.reliability(self._data.rule_alerts(plant.DOWN_RULES))
        rows = plant.machines(self._data.facts(), datetime.now(UTC), reliable)
        return self._plant_rows("machine_rows.html", session, rows, "down")

    def _stock_rows(self, request: Request, session: Session) -> Response:
        return self._plant_rows("stock_rows.html", session, plant.stock(self._data.facts()), "low")

    def _plant_rows(
        self, name: str, session: Session, rows: list[dict[str, Any]], counted: str
    ) -> Response:
        context = self._context(session, views.Filters())
        body = {
            "html": render(self._env, name, rows=rows, **context),
            "open": sum(1 for row in rows if row.get(counted) or row.get("state") == counted),
            "ids": [f"{row['site']}/{row.get('machine') or row.get('sku')}" for row in rows],
        }
        return json_response(json.dumps(body).encode())

    def _machine_page(self, request: Request, session: Session, site: str, name: str) -> Response:
        fact = self._fact("machine", site, name)
        if fact is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no machine {name} at {site}", session)
        end = datetime.now(UTC)
        hours = plant.hours_of(request.query, *MACHINE_HOURS)
        start = end - timedelta(hours=hours)
        readings = self._data.readings("machine", site, name, start)
        (row,) = plant.machines(
            [fact], end, plant.reliability(self._data.rule_alerts(plant.DOWN_RULES))
        )
        page = self._page(
            "machine.html",
            session,
            views.Filters(),
            row=row,
            fact=fact,
            hours=hours,
            charts=plant.machine_charts(fact, readings, start, end),
        )
        return html(HTTPStatus.OK, page)

    def _item_page(self, request: Request, session: Session, site: str, name: str) -> Response:
        fact = self._fact("stock", site, name)
        if fact is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no SKU {name} at {site}", session)
        end = datetime.now(UTC)
        hours = plant.hours_of(request.query, *STOCK_HOURS)
        start = end - timedelta(hours=hours)
        readings = self._data.readings("stock", site, name, start)
        (row,) = plant.stock([fact])
        chart = plant.stock_chart(fact, readings, start, end, self._data.receipts())
        page = self._page("item.html", session, views.Filters(), row=row, hours=hours, chart=chart)
        return html(HTTPStatus.OK, page)

    def _decision_page(self, request: Request, session: Session, table: str, id: int) -> Response:
        target = "alert" if table == "alerts" else "action"
        row = self._data.find(target, id)
        if row is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no {target} {id}", session)
        state = self._data.rules()
        why = decisions.explanation(
            row, self._data.rule(str(row.get("rule_id"))), state.ruleset.hash, state.loads
        )
        shown = (views.alerts if target == "alert" else views.actions)(
            [row], views.Filters(status="all")
        )
        history = decisions.episodes(row, self._data.alerts()) if target == "alert" else []
        page = self._page(
            "decision.html",
            session,
            views.Filters(),
            table=table,
            target=target,
            row=shown[0],
            stored=row,
            why=why,
            episodes=history,
        )
        return html(HTTPStatus.OK, page)

    def _letters_page(self, request: Request, session: Session) -> Response:
        filters = letters.LetterFilters.of(request.query)
        stored = self._data.dead_letters()
        rows = letters.letters(stored, filters)
        page = self._page(
            "dead_letters.html",
            session,
            views.Filters(),
            rows=rows,
            total=len(stored),
            letter_filters=filters,
            letter_query=filters.query(),
            done=(request.query.get("done") or [""])[0][:300],
        )
        return html(HTTPStatus.OK, page)

    def _letter_page(self, request: Request, session: Session, id: int) -> Response:
        row = next((r for r in self._data.dead_letters() if r.get("id") == id), None)
        if row is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no dead letter {id} (re-sent?)", session)
        page = self._page("dead_letter.html", session, views.Filters(), row=letters.letter(row))
        return html(HTTPStatus.OK, page)

    def _rules_page(self, request: Request, session: Session) -> Response:
        state = self._data.rules()
        shown = rules.view(state, self._data.open_alerts(rules.ALERT_RULES))
        return html(HTTPStatus.OK, self._page("rules.html", session, views.Filters(), **shown))

    def _alerts_for(self, filters: views.Filters) -> list[dict[str, Any]]:
        """Open rows only when only open ones are shown: the history is not read every 3 s."""
        return self._data.open_alerts() if filters.status == "open" else self._data.alerts()

    def _fact(self, kind: str, site: str, subject: str) -> Fact | None:
        return next(
            (
                f
                for f in self._data.facts()
                if f.kind == kind and f.site == site and f.subject == subject
            ),
            None,
        )

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
        refused = self._refuse_viewer(session, command)
        if refused is not None:
            return refused
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

    def _reprocess(self, request: Request, session: Session) -> Response:
        """Publish the chosen dead letters again, as `factory-agent dead-letters reprocess`."""
        refused = self._refuse_viewer(session, "re-process")
        if refused is not None:
            return refused
        ids = letters.ids_of(request.form.get("id") or [])
        if not ids:
            problem = "choose the dead letters to re-process"
            return self._error(HTTPStatus.BAD_REQUEST, problem, session)
        try:
            outcomes = self._data.reprocess(ids)
        except BrokerUnavailable as exc:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), session)
        sent = [o for o in outcomes if o.sent]
        kept = [o for o in outcomes if not o.sent]
        log.info(
            "console_reprocessed",
            user=session.user,
            sent=[o.id for o in sent],
            kept=[o.id for o in kept],
        )
        done = f"re-sent {len(sent)} of {len(ids)}"
        if kept:
            done += "; kept " + ", ".join(f"#{o.id} ({o.problem or 'not found'})" for o in kept)
        back = safe_back(request.field("back"), "/dead-letters")
        if back.startswith("/dead-letters/"):  # the letter's own page: gone once re-sent
            back = "/dead-letters"
        joiner = "&" if "?" in back else "?"
        return redirect(f"{back}{joiner}{urlencode({'done': done})}")

    def _refuse_viewer(self, session: Session, doing: str) -> Response | None:
        if not self._acting_configured:
            return self._error(
                HTTPStatus.FORBIDDEN, "read-only: no users are configured ([http] users)", session
            )
        if not self._may_act(session):
            who = f"{session.user} is a viewer" if session.user else "log in first"
            log.warning("console_command_refused", user=session.user, command=doing)
            return self._error(HTTPStatus.FORBIDDEN, f"only operators may {doing}: {who}", session)
        return None

    @property
    def _acting_configured(self) -> bool:
        return self._users.configured or self._proxy.enabled

    def _may_act(self, session: Session) -> bool:
        if session.proxy_role:
            return session.proxy_role == "operator"
        return self._users.may_act(session.user)

    # -- helpers ---------------------------------------------------------------------------

    def _context(self, session: Session, filters: views.Filters) -> dict[str, Any]:
        return {
            "user": session.user,
            "role": session.proxy_role or self._users.role(session.user),
            "may_act": self._acting_configured and self._may_act(session),
            "users_configured": self._users.configured,
            "by_proxy": bool(session.proxy_role),
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
