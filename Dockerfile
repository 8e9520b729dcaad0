# The official image where a registry is reachable; elsewhere one built from Debian's
# packages: --build-arg PYTHON_IMAGE=$(scripts/ensure-base-image.sh)
ARG PYTHON_IMAGE=python:3.13-slim

# The lab: every demo service runs this stage. It comes first because the legacy builder
# (compose v1, the docker SDK, Docker without buildx) builds every stage before its target:
# `target: lab` then builds this stage alone.
FROM ${PYTHON_IMAGE} AS lab
ARG PYTHON_IMAGE

LABEL org.opencontainers.image.title="echolab" \
      org.opencontainers.image.description="Multi-client TCP echo servers (fork, select, epoll) and a split-I/O client, stdlib only" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The servers need no installer at run time: drop the official image's pip (a no-op on the
# Debian-built base, which has none).
RUN python3 -m pip uninstall --yes --quiet pip 2>/dev/null || true

WORKDIR /app
# Root-owned and read-only to the app user: the servers cannot rewrite their own code.
COPY server/ /app/server/
COPY client/ /app/client/
COPY lab/ /app/lab/
COPY bench/ /app/bench/
COPY probe/ /app/probe/
COPY check/ /app/check/
COPY view/ /app/view/

# Numeric, so it works in a base image without useradd or a passwd entry.
USER 10001:10001
EXPOSE 9000 9001 8080
CMD ["python3", "-m", "server", "fork"]

# The Linux shell (docker compose run --rm shell): Python and the tools that show what the
# lessons are about. The lab's code is mounted from the checkout, not copied. Tools come
# from the base's Debian suite (trixie): a suite is a stable pin that security updates keep
# buildable, where exact versions vanish from the mirror.
# gcc, libc6-dev and make: a student with only Docker compiles a C server here and checks it.
FROM ${PYTHON_IMAGE} AS shell
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        procps iproute2 lsof strace netcat-openbsd tmux less gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
WORKDIR /app
USER 10001:10001
CMD ["bash"]

# The test runner (docker-compose.test.yml, README's test command): every tier of the suite
# in Linux, with nothing on the host but Docker. The checkout is mounted read-only at /app; the docker tier
# drives its own stack on the engine through the mounted socket (see README, Security).
# Same suite pin as the shell; the test deps come from PyPI, pinned in requirements-test.txt.
FROM ${PYTHON_IMAGE} AS test
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-venv ca-certificates docker-cli docker-compose \
        chromium chromium-driver fonts-dejavu-core firefox-esr webkit2gtk-driver xvfb \
        gcc libc6-dev procps iproute2 lsof strace netcat-openbsd \
    && rm -rf /var/lib/apt/lists/*
# A TLS-intercepting proxy's CA, if certs/ holds one (certs/README.md); none by default.
COPY certs/ /usr/local/share/ca-certificates/echolab/
COPY requirements-test.txt /opt/echolab/requirements-test.txt
# A venv: the Debian-built base has no pip, and the official image's pip stays untouched.
RUN update-ca-certificates >/dev/null \
    && python3 -m venv /opt/venv \
    && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/python -m pip install \
        --no-cache-dir --quiet --disable-pip-version-check -r /opt/echolab/requirements-test.txt
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ECHOLAB_IN_CONTAINER=1
WORKDIR /app
CMD ["python", "-m", "pytest"]

# A plain `docker build .` gets the lab too.
FROM lab
