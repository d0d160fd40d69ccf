"""Why a connection to the broker failed, in words a plant engineer can act on.

paho reports only that a connection attempt failed. After a failure the MQTT adapter asks this
module to try the same address again, by hand, with a short timeout: name resolution, TCP, then
the TLS handshake with the same trust settings, and names the first step that fails with a hint.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.adapters.mqtt import TlsOptions

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Diagnosis:
    reason: str
    hint: str


def diagnose(
    host: str, port: int, tls: TlsOptions | None, timeout_s: float = PROBE_TIMEOUT_S
) -> Diagnosis:
    """The first step of connecting to `host:port` that fails, and what to check."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except socket.gaierror as exc:
        return Diagnosis(
            f"cannot resolve {host!r}: {exc.strerror}", "check mqtt.host (AGENT_MQTT__HOST)"
        )
    except ConnectionRefusedError:
        return Diagnosis(
            f"connection refused at {where}",
            "no broker listens there: start it (`make broker`, `systemctl start mosquitto`) "
            "or check mqtt.host and mqtt.port",
        )
    except TimeoutError:
        return Diagnosis(
            f"no answer from {where} within {timeout_s:g} s",
            "a firewall drops the connection, or the address is wrong: check mqtt.host",
        )
    except OSError as exc:
        return Diagnosis(f"cannot reach {where}: {exc.strerror or exc}", "check mqtt.host")
    with sock:
        if tls is None:
            return Diagnosis(
                f"TCP to {where} works but the MQTT connection failed",
                "if this is a TLS port, set mqtt.tls_ca_file (or the TLS settings); "
                "else see the broker's log",
            )
        return _handshake(sock, host, tls, where)


def _handshake(sock: socket.socket, host: str, tls: TlsOptions, where: str) -> Diagnosis:
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if tls.cert_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        with context.wrap_socket(sock, server_hostname=host) as wrapped:
            wrapped.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        return Diagnosis(
            f"TLS: the broker's certificate is not trusted: {exc.verify_message}",
            "mqtt.tls_ca_file must name the CA that signed the broker's certificate, and "
            "mqtt.host must be a name (or IP) the certificate is issued for",
        )
    except ssl.SSLError as exc:
        return Diagnosis(
            f"TLS handshake with {where} failed: {exc.reason or exc}",
            "check the TLS settings (client certificate and key, TLS port)",
        )
    except OSError as exc:
        return Diagnosis(f"TLS to {where} failed: {exc}", "check the TLS settings")
    return Diagnosis(
        f"TLS to {where} works but the MQTT connection failed",
        "see the broker's log (a client certificate it refuses, or a listener limit)",
    )
