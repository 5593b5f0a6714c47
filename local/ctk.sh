#!/usr/bin/env bash
# Runs the official TM Forum TMF620 conformance kit (CTK) against a local tmf-api.
#
#   local/ctk.sh
#
# 1. Installs newman (pinned below) into ${DOME_CACHE:-$HOME/.cache/dome}/node-newman with npm,
#    unless exactly that version is already there.
# 2. Builds tmf-api (or uses $DOME_TMF_API_BIN) and starts it on a free loopback port with the
#    embedded store in a temporary directory and authentication off (the kit sends no
#    Authorization header; DOME_AUTH=none is refused on Lambda).
# 3. Runs the kit, unmodified, from ../shared/tmf beside the repository ($DOME_TMF_DIR
#    overrides the folder), and requires every assertion to pass.
# The server is always stopped and the temporary directory removed, whatever happens.
# Exit status: 0 when the kit ran with 0 failed assertions.
set -euo pipefail

readonly NEWMAN_VERSION="6.2.2"
readonly ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly CACHE_DIR="${DOME_CACHE:-$HOME/.cache/dome}"
readonly NEWMAN_DIR="$CACHE_DIR/node-newman"
readonly NEWMAN_MARKER="$NEWMAN_DIR/.dome-newman-$NEWMAN_VERSION"
readonly TMF_DIR="${DOME_TMF_DIR:-$ROOT/../shared/tmf}"
readonly COLLECTION="$TMF_DIR/ctk/CTK-TMF620-ProductCatalog/ctk/CTK-Product_Catalog-4.0.0.postman_collection.json"
readonly API_PATH="/tmf-api/productCatalogManagement/v4/"

log() { echo "ctk: $*" >&2; }
die() {
    echo "ctk: ERROR: $*" >&2
    exit 1
}

[[ -f "$COLLECTION" ]] || die "conformance kit not found at $COLLECTION (set DOME_TMF_DIR)"
command -v npm >/dev/null 2>&1 || die "npm (Node.js 16 or later) is required"

# --- newman -------------------------------------------------------------------------------
newman_ready() {
    [[ -f "$NEWMAN_MARKER" && -x "$NEWMAN_DIR/node_modules/.bin/newman" ]] &&
        [[ "$("$NEWMAN_DIR/node_modules/.bin/newman" --version 2>/dev/null)" == "$NEWMAN_VERSION" ]]
}

if newman_ready; then
    log "newman $NEWMAN_VERSION already installed"
else
    mkdir -p "$NEWMAN_DIR"
    # Two runs starting at once must not install into the same folder together.
    exec 9>"$CACHE_DIR/.node-newman.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
    if ! newman_ready; then
        log "installing newman $NEWMAN_VERSION into $NEWMAN_DIR"
        rm -f "$NEWMAN_MARKER"
        [[ -f "$NEWMAN_DIR/package.json" ]] ||
            echo '{"name":"dome-node-newman","private":true}' >"$NEWMAN_DIR/package.json"
        npm install --prefix "$NEWMAN_DIR" --no-audit --no-fund --loglevel=error \
            --save-exact "newman@$NEWMAN_VERSION" >&2
        newman_version="$("$NEWMAN_DIR/node_modules/.bin/newman" --version)"
        [[ "$newman_version" == "$NEWMAN_VERSION" ]] ||
            die "installed newman reports $newman_version, expected $NEWMAN_VERSION"
        touch "$NEWMAN_MARKER"
    fi
    exec 9>&-
fi

# --- tmf-api ------------------------------------------------------------------------------
if [[ -n "${DOME_TMF_API_BIN:-}" ]]; then
    BIN="$DOME_TMF_API_BIN"
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
    log "building tmf-api"
    (cd "$ROOT" && cargo build --quiet -p dome-tmf-api --bin tmf-api)
    BIN="$CARGO_TARGET_DIR/debug/tmf-api"
fi
[[ -x "$BIN" ]] || die "no tmf-api binary at $BIN"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dome-ctk.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DOME_LISTEN="127.0.0.1:0" \
    DOME_ADDR_FILE="$WORK/addr" \
    DOME_DATA_DIR="$WORK/data" \
    DOME_STORE="embedded" \
    DOME_AUTH="none" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$BIN" 2>"$WORK/server.log" &
SERVER_PID=$!

for _ in $(seq 1 300); do
    [[ -s "$WORK/addr" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || {
        cat "$WORK/server.log" >&2
        die "tmf-api exited during start-up"
    }
    sleep 0.1
done
[[ -s "$WORK/addr" ]] || die "tmf-api did not report its address"
ADDR="$(cat "$WORK/addr")"
URL="http://$ADDR$API_PATH"
log "tmf-api listening on $ADDR"

# --- the kit ------------------------------------------------------------------------------
REPORT="$WORK/report.json"
set +e
(cd "$NEWMAN_DIR" && npx --no-install newman run "$COLLECTION" \
    --env-var "Product_Catalog=$URL" \
    --reporters cli,json --reporter-json-export "$REPORT" \
    --color off)
NEWMAN_STATUS=$?
set -e

[[ -f "$REPORT" ]] || die "newman wrote no report (exit status $NEWMAN_STATUS)"
read -r TOTAL FAILED REQUESTS REQUEST_FAILURES < <(node -e '
    const stats = require(process.argv[1]).run.stats;
    console.log(stats.assertions.total, stats.assertions.failed,
                stats.requests.total, stats.requests.failed);
' "$REPORT")
log "TMF620 CTK: $TOTAL assertions, $FAILED failed; $REQUESTS requests, $REQUEST_FAILURES failed"
if [[ "$NEWMAN_STATUS" -ne 0 || "$FAILED" -ne 0 || "$REQUEST_FAILURES" -ne 0 || "$TOTAL" -eq 0 ]]; then
    log "server log:"
    tail -n 50 "$WORK/server.log" >&2 || true
    die "conformance kit failed"
fi
log "passed"
