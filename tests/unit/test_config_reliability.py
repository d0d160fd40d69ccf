"""The settings added for reliability and security: TLS, the engine's placement, stop deadline."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.app.daemon import tls_options
from agent.config import Settings, load_settings
from agent.errors import ConfigError


def test_tls_is_off_by_default_and_on_with_any_file(tmp_path: Path) -> None:
    assert tls_options(Settings().mqtt) is None
    settings = load_settings(None, {"AGENT_MQTT__TLS_CA_FILE": str(tmp_path / "ca.pem")})
    options = tls_options(settings.mqtt)
    assert options is not None and options.ca_file == tmp_path / "ca.pem"
    assert options.insecure is False  # verification stays on unless asked


def test_a_client_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls_cert_file and mqtt\.tls_key_file go together"):
        load_settings(None, {"AGENT_MQTT__TLS_CERT_FILE": str(tmp_path / "client.pem")})


def test_engine_placement_and_stop_deadline_are_validated() -> None:
    assert Settings().rules.engine == "process"
    assert Settings().daemon.stop_timeout_s == 10.0
    with pytest.raises(ConfigError, match=r"rules\.engine"):
        load_settings(None, {"AGENT_RULES__ENGINE": "thread"})
    with pytest.raises(ConfigError, match=r"daemon\.stop_timeout_s"):
        load_settings(None, {"AGENT_DAEMON__STOP_TIMEOUT_S": "0"})


def test_the_password_from_the_environment_never_shows_in_the_settings() -> None:
    settings = load_settings(None, {"AGENT_MQTT__PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in str(settings)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"AGENT_MQTT__PASSWORD": "hunter2-secret", "AGENT_MQTT__PORT": "x"})
    assert "hunter2-secret" not in str(caught.value)
