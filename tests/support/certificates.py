"""A throw-away certificate authority for TLS tests, made with the openssl command line:
a CA, a server certificate for 127.0.0.1, and a client certificate, all signed by the CA.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def openssl() -> str | None:
    return shutil.which("openssl")


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path, name: str = "test") -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    tool = openssl()
    if tool is None:
        raise RuntimeError("openssl is missing: apt-get install -y openssl")
    ca, ca_key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    _run(tool, "req", "-x509", *_EC, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", f"/CN={name} test CA")  # fmt: skip
    signed = {}
    for role, subject, extension in (
        ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "/CN=factory-agent", "extendedKeyUsage=clientAuth"),
    ):
        key, request = directory / f"{role}.key", directory / f"{role}.csr"
        cert, extfile = directory / f"{role}.pem", directory / f"{role}.ext"
        extfile.write_text(extension + "\n")
        _run(tool, "req", "-new", *_EC, "-keyout", key, "-out", request, "-subj", subject)
        _run(tool, "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extfile)  # fmt: skip
        signed[role] = (cert, key)
    return Certificates(ca, *signed["server"], *signed["client"])
