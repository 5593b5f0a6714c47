#!/usr/bin/env bash
# The local federation: 4 CometBFT v0.38.25 validators (each with its own dome-abci) and 3
# marketplaces (A, B, C: TMF620 API + replication, embedded store) on 127.0.0.1, with a demo
# catalogue seeded on A. Installs what is missing and builds first.
#
#   local/up.sh [--detach] [other `dome-net up` flags]   start (foreground: Ctrl-C stops all)
#   local/up.sh status                                   heights, checkpoints, lag, dead letters
#   local/up.sh down                                     stop a --detach federation
#   local/up.sh reset                                    wipe the federation's directory
#
# DOME_FED_DIR picks the directory (default ~/.cache/dome/federation).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOME_CACHE="${DOME_CACHE:-$HOME/.cache/dome}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DOME_CACHE/target}"
dir="${DOME_FED_DIR:-$DOME_CACHE/federation}"
bin="$CARGO_TARGET_DIR/debug/dome-net"

case "${1:-up}" in
  status|down)
    exec "$bin" "$1" --dir "$dir" ;;
  reset)
    "$bin" down --dir "$dir" || true
    rm -rf "$dir"
    echo "removed $dir" >&2
    exit 0 ;;
esac
[[ "${1:-}" == "up" ]] && shift
cometbft="$(local/bootstrap.sh | tail -n 1)"
cargo build --locked --bin dome-abci --bin dome-net --bin dome-marketplace >&2
exec "$bin" up --dir "$dir" --marketplaces 3 --cometbft-bin "$cometbft" \
    --abci-bin "$CARGO_TARGET_DIR/debug/dome-abci" "$@"
