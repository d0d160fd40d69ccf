#!/usr/bin/env bash
# Make sure an MQTT broker answers on 127.0.0.1:1883 for `make run`: use the one running, or
# start Mosquitto with config/mosquitto.conf (persistence on, queues large enough not to drop).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${AGENT_MQTT__PORT:-1883}"
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if answers; then
  # Not ours: its persistence and queue limits are whatever its own configuration says.
  echo "broker: using the broker already listening on 127.0.0.1:$port; it was not started" \
    "from config/mosquitto.conf, so that file's settings (persistence, autosave_interval 1," \
    "max_queued_messages 200000) are not in effect. Stop it (e.g. systemctl stop mosquitto)" \
    "to have this script start Mosquitto with them." >&2
  exit 0
fi
mosquitto_bin="$(command -v mosquitto || true)"
[ -n "$mosquitto_bin" ] || mosquitto_bin=/usr/sbin/mosquitto
if [ ! -x "$mosquitto_bin" ]; then
  echo "broker: none on 127.0.0.1:$port and Mosquitto is not installed: apt-get install -y mosquitto" >&2
  exit 1
fi
mkdir -p data/mosquitto
# Started as root, Mosquitto drops to its own user: that user must own its data folder.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
  chown mosquitto: data/mosquitto
fi
"$mosquitto_bin" -d -c config/mosquitto.conf
for _ in $(seq 50); do
  if answers; then
    echo "broker: started Mosquitto on 127.0.0.1:$port with config/mosquitto.conf (persistence" \
      "in data/mosquitto/, autosave_interval 1, max_queued_messages 200000;" \
      "log: data/mosquitto/mosquitto.log)"
    exit 0
  fi
  sleep 0.1
done
echo "broker: Mosquitto did not start; see data/mosquitto/mosquitto.log" >&2
exit 1
