"""Build the real image and run it as a user would: CI's container job (standard library only).

    python3 scripts/image_ci.py [--rebuild-base] [--keep]

1. A Debian bookworm base with python3, python3-venv and ca-certificates, made by mmdebstrap and
   imported into podman (kept as localhost/factory-agent-base:bookworm; --rebuild-base remakes
   it). The public registry is out of reach here, so the Dockerfile's BASE_IMAGE points at it.
2. `podman build` of the Dockerfile (docker format, so HEALTHCHECK is kept).
3. A Mosquitto on the host with the compose file's broker settings (deploy/mosquitto: persistence,
   password file, ACL) on a free port.
4. The agent container as docker-compose.yml starts it, without --init: PID 1 and user 10001,
   /healthz and /readyz, its HEALTHCHECK, a low-stock message becoming a reorder in
   `factory-agent actions --json --all`, a message published while it is stopped taken in after the
   restart with the data volume intact, SIGTERM exiting 0 within daemon.stop_timeout_s.
5. The compose file's simulator, started the same way, makes decisions inside the stack.
The agent and simulator containers take their environment, secrets, volumes and command from
docker-compose.yml (podman-compose cannot run it here: its broker image is not reachable), so
the file is what is tested. Run with the project's virtualenv (PyYAML).
Prints the figures (build time, image size, start time, RSS, stop time). Exit 1 on any failure.

The quirks of these machines (see the container issue): runc, not crun; explicit ulimits;
host networking; the host's CA bundle mounted into the build for pip behind the proxy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
BASE = "localhost/factory-agent-base:bookworm"
IMAGE = "localhost/factory-agent:ci"
AGENT = "factory-agent-ci"
SIMULATOR = "factory-agent-ci-sim"
VOLUME = "factory-agent-ci-data"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
STOP_TIMEOUT_S = 10.0  # daemon.stop_timeout_s in config/agent.toml
T = TypeVar("T")


def log(message: str) -> None:
    print(f"image: {message}", flush=True)


def run(args: Sequence[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise SystemExit(
            f"image: FAILED: {' '.join(args)} exited {result.returncode}\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def runtime_flags() -> list[str]:
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)  # the hard limit, as `ulimit -Hn`
    return [
        "--runtime",
        "runc",
        "--network",
        "host",
        "--ulimit",
        f"nofile={nofile}:{nofile}",
        "--ulimit",
        "nproc=4096:4096",
    ]


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            logs = run(["podman", "logs", "--tail", "40", AGENT], check=False)
            raise SystemExit(
                f"image: FAILED: {what} within {timeout_s:.0f} s\n{logs.stdout}{logs.stderr}"
            )
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def make_base(rebuild: bool) -> None:
    if not rebuild and run(["podman", "image", "exists", BASE], check=False).returncode == 0:
        log(f"base {BASE}: present")
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "bookworm.tar"
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates,passwd",
                "bookworm",
                str(tarball),
                "http://deb.debian.org/debian",
            ]
        )
        run(["podman", "import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE])
    log(f"base {BASE}: made by mmdebstrap in {time.monotonic() - started:.0f} s")


def build() -> dict[str, float]:
    started = time.monotonic()
    run(
        [
            "podman",
            "build",
            *runtime_flags(),
            "--format",
            "docker",
            "-v",
            f"{HOST_CA}:/etc/ssl/certs/host-ca.crt:ro",
            "--build-arg",
            f"BASE_IMAGE={BASE}",
            "--build-arg",
            "PIP_CERT=/etc/ssl/certs/host-ca.crt",
            "-t",
            IMAGE,
            str(REPO),
        ]
    )
    seconds = time.monotonic() - started
    size = int(run(["podman", "image", "inspect", "--format", "{{.Size}}", IMAGE]).stdout)
    base = int(run(["podman", "image", "inspect", "--format", "{{.Size}}", BASE]).stdout)
    added = (size - base) / 1e6
    log(f"built {IMAGE} in {seconds:.0f} s: {size / 1e6:.0f} MB ({added:.0f} MB on the base)")
    return {"build_s": seconds, "size_mb": size / 1e6, "added_mb": (size - base) / 1e6}


class Broker:
    """Mosquitto with deploy/mosquitto's settings, on a free port of the host."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.passwords = {user: secrets.token_urlsafe(16) for user in ("agent", "simulator")}
        conf = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
        conf = conf.replace("listener 1883", f"listener {self.port} 127.0.0.1")
        conf = conf.replace("/mosquitto/data/", f"{directory}/")
        conf = conf.replace("/mosquitto/config/acl", str(REPO / "deploy/mosquitto/acl"))
        conf += "\nuser root\n"  # keep the files it writes under the temporary directory ours
        (directory / "mosquitto.conf").write_text(conf)
        passwd = directory / "passwd"
        for index, (user, password) in enumerate(self.passwords.items()):
            create = ["-c"] if index == 0 else []
            run(["mosquitto_passwd", *create, "-b", str(passwd), user, password])
        passwd.chmod(0o600)
        for user, password in self.passwords.items():
            secret = directory / f"mqtt_{user}_password"
            secret.write_text(password + "\n")
            secret.chmod(0o644)  # read by uid 10001 in the container
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.log_path = directory / "mosquitto.log"
        self.process = subprocess.Popen(
            [binary, "-c", str(directory / "mosquitto.conf")],
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for("the broker to listen", self._listening, 10)

    def _listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def secret(self, user: str) -> Path:
        return self.directory / f"mqtt_{user}_password"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def compose_service(name: str) -> dict[str, Any]:
    """A service of docker-compose.yml (needs PyYAML: run this with the project's virtualenv)."""
    import yaml

    services: dict[str, dict[str, Any]] = yaml.safe_load((REPO / "docker-compose.yml").read_text())[
        "services"
    ]
    return services[name]


def compose_flags(name: str, broker: Broker) -> list[str]:
    """`podman run` flags for a compose service with the same settings: its environment (the
    broker's address swapped for the host's), its secrets under /run/secrets, its volumes (named
    ones prefixed for CI), its command. Ports are left out: the container shares the host's
    network."""
    service = compose_service(name)
    flags: list[str] = []
    environment = dict(service.get("environment") or {})
    environment["AGENT_MQTT__HOST"] = "127.0.0.1"
    environment["AGENT_MQTT__PORT"] = str(broker.port)
    environment["AGENT_MQTT__RECONNECT_MAX_S"] = "1"
    for key, value in environment.items():
        flags += ["-e", f"{key}={value}"]
    for secret in service.get("secrets") or []:
        user = secret.removeprefix("mqtt_").removesuffix("_password")
        flags += ["-v", f"{broker.secret(user)}:/run/secrets/{secret}:ro"]
    for volume in service.get("volumes") or []:
        source, _, target = volume.partition(":")
        if source.startswith("./"):
            flags += ["-v", f"{REPO / source[2:]}:{target}"]
        else:
            flags += ["-v", f"{VOLUME if source == 'agent-data' else 'fa-ci-' + source}:{target}"]
    if (service.get("healthcheck") or {}).get("disable"):
        flags.append("--no-healthcheck")
    return flags


def publish_from_image(broker: Broker, topic: str, payload: dict[str, Any]) -> None:
    """Publish at QoS 1 as the simulator user, from a throwaway container of the image."""
    code = (
        "import sys, paho.mqtt.client as m; "
        "c = m.Client(m.CallbackAPIVersion.VERSION2, client_id='image-ci-pub'); "
        "password = open('/run/secrets/mqtt_simulator_password').read().strip(); "
        "c.username_pw_set('simulator', password); "
        f"c.connect('127.0.0.1', {broker.port}); c.loop_start(); "
        "info = c.publish(sys.argv[1], sys.argv[2], qos=1); info.wait_for_publish(10); "
        "assert info.is_published(); c.disconnect(); c.loop_stop()"
    )
    run(
        [
            "podman",
            "run",
            "--rm",
            *runtime_flags(),
            "-v",
            f"{broker.secret('simulator')}:/run/secrets/mqtt_simulator_password:ro",
            "--entrypoint",
            "python",
            IMAGE,
            "-c",
            code,
            topic,
            json.dumps(payload),
        ]
    )


def actions() -> list[dict[str, Any]]:
    """`factory-agent actions --json --all` inside the agent's container (every status)."""
    out = run(["podman", "exec", AGENT, "factory-agent", "actions", "--json", "--all"])
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def reorders_for(sku: str) -> Callable[[], list[dict[str, Any]] | None]:
    def probe() -> list[dict[str, Any]] | None:
        found = [a for a in actions() if a.get("kind") == "reorder" and sku in json.dumps(a)]
        return found or None

    return probe


def state(field: str) -> str:
    return run(["podman", "inspect", "--format", "{{" + field + "}}", AGENT]).stdout.strip()


def rss_mb() -> float:
    """The container's processes' resident memory, from /proc inside it."""
    out = run(
        ["podman", "exec", AGENT, "sh", "-c", "grep -H VmRSS /proc/[0-9]*/status; echo self $$"],
        check=False,
    ).stdout
    total_kb = 0
    for line in out.splitlines():
        match = re.match(r"/proc/(\d+)/status:VmRSS:\s+(\d+) kB", line)
        if match:
            cmdline = run(
                ["podman", "exec", AGENT, "cat", f"/proc/{match[1]}/cmdline"], check=False
            )
            if "python" in cmdline.stdout or "factory-agent" in cmdline.stdout:
                total_kb += int(match[2])
    return total_kb / 1024


def start_agent(broker: Broker, http_port: int) -> None:
    """docker-compose.yml's agent service, with its settings, on the host's network."""
    run(
        [
            "podman",
            "run",
            "-d",
            "--name",
            AGENT,
            *runtime_flags(),
            *compose_flags("agent", broker),
            "-e",
            f"AGENT_HTTP__PORT={http_port}",
            IMAGE,
            *(compose_service("agent").get("command") or []),
        ]
    )


def stop_with_sigterm() -> float:
    started = time.monotonic()
    run(["podman", "kill", "--signal", "TERM", AGENT])
    run(["podman", "wait", AGENT], timeout=STOP_TIMEOUT_S + 20)
    seconds = time.monotonic() - started
    code = state(".State.ExitCode")
    if code != "0" or seconds > STOP_TIMEOUT_S:
        logs = run(["podman", "logs", "--tail", "20", AGENT], check=False)
        raise SystemExit(
            f"image: FAILED: SIGTERM gave exit {code} after {seconds:.1f} s "
            f"(want 0 within {STOP_TIMEOUT_S:.0f} s)\n{logs.stdout}{logs.stderr}"
        )
    return seconds


def check_running_agent(broker: Broker) -> dict[str, float]:
    figures: dict[str, float] = {}
    http_port = free_port()
    base_url = f"http://127.0.0.1:{http_port}"
    started = time.monotonic()
    start_agent(broker, http_port)
    wait_for("/healthz 200", lambda: http_status(base_url + "/healthz") == 200, 60)
    wait_for("/readyz 200", lambda: http_status(base_url + "/readyz") == 200, 60)
    figures["start_s"] = time.monotonic() - started
    log(f"/healthz and /readyz 200 after {figures['start_s']:.1f} s (from `podman run`)")

    cmdline = run(["podman", "exec", AGENT, "cat", "/proc/1/cmdline"]).stdout.replace("\0", " ")
    status = run(["podman", "exec", AGENT, "cat", "/proc/1/status"]).stdout
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
    if "factory-agent" not in cmdline or not uid or uid[1] != "10001":
        raise SystemExit(f"image: FAILED: PID 1 is {cmdline!r} as uid {uid and uid[1]}")
    log(f"PID 1 is `{cmdline.strip()}` as uid 10001, no --init")

    if not run(
        ["podman", "inspect", "--format", "{{json .Config.Healthcheck}}", AGENT]
    ).stdout.strip():
        raise SystemExit("image: FAILED: the image lost its HEALTHCHECK")
    run(["podman", "healthcheck", "run", AGENT])
    log("HEALTHCHECK: healthy")

    publish_from_image(broker, "factory/plant1/stock/BRG-6204", {"on_hand": 12})
    first = wait_for("a reorder for BRG-6204", reorders_for("BRG-6204"), 60)
    log(f"low stock BRG-6204 became reorder #{first[0].get('id')}")
    figures["rss_mb"] = rss_mb()
    log(f"RSS of the agent's processes: {figures['rss_mb']:.0f} MB")

    figures["stop_s"] = stop_with_sigterm()
    log(f"SIGTERM: exit 0 after {figures['stop_s']:.1f} s")
    publish_from_image(broker, "factory/plant1/stock/FLT-HYD10", {"on_hand": 1})
    log("published low stock FLT-HYD10 while the agent was stopped")
    run(["podman", "start", AGENT])
    wait_for("/readyz 200 after the restart", lambda: http_status(base_url + "/readyz") == 200, 60)
    second = wait_for("the reorder queued while stopped", reorders_for("FLT-HYD10"), 60)
    again = reorders_for("BRG-6204")() or []
    if [a.get("id") for a in again] != [a.get("id") for a in first]:
        raise SystemExit(f"image: FAILED: BRG-6204's reorder changed over the restart: {again}")
    log(
        f"after the restart: reorder #{first[0].get('id')} kept (data volume), "
        f"#{second[0].get('id')} from the message sent while stopped"
    )
    return figures


def check_simulated_plant(broker: Broker) -> None:
    """docker-compose.yml's simulator service (profile "simulator") feeds the agent."""
    before = len(actions())
    run(
        [
            "podman",
            "run",
            "-d",
            "--name",
            SIMULATOR,
            *runtime_flags(),
            *compose_flags("simulator", broker),
            IMAGE,
            *compose_service("simulator")["command"],
        ]
    )
    wait_for("decisions from the simulated plant", lambda: len(actions()) > before, 120)
    log(f"simulated plant: actions {before} -> {len(actions())} in the agent's database")


def clean() -> None:
    for name in (SIMULATOR, AGENT):
        run(["podman", "rm", "-f", "-t", "0", name], check=False)
    for volume in (VOLUME, "fa-ci-mosquitto-data"):
        run(["podman", "volume", "rm", "-f", volume], check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild-base", action="store_true", help="remake the mmdebstrap base")
    parser.add_argument("--keep", action="store_true", help="leave the containers for a look")
    args = parser.parse_args(argv)
    os.environ.setdefault("BUILDAH_FORMAT", "docker")
    started = time.monotonic()
    make_base(args.rebuild_base)
    figures = build()
    clean()
    with tempfile.TemporaryDirectory(prefix="factory-agent-image-") as tmp:
        broker = Broker(Path(tmp))
        try:
            figures |= check_running_agent(broker)
            check_simulated_plant(broker)
            figures["stop_s_final"] = stop_with_sigterm()
            log(f"final SIGTERM: exit 0 after {figures['stop_s_final']:.1f} s")
        finally:
            if not args.keep:
                clean()
            broker.stop()
    summary = ", ".join(f"{key}={value:.1f}" for key, value in figures.items())
    log(f"passed in {time.monotonic() - started:.0f} s: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
