#!/usr/bin/env bash
# Build a minimal Debian + python3 base image without any container registry:
# mmdebstrap a rootfs from Debian's packages, then `docker import` it.
#
#   scripts/build-offline-base.sh [--rebuild]
#   env: SUITE (trixie), OFFLINE_BASE_TAG (echolab/python-base:$SUITE),
#        DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: from the host's apt sources),
#        VARIANT (apt: the Essential set plus apt, as in the official slim image, so
#        the shell and test stages can apt-get their tools)
#
# Progress goes to stderr; the image tag is the last line on stdout.
set -euo pipefail

log() { printf 'build-offline-base: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

rebuild=0
case "${1:-}" in
    --rebuild) rebuild=1 ;;
    "") ;;
    *) die "usage: $0 [--rebuild]" ;;
esac

suite=${SUITE:-trixie}
tag_for() { printf '%s' "${OFFLINE_BASE_TAG:-echolab/python-base:$1}"; }
tag=$(tag_for "$suite")

variant=${VARIANT:-apt}
# An image built before the variant was recorded (or with another one) is rebuilt.
built_variant() { docker image inspect --format '{{ index .Config.Labels "echolab.base.variant" }}' "$1" 2>/dev/null; }
if [[ $rebuild == 0 ]] && [[ $(built_variant "$tag") == "$variant" ]]; then
    log "$tag already exists (pass --rebuild to rebuild it)"
    echo "$tag"
    exit 0
fi

if ! command -v mmdebstrap >/dev/null; then
    [[ $EUID == 0 ]] || die "mmdebstrap is missing: run 'apt-get install --no-install-recommends mmdebstrap' as root"
    log "installing mmdebstrap"
    apt-get -o DPkg::Lock::Timeout=300 update >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends mmdebstrap >&2
fi

# shellcheck source=/dev/null
host_codename=$(. /etc/os-release && [[ ${ID:-} == debian ]] && echo "${VERSION_CODENAME:-}") || true

# The mirror this host already uses (and is allowed to reach), read through apt's own
# parser so one-line and deb822 sources both work. Only on a Debian host: an Ubuntu
# mirror would not carry Debian suites.
host_site() { # $1: the release name as written in the host's sources
    [[ -n $host_codename ]] || return 0
    # shellcheck disable=SC2016  # apt format fields, not shell
    apt-get indextargets --format '$(RELEASE) $(SITE)' 'Created-By: Packages' 2>/dev/null \
        | awk -v r="$1" '$1 == r { print $2; exit }'
}
mirror=${DEBIAN_MIRROR:-$(host_site "$host_codename")}
security=${DEBIAN_SECURITY_MIRROR:-$(host_site "$host_codename-security")}

sources_for() { # $1: suite; prints one apt line per element, nothing = mmdebstrap's default
    [[ -n $mirror ]] || return 0
    echo "deb $mirror $1 main"
    case $1 in
        sid | unstable | experimental) return 0 ;;
    esac
    echo "deb $mirror $1-updates main"
    if [[ -n $security ]]; then
        echo "deb $security $1-security main"
    else
        log "no security mirror found in the host's apt sources: $1-security left out"
    fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/echolab-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

build() { # $1: suite; writes $work/rootfs.tar, keeps mmdebstrap's output in $work/log
    local -a sources
    mapfile -t sources < <(sources_for "$1")
    log "mmdebstrap $1 from ${mirror:-the default mirror of mmdebstrap}"
    # python3 needs nothing outside the Essential set; apt lets the shell and test stages
    # install their tools from Debian's packages (the lab stage installs nothing).
    # Docs, man pages and translations are dropped at unpack time (copyrights are kept).
    # shellcheck disable=SC2016  # $1 is for the hook, not this shell
    mmdebstrap --variant="$variant" --include=python3 \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --customize-hook='rm -rf "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
        "$1" "$work/rootfs.tar" "${sources[@]}" 2>&1 | tee "$work/log" >&2
}
signature_error() { grep -qE 'NO_PUBKEY|EXPKEYSIG|is not signed|signatures were invalid' "$work/log"; }

start=$SECONDS
if ! build "$suite"; then
    signature_error || die "mmdebstrap failed (see above)"
    # An older host keyring may not know a newer release's key yet: a point-release
    # update of debian-archive-keyring usually adds it.
    if [[ $EUID == 0 ]]; then
        log "the host's keyring cannot verify $suite: upgrading debian-archive-keyring"
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --only-upgrade debian-archive-keyring; } >&2 || true
    fi
    if ! build "$suite"; then
        if ! signature_error || [[ -z $host_codename || $suite == "$host_codename" ]]; then
            die "mmdebstrap failed (see above)"
        fi
        log "WARNING: cannot verify $suite with this host's keyring; falling back to $host_codename"
        suite=$host_codename
        tag=$(tag_for "$suite")
        build "$suite" || die "mmdebstrap failed (see above)"
    fi
fi

log "importing $tag"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL echolab.base.variant=$variant" \
    --change "LABEL org.opencontainers.image.description=\"Debian $suite + python3, built by mmdebstrap\"" \
    "$work/rootfs.tar" "$tag" >&2

version=$(docker run --rm "$tag" python3 --version) || die "python3 does not run in $tag"
log "built in $((SECONDS - start))s; rootfs tar $(du -h "$work/rootfs.tar" | cut -f1); $version"
echo "$tag"
