#!/usr/bin/env bash
# Install what `make run` / `make test` need when it is missing: uv, the Python environment,
# PostgreSQL and redis-server (apt-get, as root), coturn (optional), npm packages of tests/js. Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "provision: $*" >&2; }

if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
    say "installing uv"
    python3 -m pip install --quiet --disable-pip-version-check uv \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages uv
fi
UV="uv"
command -v uv >/dev/null 2>&1 || UV="python3 -m uv"
$UV sync --quiet

have_pg() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; }
missing=()
have_pg || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        say "please install: ${missing[*]} (or set DATABASE_URL / REDIS_URL)"
        exit 1
    fi
    say "installing ${missing[*]}"
    mkdir -p /etc/postgresql-common
    [[ -e /etc/postgresql-common/createcluster.conf ]] \
        || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# coturn (turnserver) is optional: the calls tests that need it are skipped without it, and
# `make run` says so. Installed when we can, never a reason to fail.
if ! command -v turnserver >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing coturn (optional, for calls)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends coturn >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -qq --no-install-recommends coturn >/dev/null 2>&1; } \
        || say "coturn could not be installed: calls will have no local TURN server"
fi

# Optional: ffmpeg / ffprobe probe videos and cut their poster frames (without them videos are
# stored with `processing: skipped`). Installed when we can, never required.
if ! command -v ffprobe >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ffmpeg (optional: video probing)"
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null) \
        || say "ffmpeg could not be installed: videos will be stored unprocessed"
fi

if [[ -f tests/js/package.json ]] && command -v npm >/dev/null 2>&1; then
    stamp=tests/js/node_modules/.package-lock.json
    if [[ ! -f $stamp || tests/js/package.json -nt $stamp \
          || ( -f tests/js/package-lock.json && tests/js/package-lock.json -nt $stamp ) ]]; then
        say "installing npm packages in tests/js"
        if [[ -f tests/js/package-lock.json ]]; then cmd=ci; else cmd=install; fi
        (cd tests/js && npm "$cmd" --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
