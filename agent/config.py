"""The agent's settings: defaults, overlaid by `config/agent.toml`, overlaid by `AGENT_*` variables.

Every problem becomes one `ConfigError` naming the dotted key, the bad value and where it came from.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from agent.errors import ConfigError

DEFAULT_CONFIG_FILE: Final = Path("config/agent.toml")
ENV_PREFIX: Final = "AGENT_"
_SECRET_KEYS: Final = frozenset(
    {"mqtt.password", "notify.channels", "http.users", "http.session_secret"}
)


def _refuse_bool(expected: str) -> BeforeValidator:
    # pydantic's lax mode reads `true` as 1: a switch where a number belongs is a mistake.
    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(expected)
        return value

    return BeforeValidator(check)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Int = Annotated[int, _refuse_bool("expected an integer")]
Number = Annotated[float, _refuse_bool("expected a number"), Field(allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1)]
Synchronous = Annotated[Literal["OFF", "NORMAL", "FULL", "EXTRA"], BeforeValidator(_upper)]
Level = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)]
Format = Annotated[Literal["auto", "json", "console"], BeforeValidator(_lower)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class MqttSettings(_Section):
    host: Text = "127.0.0.1"
    port: Annotated[Int, Field(ge=1, le=65535)] = 1883
    client_id: Text = "factory-agent"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    topic_prefix: Text = "factory"
    sites: str = ""
    keepalive_s: Annotated[Int, Field(ge=1, le=65535)] = 30
    session_expiry_s: Annotated[Int, Field(ge=1, le=4_294_967_295)] = 604_800
    queue_size: Annotated[Int, Field(gt=0)] = 10_000
    reconnect_min_s: Annotated[Number, Field(gt=0)] = 1.0
    reconnect_max_s: Annotated[Number, Field(gt=0)] = 30.0
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_insecure: bool = False

    @property
    def tls_enabled(self) -> bool:
        """TLS is on when asked for, or when any of its files is given."""
        return self.tls or any(
            path is not None for path in (self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        )

    @model_validator(mode="after")
    def _client_certificate_pair(self) -> MqttSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "mqtt.tls_cert_file and mqtt.tls_key_file go together: set both or neither"
            )
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _topic_levels(cls, value: str) -> str:
        if any(not level or {"+", "#", "\0"} & set(level) for level in value.split("/")):
            raise ValueError(
                "every topic level must be non-empty and free of '+', '#' "
                "(for example 'factory' or 'acme/plant1')"
            )
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttSettings:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(
                f"mqtt.reconnect_max_s ({self.reconnect_max_s}) is below "
                f"mqtt.reconnect_min_s ({self.reconnect_min_s})"
            )
        return self


class DatabaseSettings(_Section):
    url: Text = "sqlite:///data/agent.db"
    sqlite_synchronous: Synchronous = "FULL"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A PostgreSQL URL may carry a password: never show it.
        yield "url", redact_url(self.url)
        yield "sqlite_synchronous", self.sqlite_synchronous


class RulesSettings(_Section):
    path: Path = Path("rules")
    tick_s: Annotated[Number, Field(gt=0)] = 30.0
    watch: bool = True
    watch_interval_s: Annotated[Number, Field(gt=0)] = 1.0
    engine: Literal["process", "inline"] = "process"
    engine_deadline_s: Annotated[Number, Field(gt=0)] = 10.0


class MasterDataSettings(_Section):
    items: Path = Path("config/items.yaml")
    machines: Path = Path("config/machines.yaml")


class IngestSettings(_Section):
    batch_size: Annotated[Int, Field(gt=0)] = 500
    batch_wait_ms: Annotated[Int, Field(ge=0)] = 20
    max_payload_bytes: Annotated[Int, Field(gt=0)] = 65_536
    dedup_window: Annotated[Int, Field(gt=0)] = 100_000
    max_topic_level_chars: Annotated[Int, Field(gt=0)] = 128
    unknown_subjects: Literal["accept", "dead_letter"] = "accept"
    unknown_subjects_max: Annotated[Int, Field(ge=0)] = 10_000
    # Sites (topic level 2) in the world at most, unless mqtt.sites lists them.
    sites_max: Annotated[Int, Field(ge=1)] = 100
    # Input mappings (a plant's own topics and payloads, docs/inputs.md); a missing file, or one
    # that maps nothing, leaves the built-in topic scheme alone.
    inputs_file: Path | None = Path("config/inputs.yaml")


class DaemonSettings(_Section):
    stop_timeout_s: Annotated[Number, Field(gt=0)] = 10.0
    site: Text = "local"


class InventorySettings(_Section):
    on_order_source: Literal["max", "agent", "erp", "sum"] = "max"
    usage_half_life_days: Annotated[Number, Field(gt=0)] = 7.0
    usage_min_days: Annotated[Number, Field(ge=0)] = 1.0
    jump_share: Annotated[Number, Field(gt=0)] = 0.5
    reorder_sync_s: Annotated[Number, Field(gt=0)] = 60.0
    max_reorder_factor: Annotated[Number, Field(gt=0)] = 10.0


class HistorySettings(_Section):
    """The readings table: each subject's metrics downsampled per `resolution_s` seconds.

    Off by default: it is for the console (machine and stock charts; averages and trends that
    survive a restart) and makes each batch's commit about 4x slower (SQLite, 500 messages:
    16 -> 67 ms, bench/history.py)."""

    enabled: bool = False
    retention_days: Annotated[Number, Field(gt=0)] = 7.0
    resolution_s: Annotated[Int, Field(ge=1, le=86_400)] = 60
    prune_every_s: Annotated[Number, Field(gt=0)] = 3600.0


class LogSettings(_Section):
    level: Level = "info"
    format: Format = "auto"


def _split_names(value: Any) -> Any:
    # From the environment a list arrives as "alice,bob".
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


def _json_text(value: Any) -> Any:
    # From the environment a table or list arrives as JSON text.
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        import json

        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    return value


Names = Annotated[list[str], BeforeValidator(_split_names)]
_QUIET_HOURS: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class RouteSettings(_Section):
    """Which decisions go to which channels: every route that matches sends (no first-match)."""

    name: Text
    channels: Annotated[list[Text], Field(min_length=1)]
    severity: list[Literal["info", "warning", "critical"]] = []
    kind: list[Literal["alert", "reorder", "work_order", "idle_capacity"]] = []
    site: list[Text] = []
    rule: list[Text] = []
    tags: list[Text] = []
    send_resolved: bool = True
    quiet_hours: str | None = None
    timezone: Text = "UTC"
    group_window_s: Annotated[Number, Field(ge=0)] = 0.0
    digest_cron: str | None = None
    # Episodes that began and ended in late data (a gateway's backfill): one summary message
    # per batch ("digest") or a firing and a resolved message each, as live ("page").
    late_episodes: Literal["digest", "page"] = "digest"

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None and not _QUIET_HOURS.match(value):
            raise ValueError("expected HH:MM-HH:MM in the route's timezone, e.g. '22:00-06:00'")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. 'Europe/Berlin')") from exc
        return value

    @field_validator("digest_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from agent.rulebook.timing import crontab_trigger

        try:
            crontab_trigger(value)
        except ValueError as exc:
            raise ValueError(f"not a crontab line (minute hour day month weekday): {exc}") from exc
        return value


class NotifySettings(_Section):
    # name -> apprise URL; `${NAME}` in a URL is read from the environment when sending.
    channels: Annotated[dict[str, Text], BeforeValidator(_json_text)] = {}
    routes: Annotated[list[RouteSettings], BeforeValidator(_json_text)] = []
    publish_mqtt: bool = True
    retry_min_s: Annotated[Number, Field(gt=0)] = 5.0
    retry_max_s: Annotated[Number, Field(gt=0)] = 900.0
    max_attempts: Annotated[Int, Field(ge=1)] = 12
    poll_s: Annotated[Number, Field(gt=0)] = 1.0
    claim_s: Annotated[Number, Field(gt=0)] = 120.0
    # An alert is late when it fired (or resolved) this long before it was stored: its data
    # arrived late. A late firing waits `late_hold_s` so that, when the same backfill resolves
    # it, nobody is paged for what is over (see routes' `late_episodes`).
    late_after_s: Annotated[Number, Field(ge=0)] = 300.0
    late_hold_s: Annotated[Number, Field(ge=0)] = 30.0

    @model_validator(mode="after")
    def _routes_name_channels(self) -> NotifySettings:
        names: set[str] = set()
        for route in self.routes:
            if route.name in names:
                raise ValueError(f"notify.routes: two routes are named {route.name!r}")
            names.add(route.name)
            for channel in route.channels:
                if channel not in self.channels:
                    known = ", ".join(self.channels) or "none defined"
                    raise ValueError(
                        f"notify.routes: route {route.name!r} sends to unknown channel "
                        f"{channel!r} (notify.channels: {known})"
                    )
        if "mqtt" in self.channels:
            raise ValueError("notify.channels: 'mqtt' is reserved for the agent's publications")
        return self


class HttpUser(_Section):
    """One person of the console: `password_hash` is an argon2 hash (`factory-agent` never
    stores a password; make one with `python -m agent.http.web.auth`)."""

    name: Text
    role: Literal["viewer", "operator"] = "viewer"
    password_hash: Annotated[str, Field(pattern=r"^\$argon2(id|i|d)\$")]


class HttpSettings(_Section):
    enabled: bool = False
    host: Text = "127.0.0.1"
    port: Annotated[Int, Field(ge=1, le=65535)] = 9464
    max_message_age_s: Annotated[Number, Field(ge=0)] = 300.0
    # The console's pages next to /healthz, /readyz and /metrics (read-only without users).
    pages: bool = False
    users: Annotated[list[HttpUser], BeforeValidator(_json_text)] = []
    # Signs the session cookies; empty: a random one per start (everyone logs in again).
    session_secret: SecretStr | None = None
    session_max_age_s: Annotated[Int, Field(gt=0)] = 43_200
    # Where people reach the console (e.g. https://agent.plant1.example); links use it.
    public_url: str = ""
    # Behind a reverse proxy that logs people in: the header naming the user (e.g.
    # X-Forwarded-User), honoured only from `trusted_proxies` (addresses or networks). A named
    # user of `users` keeps its role; anyone else the proxy names gets `auth_header_role`.
    auth_header: str = ""
    auth_header_role: Literal["viewer", "operator"] = "viewer"
    trusted_proxies: Names = []

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {entry!r} is no address or network") from exc
        return value

    @field_validator("users")
    @classmethod
    def _unique_names(cls, value: list[HttpUser]) -> list[HttpUser]:
        names = [user.name for user in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"user names must be unique; twice: {', '.join(twice)}")
        return value


class CommandsSettings(_Section):
    # Names allowed in a command's `by` (empty: everyone the broker lets publish commands).
    allowed_by: Names = []


class Settings(_Section):
    mqtt: MqttSettings = MqttSettings()
    database: DatabaseSettings = DatabaseSettings()
    rules: RulesSettings = RulesSettings()
    masterdata: MasterDataSettings = MasterDataSettings()
    ingest: IngestSettings = IngestSettings()
    inventory: InventorySettings = InventorySettings()
    history: HistorySettings = HistorySettings()
    log: LogSettings = LogSettings()
    notify: NotifySettings = NotifySettings()
    commands: CommandsSettings = CommandsSettings()
    http: HttpSettings = HttpSettings()
    daemon: DaemonSettings = DaemonSettings()

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(dotted key, type, default) for every setting, in declaration order."""
        rows: list[tuple[str, str, str]] = []
        for section in cls.model_fields:
            for key, key_field in _section_model(section).model_fields.items():
                default = key_field.default
                shown = "none" if default is None else str(default)
                rows.append((f"{section}.{key}", _type_name(key_field.annotation), shown))
        return rows


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, for logs and repr."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", url)


