#!/usr/bin/env bash
# Install factory-agent (not editable) into the virtual environment VENV: the Dockerfile's build
# step, run by CI too (scripts/check-image.sh), so the image's install is tested without Docker.
# Usage: scripts/install.sh VENV [EXTRAS]   (EXTRAS default: postgres)
set -euo pipefail
venv="${1:?usage: scripts/install.sh VENV [EXTRAS]}"
extras="${2:-postgres}"
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# durable-rules compiles C here, hence the compiler in the image's build stage only.
# pip's cache (if any) makes a second run fast; the Dockerfile turns it off.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check ".[${extras}]"
"$venv/bin/factory-agent" --version
