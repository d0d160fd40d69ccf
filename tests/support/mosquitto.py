"""A private Mosquitto broker for tests and benchmarks: own port, own persistence dir, own log.

Configured as delivery.md says a production broker must be (persistence, big queues, long session
expiry). Free of pytest so benchmarks can reuse it.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
INSTALL_HINT = "Mosquitto is missing: install it with `apt-get install -y mosquitto`."


class MosquittoError(RuntimeError):
    """The broker could not be found, started or stopped."""


def find_mosquitto() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).is_file():
        raise MosquittoError(INSTALL_HINT)
    return binary


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """One broker process; `restart()` keeps the port and the persistence directory."""

    def __init__(self, directory: Path | None = None, start_timeout_s: float = 10.0) -> None:
        self.binary = find_mosquitto()
        self.host = HOST
        self.port = free_port()
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="mosquitto-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / "mosquitto.conf"
        self.log_path = self.directory / "mosquitto.log"
        self.output_path = self.directory / "mosquitto.out"
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.config_path.write_text(self._config())

    def _config(self) -> str:
        return "\n".join(
            [
                f"listener {self.port} {self.host}",
                "allow_anonymous true",
                # Only honoured when started as root: stay this user so the files stay writable.
                f"user {getpass.getuser()}",
                "persistence true",
                f"persistence_location {self.directory}/",
                "autosave_interval 1",
                "max_queued_messages 200000",
                "max_inflight_messages 100",
                "persistent_client_expiration 1d",
                f"log_dest file {self.log_path}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "log_type subscribe",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                "connection_messages true",
                "",
            ]
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with self.output_path.open("ab") as output:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MosquittoError(
                    f"mosquitto exited with code {self._process.returncode} on port {self.port}:\n"
                    f"{self.log_tail()}"
                )
            if port_accepts(self.host, self.port):
                return
            time.sleep(0.02)  # polling the port, not synchronising on a guess
        self.stop(kill=True)
        raise MosquittoError(
            f"mosquitto did not accept connections on {self.host}:{self.port} within "
            f"{self.start_timeout_s} s:\n{self.log_tail()}"
        )

    def stop(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def wipe_persistence(self) -> None:
        """Forget every stored session and message, as a broker that lost its disk would."""
        if self.running:
            raise MosquittoError("stop the broker before wiping its persistence")
        (self.directory / "mosquitto.db").unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_text(self) -> str:
        paths = (self.output_path, self.log_path)
        return "".join(path.read_text(errors="replace") for path in paths if path.exists())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> Mosquitto:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
