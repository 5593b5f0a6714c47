#!/usr/bin/env bash
# Idempotent, version-pinned installer of the moto server, the local stand-in for DynamoDB
# (and later SQS) in dome's tests and local runs.
#
#   DOME_MOTO_SERVER=$(local/moto.sh | tail -n 1)
#
# Creates a Python virtual environment at ${DOME_CACHE:-$HOME/.cache/dome}/venv-moto with
# moto[server]==5.2.5 unless one holding exactly that version is already complete there.
# Needs python3 (3.9 or later, with the venv module; override with $PYTHON) and access to PyPI.
# Progress goes to stderr; the last line of stdout is the path of the server launcher.
#
# The launcher, venv-moto/bin/moto_server_serial, is moto's own `moto_server` (same
# arguments: -H HOST -p PORT) made to answer one request at a time. The stock server runs each
# request on its own thread, and moto's DynamoDB TransactWriteItems is not atomic across
# threads (it snapshots the whole table and restores that snapshot on a failed condition), so
# two concurrent transactions can both pass their conditions or undo each other's writes.
# Real DynamoDB serialises conflicting transactions; one request at a time restores that.
set -euo pipefail

readonly MOTO_VERSION="5.2.5"
readonly CACHE_DIR="${DOME_CACHE:-$HOME/.cache/dome}"
readonly VENV="$CACHE_DIR/venv-moto"
readonly BIN="$VENV/bin/moto_server_serial"
# Written as the last step of an install, so a venv without it (an interrupted install) is
# rebuilt rather than trusted.
readonly MARKER="$VENV/.dome-moto-$MOTO_VERSION"
readonly PYTHON="${PYTHON:-python3}"

log() { echo "moto: $*" >&2; }
die() {
    echo "moto: ERROR: $*" >&2
    exit 1
}

# Prints the moto version installed in the venv, or nothing.
installed_version() {
    if [[ -x "$VENV/bin/python" ]]; then
        "$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || true
    fi
}

ready() {
    [[ -f "$MARKER" && -x "$BIN" && "$(installed_version)" == "$MOTO_VERSION" ]]
}

if ready; then
    log "moto $MOTO_VERSION already installed"
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE_DIR"
# Two test runs starting at once must not build the same venv together.
exec 9>"$CACHE_DIR/.venv-moto.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if ready; then
    log "moto $MOTO_VERSION installed by a concurrent run"
    echo "$BIN"
    exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is required to install moto"
"$PYTHON" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 9) else 1)' ||
    die "$PYTHON must be Python 3.9 or later with the venv module"

if [[ -e "$VENV" ]]; then
    log "replacing the incomplete or outdated venv at $VENV"
    rm -rf "$VENV"
fi
log "installing moto[server]==$MOTO_VERSION into $VENV ..."
"$PYTHON" -m venv "$VENV" >&2 || die "could not create a venv at $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" >&2 ||
    die "pip install moto[server]==$MOTO_VERSION failed"

have="$(installed_version)"
[[ "$have" == "$MOTO_VERSION" ]] || die "installed moto reports version '$have', expected '$MOTO_VERSION'"

cat >"$BIN" <<EOF
#!$VENV/bin/python
# moto_server answering one request at a time; written by dome's local/moto.sh (see there).
import sys

import moto.server

_run_simple = moto.server.run_simple


def _serial_run_simple(*args, **kwargs):
    kwargs["threaded"] = False
    return _run_simple(*args, **kwargs)


moto.server.run_simple = _serial_run_simple

if __name__ == "__main__":
    sys.exit(moto.server.main())
EOF
chmod +x "$BIN"
"$BIN" --help >/dev/null || die "$BIN does not run"
touch "$MARKER"
log "installed moto $MOTO_VERSION"
echo "$BIN"
