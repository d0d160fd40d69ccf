"""Who may do what on the console: users with argon2 password hashes, signed session cookies
(itsdangerous) that carry the user and a CSRF token, and the role check of each command; or,
as an option, the user a trusted reverse proxy names in a header (`ProxyAuth`).

`python -m agent.http.web.auth` prints the hash of a password read from standard input.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from agent.config import HttpSettings, HttpUser

COOKIE = "factory_agent_session"
_SALT = "factory-agent-console-session"
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the name is unknown, so a wrong name costs as long as a wrong password.
    Made at the first login, not at import: argon2 takes 64 MiB for it (the agent's peak RSS
    went from 87 to 152 MB), and most agents never serve a login."""
    return _HASHER.hash("not a password anyone has")


@dataclass(frozen=True, slots=True)
class Session:
    """What the cookie carries: the logged-in user ("" before login) and the CSRF token."""

    user: str
    csrf: str
    # The role a trusted proxy's user has for this one request (never written to the cookie).
    proxy_role: str = ""


class Users:
    """The configured users; with none, the console is read-only and nobody logs in."""

    def __init__(self, users: Sequence[HttpUser]) -> None:
        self._by_name = {user.name: user for user in users}

    @property
    def configured(self) -> bool:
        return bool(self._by_name)

    def check(self, name: str, password: str) -> HttpUser | None:
        """The user when the password matches its hash, else None (never says which was wrong)."""
        user = self._by_name.get(name)
        try:
            _HASHER.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        return user

    def may_act(self, name: str) -> bool:
        """Operators acknowledge, resolve, close and cancel; viewers and strangers only look."""
        user = self._by_name.get(name)
        return user is not None and user.role == "operator"

    def role(self, name: str) -> str:
        user = self._by_name.get(name)
        return user.role if user else ""


class ProxyAuth:
    """`http.auth_header` from `http.trusted_proxies` only: a header from any other address
    is ignored (anyone can send one). Off when no header is configured."""

    def __init__(self, settings: HttpSettings, users: Users) -> None:
        self.header = settings.auth_header.strip()
        self._role = settings.auth_header_role
        self._users = users
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]

    @property
    def enabled(self) -> bool:
        return bool(self.header and self._trusted)

    def trusted(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def session(self, client: str, value: str | None, session: Session) -> Session | None:
        """The request's session as the user the proxy names (a named user of `users` keeps
        its role), or None: no header, or not from a trusted proxy."""
        name = (value or "").strip()
        if not self.enabled or not name or len(name) > 200 or not self.trusted(client):
            return None
        return Session(name, session.csrf, self._users.role(name) or self._role)


class Sessions:
    """Signs and reads session cookies; a cookie older than `max_age_s` or forged is no session."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age_s = max_age_s

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user, csrf = data.get("user"), data.get("csrf")
        if not isinstance(user, str) or not isinstance(csrf, str) or not csrf:
            return None
        return Session(user, csrf)

    def write(self, session: Session) -> str:
        return str(self._serializer.dumps({"user": session.user, "csrf": session.csrf}))


def new_session(user: str = "") -> Session:
    """A fresh session: a new CSRF token at every login, so an old page's token stops working."""
    return Session(user, secrets.token_urlsafe(24))


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return session is not None and token is not None and hmac.compare_digest(session.csrf, token)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def main() -> int:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("give the password on standard input", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
