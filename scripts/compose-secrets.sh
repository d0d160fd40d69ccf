#!/usr/bin/env bash
# Make the MQTT passwords docker-compose.yml reads (deploy/secrets/), once: random, mode 0600.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
for user in agent simulator; do
  file="deploy/secrets/mqtt_${user}_password"
  if [ ! -s "$file" ]; then
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$file"
    echo "secrets: made $file"
  fi
done