def _type_name(annotation: Any) -> str:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Annotated:
        return _type_name(args[0])
    if get_origin(annotation) is Literal:
        return "|".join(str(a) for a in args)
    if args:  # X | None
        return _type_name(args[0])
    names = {int: "integer", float: "number", str: "string", Path: "path", SecretStr: "secret"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults < the TOML file < `AGENT_<SECTION>__<KEY>` variables; raise ConfigError."""
    env = os.environ if environ is None else environ
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    raw: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    if config_file is not None:
        _overlay_file(raw, sources, config_file)
    _overlay_environment(raw, sources, env)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, raw, sources)) from exc
    return _with_password_file(settings, sources)


def _section_model(section: str) -> type[BaseModel]:
    model = Settings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def _known_keys(section: str) -> list[str]:
    return list(_section_model(section).model_fields)


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{what} {name!r} ({hint}known: {', '.join(known)})"


def _overlay_file(raw: dict[str, dict[str, Any]], sources: dict[str, str], path: Path) -> None:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: settings file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the settings file is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(path, str(exc))) from exc
    sections = list(Settings.model_fields)
    for section, table in document.items():
        if section not in Settings.model_fields:
            raise ConfigError(f"{path}: {_unknown('no settings section', section, sections)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}]), got {table!r}")
        known = _known_keys(section)
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"{path}: {_unknown(f'[{section}] has no key', key, known)}")
            raw.setdefault(section, {})[key] = value
            sources[f"{section}.{key}"] = f"from {path}"


def _toml_problem(path: Path, message: str) -> str:
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if not found:
        return f"{path}: invalid TOML: {message}"
    reason = message[: found.start()]
    return f"{path}:{found[1]}: invalid TOML: {reason} (column {found[2]})"


def _overlay_environment(
    raw: dict[str, dict[str, Any]], sources: dict[str, str], env: Mapping[str, str]
) -> None:
    sections = list(Settings.model_fields)
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue  # e.g. AGENT_TEST_POSTGRES_URL belongs to the tests, not to the settings
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in Settings.model_fields:
            raise ConfigError(f"{name}: {_unknown('no settings section', section, sections)}")
        known = _known_keys(section)
        if key not in known:
            raise ConfigError(f"{name}: {_unknown(f'[{section}] has no key', key, known)}")
        value: str | None = env[name]
        if value == "" and _section_model(section).model_fields[key].default is None:
            value = None  # `AGENT_MQTT__USERNAME=` means "no user", as in a compose file
        raw.setdefault(section, {})[key] = value
        sources[f"{section}.{key}"] = f"from {name}"


_REASONS: Final = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "string_type": "expected text",
    "string_too_short": "must not be empty",
    "path_type": "expected a path",
    "dict_type": "expected a table",
    "model_type": "expected a table",
}


def _explain(exc: ValidationError, raw: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    return "\n".join(_explain_one(error, raw, sources) for error in exc.errors())


def _explain_one(error: ErrorDetails, raw: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    loc = [str(part) for part in error["loc"]]
    dotted = ".".join(loc)
    reason = _reason(error)
    if len(loc) < 2:  # a check across keys of one section: its message names them
        return reason
    value = raw.get(loc[0], {}).get(loc[1])
    shown = "<hidden>" if dotted in _SECRET_KEYS else repr(value)
    source = sources.get(dotted, "default")
    return f"{dotted}: {reason}, got {shown} ({source})"


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind in _REASONS:
        return _REASONS[kind]
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '')}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"must be {words} {ctx.get(name)}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"]


def _with_password_file(settings: Settings, sources: Mapping[str, str]) -> Settings:
    mqtt = settings.mqtt
    if mqtt.password_file is None:
        return settings
    where = sources.get("mqtt.password_file", "default")
    if mqtt.password is not None:
        raise ConfigError(
            f"mqtt.password ({sources.get('mqtt.password', 'default')}) and "
            f"mqtt.password_file ({where}) are both set: keep one"
        )
    try:
        secret = mqtt.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"mqtt.password_file: cannot read {str(mqtt.password_file)!r}: {why} ({where})"
        ) from exc
    if not secret:
        raise ConfigError(f"mqtt.password_file: {str(mqtt.password_file)!r} is empty ({where})")
    updated = mqtt.model_copy(update={"password": SecretStr(secret)})
    return settings.model_copy(update={"mqtt": updated})
