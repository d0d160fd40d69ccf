# factory-agent: the daemon, its rules and config as volumes, health on :9464.
#   docker build -t factory-agent .
#   docker run -v ./config:/app/config -v ./rules:/app/rules -v agent-data:/app/data factory-agent
# The build stage has the C compiler durable-rules needs; the final image only the virtualenv.
# BASE_IMAGE: any Debian-based image with python3 (3.11), python3-venv and ca-certificates; CI
# builds on a bookworm base made with mmdebstrap (scripts/image-ci.sh), users on the default.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# Not pinning apt versions (DL3008): the base image's Debian release fixes them, and a pin breaks
# the build as soon as Debian ships a security update. Python's headers come with the python
# image; Debian's own python3 needs python3-dev for them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && { python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
      || apt-get install -y --no-install-recommends python3-dev; } \
 && rm -rf /var/lib/apt/lists/*
# PIP_CERT, PIP_INDEX_URL (unset by default): for a PyPI behind a proxy with its own CA, or a mirror.
ARG PIP_CERT
ARG PIP_INDEX_URL
ENV PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent/ agent/
COPY scripts/install.sh scripts/
# pip and setuptools only install: the running agent imports neither (26 MB).
RUN scripts/install.sh /opt/venv postgres \
 && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && /opt/venv/bin/factory-agent --version

FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 agent \
 && useradd --system --uid 10001 --gid agent --home-dir /app --shell /usr/sbin/nologin agent
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config/ config/
COPY rules/ rules/
RUN mkdir -p data && chown agent:agent data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AGENT_LOG__FORMAT=json \
    AGENT_HTTP__ENABLED=true \
    AGENT_HTTP__HOST=0.0.0.0 \
    AGENT_HTTP__PORT=9464
USER 10001:10001
VOLUME ["/app/config", "/app/rules", "/app/data"]
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('AGENT_HTTP__PORT', '9464'), timeout=4)"]
# Exec form: the agent is PID 1 and gets SIGTERM itself (finishes the batch, acks, exits 0).
ENTRYPOINT ["factory-agent"]
CMD ["run"]
