#!/usr/bin/env bash
# Print (last line on stdout) a Python base image that exists locally:
# $PYTHON_IMAGE (default python:3.13-slim) if present or pullable, else one built
# from Debian's packages by build-offline-base.sh.
#
#   export PYTHON_IMAGE=$(scripts/ensure-base-image.sh)
set -euo pipefail

image=${PYTHON_IMAGE:-python:3.13-slim}
log() { printf 'ensure-base-image: %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi

# An unreachable registry fails in milliseconds, but a half-open network can hang a pull:
# bound it, and kill the client if it ignores SIGTERM.
log "$image is not local: trying docker pull"
if timeout -k 10 60 docker pull "$image" >&2; then
    echo "$image"
    exit 0
fi

log "cannot pull $image: building a base image from Debian's packages instead"
built=$("$(dirname "$0")/build-offline-base.sh" | tail -n 1)
log "use it: put PYTHON_IMAGE=$built in a .env file beside docker-compose.yml"
echo "$built"
