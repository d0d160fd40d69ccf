"""Run the Dockerfile's final stage without Docker: its ENV, WORKDIR contents, ENTRYPOINT + CMD,
HEALTHCHECK command and stop signal, against a virtualenv made by scripts/install.sh.

Usage: python3 scripts/check_image.py VENV APP_DIR   (standard library only)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    parsed = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    stages = [i for i, (word, *_rest) in enumerate(parsed) if word.upper() == "FROM"]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in parsed[stages[-1] :]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def main(venv: Path, app: Path) -> int:
    final = instructions(REPO / "Dockerfile")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    entrypoint: list[str] = []
    cmd: list[str] = []
    healthcheck: list[str] = []
    for word, args in final:
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value.replace("$PATH", env.get("PATH", ""))
        elif word == "COPY" and "--from" not in args:
            source, target = args.split()
            shutil.copytree(REPO / source, app / target, dirs_exist_ok=True)
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(args)
        elif word == "CMD":
            cmd = json.loads(args)
        elif word == "HEALTHCHECK":
            healthcheck = json.loads(args.split(" CMD ", 1)[1])
    assert entrypoint and cmd and healthcheck, "ENTRYPOINT, CMD and HEALTHCHECK must be exec form"
    (app / "data").mkdir(parents=True, exist_ok=True)
    port = free_port()
    env["PATH"] = env["PATH"].replace("/opt/venv", str(venv))
    env["AGENT_HTTP__PORT"] = str(port)
    env["AGENT_MQTT__PORT"] = str(free_port())  # no broker: alive, not ready
    env["AGENT_MQTT__RECONNECT_MAX_S"] = "1"
    agent = subprocess.Popen(entrypoint + cmd, cwd=app, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            health = subprocess.run(healthcheck, cwd=app, env=env, capture_output=True)
            if health.returncode == 0:
                break
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"image: HEALTHCHECK never passed: {health.stderr.decode()}")
            time.sleep(0.2)  # polling a starting process, with a deadline
        ready = get(f"http://127.0.0.1:{port}/readyz")
        assert ready == 503, f"/readyz without a broker answered {ready}, expected 503"
        schema = subprocess.run(
            [str(venv / "bin" / "factory-agent"), "db", "upgrade"], cwd=app, env=env, check=True
        )
        assert schema.returncode == 0
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(15)
        assert code == 0, f"SIGTERM: the agent exited with {code}"
    finally:
        if agent.poll() is None:
            agent.kill()
    print("image: ENTRYPOINT runs, HEALTHCHECK passes, /readyz 503 without broker, SIGTERM exits 0")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
