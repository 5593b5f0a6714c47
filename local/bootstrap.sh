#!/usr/bin/env bash
# Idempotent, version-pinned installer of the CometBFT binary used by the dome local network.
#
#   COMETBFT=$(local/bootstrap.sh | tail -1)
#
# Installs github.com/cometbft/cometbft/cmd/cometbft@v0.38.25 into
# ${DOME_CACHE:-$HOME/.cache/dome}/cometbft-v0.38.25/ unless a binary reporting that exact
# version is already there. Progress goes to stderr; the last line of stdout is the binary path.
set -euo pipefail

readonly COMETBFT_VERSION="0.38.25"
readonly CACHE_DIR="${DOME_CACHE:-$HOME/.cache/dome}"
readonly BIN_DIR="$CACHE_DIR/cometbft-v$COMETBFT_VERSION"
readonly BIN="$BIN_DIR/cometbft"

log() { echo "bootstrap: $*" >&2; }
die() {
    echo "bootstrap: ERROR: $*" >&2
    exit 1
}

# Prints the version reported by the binary at $1, or nothing if it cannot be run.
installed_version() {
    if [[ -x "$1" ]]; then
        "$1" version 2>/dev/null | head -n 1 | tr -d '[:space:]' || true
    fi
}

have="$(installed_version "$BIN")"
if [[ "$have" == "$COMETBFT_VERSION" ]]; then
    log "cometbft v$COMETBFT_VERSION already installed"
    echo "$BIN"
    exit 0
fi
if [[ -n "$have" ]]; then
    log "found cometbft reporting version '$have' at $BIN; reinstalling v$COMETBFT_VERSION"
fi

command -v go >/dev/null 2>&1 || die "the Go toolchain ('go') is required to install cometbft; see https://go.dev/dl/"

mkdir -p "$BIN_DIR"
log "installing cometbft v$COMETBFT_VERSION into $BIN_DIR (this can take a few minutes) ..."
# Install into a temporary directory first so that a concurrent or interrupted install never
# leaves a half-written binary at the final path.
tmp_bin_dir="$(mktemp -d "$BIN_DIR/.install.XXXXXX")"
trap 'rm -rf "$tmp_bin_dir"' EXIT
GOBIN="$tmp_bin_dir" GOFLAGS="${GOFLAGS:--mod=mod}" \
    go install "github.com/cometbft/cometbft/cmd/cometbft@v$COMETBFT_VERSION" >&2 ||
    die "go install github.com/cometbft/cometbft/cmd/cometbft@v$COMETBFT_VERSION failed"

new_version="$(installed_version "$tmp_bin_dir/cometbft")"
[[ "$new_version" == "$COMETBFT_VERSION" ]] ||
    die "installed cometbft reports version '$new_version', expected '$COMETBFT_VERSION'"
mv -f "$tmp_bin_dir/cometbft" "$BIN"

final_version="$(installed_version "$BIN")"
[[ "$final_version" == "$COMETBFT_VERSION" ]] ||
    die "$BIN reports version '$final_version', expected '$COMETBFT_VERSION'"
log "installed cometbft v$COMETBFT_VERSION"
echo "$BIN"
