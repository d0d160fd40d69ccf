"""The agent against a broker that wants TLS, a client certificate and a password: it connects
with the right ones (and never logs the password), and refuses a broker it cannot verify.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from structlog.testing import capture_logs

from agent.adapters.mqtt import MqttSource, TlsOptions
from agent.store.repository import Store
from tests.support.agent_process import AgentProcess, write_config
from tests.support.certificates import Certificates, make_certificates, openssl
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.skipif(openssl() is None, reason="openssl is missing")
USER, PASSWORD = "agent", "s3cret-Pa55word"


class SecureMosquitto(Mosquitto):
    """TLS only, client certificates required, no anonymous access, one user."""

    def __init__(self, directory: Path, certificates: Certificates, passwords: Path) -> None:
        self.certificates = certificates
        self.passwords = passwords
        super().__init__(directory)

    def _config(self) -> str:
        plain = super()._config().replace("allow_anonymous true", "allow_anonymous false")
        certs = self.certificates
        return plain + "\n".join(
            [
                f"cafile {certs.ca}",
                f"certfile {certs.server_cert}",
                f"keyfile {certs.server_key}",
                "require_certificate true",
                f"password_file {self.passwords}",
                "",
            ]
        )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def secure_broker(tmp_path: Path, certificates: Certificates) -> Iterator[SecureMosquitto]:
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", passwords, USER, PASSWORD], check=True)
    with SecureMosquitto(tmp_path / "mosquitto", certificates, passwords) as broker:
        yield broker


def tls_client(broker: Mosquitto, certs: Certificates) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tls-publisher")
    client.tls_set(str(certs.ca), str(certs.client_cert), str(certs.client_key))
    client.username_pw_set(USER, PASSWORD)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def source(broker: Mosquitto, tls: TlsOptions, password: str = PASSWORD) -> MqttSource:
    return MqttSource(
        host=broker.host,
        port=broker.port,
        client_id="tls-probe",
        subscriptions=["factory/#"],
        username=USER,
        password=password,
        tls=tls,
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
    )


def test_the_daemon_works_over_tls_with_a_password_it_never_logs(
    secure_broker: SecureMosquitto, certificates: Certificates, tmp_path: Path
) -> None:
    secret = tmp_path / "mqtt_password"
    secret.write_text(PASSWORD + "\n")
    config = write_config(
        tmp_path,
        port=secure_broker.port,
        database_url=f"sqlite:///{tmp_path}/agent.db",
        client_id="agent-tls",
    )
    settings = (
        f'username = "{USER}"\npassword_file = "{secret}"\n'
        f'tls_ca_file = "{certificates.ca}"\n'
        f'tls_cert_file = "{certificates.client_cert}"\n'
        f'tls_key_file = "{certificates.client_key}"\n'
    )
    config.write_text(config.read_text().replace("[mqtt]\n", "[mqtt]\n" + settings, 1))
    agent = AgentProcess(config, cwd=tmp_path)
    agent.start()
    publisher = None
    try:
        agent.wait_for("mqtt_subscribed", timeout=30)
        publisher = tls_client(secure_broker, certificates)
        body = json.dumps({"on_hand": 3}).encode()
        publisher.publish("factory/plant1/stock/BRG-6204", body, qos=1).wait_for_publish(5)
        agent.wait_for("reorder_opened", timeout=15)
    finally:
        if publisher is not None:
            publisher.loop_stop()
            publisher.disconnect()
        agent.kill()
    with Store.open(f"sqlite:///{tmp_path}/agent.db") as store:
        assert [a["subject"] for a in store.actions()] == ["BRG-6204"]
    assert PASSWORD not in "\n".join(agent.lines)


def test_a_broker_whose_certificate_cannot_be_verified_is_not_trusted(
    secure_broker: SecureMosquitto, certificates: Certificates, tmp_path: Path
) -> None:
    stranger = make_certificates(tmp_path / "other-pki", name="other")
    probe = source(
        secure_broker,
        TlsOptions(stranger.ca, certificates.client_cert, certificates.client_key),
    )
    probe.start()
    try:
        assert not probe.wait_connected(2.0)
    finally:
        probe.stop()


def test_a_wrong_password_is_refused_and_the_right_one_accepted(
    secure_broker: SecureMosquitto, certificates: Certificates
) -> None:
    tls = TlsOptions(certificates.ca, certificates.client_cert, certificates.client_key)
    wrong = source(secure_broker, tls, password="guess")
    wrong.start()
    try:
        assert not wrong.wait_connected(2.0)
    finally:
        wrong.stop()
    right = source(secure_broker, tls)
    right.start()
    try:
        assert right.wait_connected(10.0)
    finally:
        right.stop()


def test_a_broker_that_cannot_be_verified_is_logged_with_the_reason_and_a_hint(
    secure_broker: SecureMosquitto, certificates: Certificates, tmp_path: Path
) -> None:
    stranger = make_certificates(tmp_path / "other-pki", name="other")
    probe = source(
        secure_broker,
        TlsOptions(stranger.ca, certificates.client_cert, certificates.client_key),
    )
    with capture_logs() as logs:
        probe.start()
        try:
            assert not probe.wait_connected(2.0)
        finally:
            probe.stop()
    (first, *_) = [e for e in logs if e["event"] == "mqtt_connect_failed"]
    assert "certificate is not trusted" in first["reason"]
    assert "tls_ca_file" in first["hint"]


def test_a_plain_tcp_connection_with_a_password_to_another_host_is_warned_about() -> None:
    with capture_logs() as logs:
        MqttSource(
            host="broker.plant.example",
            port=1883,
            client_id="clear",
            subscriptions=[],
            username=USER,
            password=PASSWORD,
        )
    (warning,) = [e for e in logs if e["event"] == "mqtt_credentials_in_clear"]
    assert warning["log_level"] == "warning" and PASSWORD not in str(warning)
