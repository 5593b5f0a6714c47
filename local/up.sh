#!/usr/bin/env bash
# Starts a local dome bus: N CometBFT v0.38.25 validators (default 4), each with its own
# dome-abci, on 127.0.0.1. Extra arguments go to `dome-net up` (see `dome-net up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOME_CACHE="${DOME_CACHE:-$HOME/.cache/dome}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DOME_CACHE/target}"
cometbft="$(local/bootstrap.sh | tail -n 1)"
cargo build --locked --bin dome-abci --bin dome-net >&2
exec "$CARGO_TARGET_DIR/debug/dome-net" up --cometbft-bin "$cometbft" \
    --abci-bin "$CARGO_TARGET_DIR/debug/dome-abci" "$@"
