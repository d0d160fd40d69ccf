"""Settings: defaults < config/agent.toml < AGENT_<SECTION>__<KEY>; errors a person can act on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from agent.config import Settings, load_settings
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "agent.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(config_file: Path | None = None, **environ: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file, environ)
    message = str(caught.value)
    assert "pydantic" not in message and "validation error" not in message.lower()
    return message


def test_without_a_file_the_defaults_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings == Settings()
    assert (settings.mqtt.port, settings.mqtt.client_id) == (1883, "factory-agent")
    assert settings.database.url == "sqlite:///data/agent.db"
    assert settings.database.sqlite_synchronous == "FULL"
    assert settings.masterdata.items == Path("config/items.yaml")
    assert (settings.log.level, settings.log.format) == ("info", "auto")


def test_config_agent_toml_in_the_current_directory_is_used_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "agent.toml").write_text("[mqtt]\nport = 18830\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).mqtt.port == 18830


def test_the_file_overrides_defaults_and_the_environment_overrides_the_file(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, '[mqtt]\nport = 18830\nhost = "broker"\n[ingest]\nbatch_size = 50\n')
    settings = load_settings(path, {"AGENT_MQTT__PORT": "18831", "AGENT_LOG__LEVEL": "debug"})
    assert settings.mqtt.port == 18831  # environment
    assert settings.mqtt.host == "broker"  # file
    assert settings.ingest.batch_size == 50  # file
    assert settings.ingest.batch_wait_ms == 20  # default
    assert settings.log.level == "debug"


def test_environment_names_are_case_insensitive_and_values_are_converted() -> None:
    settings = load_settings(
        None,
        {
            "agent_mqtt__port": "1884",
            "AGENT_Database__Url": "sqlite:///x.db",
            "AGENT_MQTT__RECONNECT_MAX_S": "2.5",
            "AGENT_DATABASE__SQLITE_SYNCHRONOUS": "normal",
        },
    )
    assert settings.mqtt.port == 1884
    assert settings.database.url == "sqlite:///x.db"
    assert settings.mqtt.reconnect_max_s == 2.5
    assert settings.database.sqlite_synchronous == "NORMAL"


def test_agent_variables_without_a_double_underscore_are_left_to_others() -> None:
    environ = {"AGENT_TEST_POSTGRES_URL": "postgresql://x", "AGENT_HOME": "/x", "PATH": "/bin"}
    assert load_settings(None, environ) == load_settings(None, {})


def test_unknown_key_in_a_known_section_from_the_environment_is_named() -> None:
    message = refused(AGENT_MQTT__PROT="1884")
    assert message.startswith("AGENT_MQTT__PROT: [mqtt] has no key 'prot'")
    assert "did you mean 'port'?" in message


def test_unknown_section_from_the_environment_is_named() -> None:
    assert refused(AGENT_MQQT__PORT="1884").startswith(
        "AGENT_MQQT__PORT: no settings section 'mqqt' (did you mean 'mqtt'?"
    )


def test_unknown_section_or_key_in_the_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nhots = 'x'\n")
    assert refused(path).startswith(f"{path}: [mqtt] has no key 'hots' (did you mean 'host'?")
    path = write(tmp_path, "[smtp]\nhost = 'x'\n")
    assert refused(path).startswith(f"{path}: no settings section 'smtp'")
    path = write(tmp_path, "port = 1883\n")
    assert refused(path).startswith(f"{path}: no settings section 'port'")


def test_wrong_type_names_key_value_and_source() -> None:
    assert refused(AGENT_MQTT__PORT="abc") == (
        "mqtt.port: expected an integer, got 'abc' (from AGENT_MQTT__PORT)"
    )


def test_wrong_type_in_the_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[ingest]\nbatch_size = "many"\n[mqtt]\nclient_id = 7\n')
    message = refused(path)
    assert f"ingest.batch_size: expected an integer, got 'many' (from {path})" in message
    assert f"mqtt.client_id: expected text, got 7 (from {path})" in message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[mqtt]\nport = true", "mqtt.port: expected an integer, got True"),
        ("[mqtt]\nport = 0", "mqtt.port: must be at least 1, got 0"),
        ("[mqtt]\nport = 70000", "mqtt.port: must be at most 65535, got 70000"),
        ("[mqtt]\nqueue_size = 0", "mqtt.queue_size: must be greater than 0, got 0"),
        ("[mqtt]\nreconnect_min_s = nan", "mqtt.reconnect_min_s: expected a finite number"),
        ("[mqtt]\ntopic_prefix = 'a/#'", "mqtt.topic_prefix: every topic level must be"),
        ("[ingest]\nmax_payload_bytes = -1", "ingest.max_payload_bytes: must be greater than 0"),
        ("[database]\nsqlite_synchronous = 'FAST'", "database.sqlite_synchronous: expected one"),
        ("[log]\nlevel = 'verbose'", "log.level: expected one of 'debug', 'info'"),
        ("[log]\nformat = 'xml'", "log.format: expected one of 'auto', 'json' or 'console'"),
    ],
)
def test_values_out_of_range_are_refused_with_the_key(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert refused(write(tmp_path, toml + "\n")).startswith(expected)


def test_backoff_maximum_below_minimum_is_refused() -> None:
    message = refused(AGENT_MQTT__RECONNECT_MIN_S="5", AGENT_MQTT__RECONNECT_MAX_S="2")
    assert message == "mqtt.reconnect_max_s (2.0) is below mqtt.reconnect_min_s (5.0)"


def test_every_problem_is_reported_at_once() -> None:
    message = refused(AGENT_MQTT__PORT="x", AGENT_INGEST__BATCH_SIZE="y")
    assert len(message.splitlines()) == 2


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "a"\nport = = 3\n')
    assert re.match(rf"{re.escape(str(path))}:3: invalid TOML: .+ \(column \d+\)$", refused(path))


def test_a_missing_settings_file_given_explicitly_is_an_error(tmp_path: Path) -> None:
    assert refused(tmp_path / "nope.toml") == f"{tmp_path / 'nope.toml'}: settings file not found"


def test_password_is_read_from_a_password_file_without_its_newline(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt_password"
    secret.write_text("s3cret\n", encoding="utf-8")
    settings = load_settings(None, {"AGENT_MQTT__PASSWORD_FILE": str(secret)})
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "s3cret"
    assert settings.mqtt.password_file == secret


def test_an_unreadable_password_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert refused(AGENT_MQTT__PASSWORD_FILE=str(missing)) == (
        f"mqtt.password_file: cannot read {str(missing)!r}: No such file or directory "
        "(from AGENT_MQTT__PASSWORD_FILE)"
    )
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    assert "is empty" in refused(AGENT_MQTT__PASSWORD_FILE=str(empty))


def test_password_and_password_file_together_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a", encoding="utf-8")
    path = write(tmp_path, f'[mqtt]\npassword_file = "{secret}"\n')
    message = refused(path, AGENT_MQTT__PASSWORD="b")
    assert "mqtt.password (from AGENT_MQTT__PASSWORD)" in message
    assert f"mqtt.password_file (from {path})" in message


def test_secrets_never_show_in_repr_str_or_errors(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "AGENT_MQTT__PASSWORD": "hunter2",
            "AGENT_DATABASE__URL": "postgresql+psycopg://agent:pg-secret@db:5432/agent",
        },
    )
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "hunter2"
    assert settings.database.url.endswith("agent:pg-secret@db:5432/agent")  # usable as is
    for shown in (repr(settings), str(settings), repr(settings.mqtt), str(settings.database)):
        assert "hunter2" not in shown and "pg-secret" not in shown
    assert "postgresql+psycopg://agent:***@db:5432/agent" in repr(settings)
    path = write(tmp_path, "[mqtt]\npassword = 123456\n")
    message = refused(path)
    assert message.startswith("mqtt.password: expected text, got <hidden>")
    assert "123456" not in message


def test_empty_optional_value_from_the_environment_means_none() -> None:
    assert load_settings(None, {"AGENT_MQTT__USERNAME": ""}).mqtt.username is None


def test_settings_are_frozen() -> None:
    settings = load_settings(None, {})
    with pytest.raises(ValueError, match="frozen"):
        settings.mqtt.port = 1  # type: ignore[misc]


def test_describe_lists_every_key_with_its_type_and_default() -> None:
    rows = {key: (kind, default) for key, kind, default in Settings.describe()}
    assert len(rows) == 74
    assert rows["mqtt.port"] == ("integer", "1883")
    assert rows["mqtt.password"] == ("secret", "none")
    assert rows["mqtt.reconnect_max_s"] == ("number", "30.0")
    assert rows["database.sqlite_synchronous"] == ("OFF|NORMAL|FULL|EXTRA", "FULL")
    assert rows["masterdata.machines"] == ("path", "config/machines.yaml")
    defaults = Settings()
    for key, (_, default) in rows.items():
        section, name = key.split(".")
        value = getattr(getattr(defaults, section), name)
        assert default == ("none" if value is None else str(value)), key


def test_sample_file_holds_the_defaults_and_documents_every_key() -> None:
    assert load_settings(SAMPLE, {}) == Settings()
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    section = ""
    documented: set[str] = set()
    for number, text in enumerate(lines):
        if text.startswith("["):
            section = text.strip("[]")
        found = re.match(r"^(?:# )?([a-z_]+) = ", text)
        if found and lines[number - 1].startswith("#"):
            documented.add(f"{section}.{found[1]}")
    assert documented == {key for key, _, _ in Settings.describe()}
    assert set(tomllib.loads(SAMPLE.read_text(encoding="utf-8"))) == set(Settings.model_fields)
