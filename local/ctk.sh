#!/usr/bin/env bash
# Runs the official TM Forum TMF620 conformance kit (CTK) against a local tmf-api.
#
#   local/ctk.sh                      # embedded store (the default)
#   local/ctk.sh --store dynamodb     # DynamoDB store on a local moto server
#   DOME_CTK_STORE=dynamodb local/ctk.sh
#
# 1. Installs newman (pinned below) into ${DOME_CACHE:-$HOME/.cache/dome}/node-newman with npm,
#    unless exactly that version is already there.
# 2. Builds tmf-api (or uses $DOME_TMF_API_BIN) and starts it on a free loopback port with
#    authentication off (the kit sends no Authorization header; DOME_AUTH=none is refused on
#    Lambda) and a throw-away store:
#    - embedded: a redb file in a temporary directory;
#    - dynamodb: a moto server (the launcher from $DOME_MOTO_SERVER, else from local/moto.sh)
#      on a free loopback port, with the table created before tmf-api starts and tmf-api
#      pointed at it through the standard AWS variables and obviously fake credentials.
# 3. Runs the kit, unmodified, from ../shared/tmf beside the repository ($DOME_TMF_DIR
#    overrides the folder), and requires every assertion to pass.
# The server (and moto) are always stopped and the temporary directory removed, whatever
# happens; moto also dies if this script is killed outright (parent-death signal).
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

STORE="${DOME_CTK_STORE:-embedded}"
while [[ $# -gt 0 ]]; do
    case "$1" in
    --store)
        [[ $# -ge 2 ]] || die "--store needs a value: embedded or dynamodb"
        STORE="$2"
        shift 2
        ;;
    --store=*)
        STORE="${1#--store=}"
        shift
        ;;
    *) die "unknown argument '$1' (usage: local/ctk.sh [--store embedded|dynamodb])" ;;
    esac
done
case "$STORE" in
embedded | dynamodb) ;;
*) die "unknown store '$STORE': expected embedded or dynamodb" ;;
esac
readonly STORE
# The table tmf-api uses on the throw-away moto server.
readonly TABLE="dome-ctk"

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

# --- tmf-api binary -----------------------------------------------------------------------
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
MOTO_PID=""
# Stops a child: SIGTERM, then SIGKILL if it is still there after 5 s.
stop() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop "$SERVER_PID"
    stop "$MOTO_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the store ----------------------------------------------------------------------------
if [[ "$STORE" == "dynamodb" ]]; then
    MOTO_BIN="${DOME_MOTO_SERVER:-}"
    [[ -n "$MOTO_BIN" ]] || MOTO_BIN="$("$ROOT/local/moto.sh" | tail -n 1)"
    [[ -x "$MOTO_BIN" ]] || die "no moto server launcher at $MOTO_BIN (see local/moto.sh)"
    # The launcher is a script of the moto venv, whose Python also has boto3 (a moto
    # dependency) for creating the table.
    MOTO_PYTHON="$(dirname "$MOTO_BIN")/python"
    [[ -x "$MOTO_PYTHON" ]] || die "no Python beside the moto launcher at $MOTO_PYTHON"

    # Another process may take the probed port before moto binds it; moto then exits and
    # another port is tried.
    for attempt in 1 2 3; do
        MOTO_PORT="$("$MOTO_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')"
        # SIGKILL moto when this shell dies, even by SIGKILL, when no trap runs.
        "$MOTO_PYTHON" -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, 9) != 0:  # PR_SET_PDEATHSIG, SIGKILL
    sys.exit("prctl(PR_SET_PDEATHSIG) failed")
if os.getppid() != int(sys.argv[1]):
    sys.exit("parent exited during start-up")
os.execv(sys.argv[2], sys.argv[2:])' "$$" "$MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT" \
            >"$WORK/moto.log" 2>&1 &
        MOTO_PID=$!
        set +e
        # Waits until moto answers, then creates the table and waits until it is active.
        # Exit status 3: moto exited during start-up.
        env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE \
            "$MOTO_PYTHON" - "$MOTO_PORT" "$MOTO_PID" "$TABLE" <<'EOF'
import os, sys, time, urllib.error, urllib.request

import boto3

port, pid, table = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
endpoint = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + 60
while True:
    try:
        os.kill(pid, 0)  # bash reaps its children, so a dead moto is gone
    except ProcessLookupError:
        sys.exit(3)
    try:
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
        break
    except urllib.error.HTTPError:
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"moto did not answer on port {port} within 60 s")
        time.sleep(0.1)

client = boto3.client(
    "dynamodb",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
client.create_table(
    TableName=table,
    AttributeDefinitions=[
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ],
    KeySchema=[
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    BillingMode="PAY_PER_REQUEST",
)
client.get_waiter("table_exists").wait(
    TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
)
EOF
        MOTO_STATUS=$?
        set -e
        [[ "$MOTO_STATUS" -eq 0 ]] && break
        stop "$MOTO_PID"
        MOTO_PID=""
        if [[ "$MOTO_STATUS" -ne 3 || "$attempt" -eq 3 ]]; then
            cat "$WORK/moto.log" >&2 || true
            die "could not start moto and create the table (status $MOTO_STATUS)"
        fi
        log "moto exited during start-up on port $MOTO_PORT; trying another port"
    done
    log "moto listening on 127.0.0.1:$MOTO_PORT, table $TABLE"
    # The standard AWS SDK variables, with obviously fake credentials; nothing from the
    # caller's AWS configuration may leak in.
    STORE_ENV=(
        -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_DEFAULT_PROFILE
        DOME_STORE="dynamodb"
        DOME_TABLE="$TABLE"
        AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
        AWS_ACCESS_KEY_ID="testing"
        AWS_SECRET_ACCESS_KEY="testing"
        AWS_REGION="us-east-1"
        AWS_EC2_METADATA_DISABLED="true"
    )
else
    STORE_ENV=(
        DOME_STORE="embedded"
        DOME_DATA_DIR="$WORK/data"
    )
fi

# --- tmf-api ------------------------------------------------------------------------------
env "${STORE_ENV[@]}" \
    DOME_LISTEN="127.0.0.1:0" \
    DOME_ADDR_FILE="$WORK/addr" \
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
log "tmf-api listening on $ADDR ($STORE store)"

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
log "TMF620 CTK ($STORE store): $TOTAL assertions, $FAILED failed; $REQUESTS requests, $REQUEST_FAILURES failed"
if [[ "$NEWMAN_STATUS" -ne 0 || "$FAILED" -ne 0 || "$REQUEST_FAILURES" -ne 0 || "$TOTAL" -eq 0 ]]; then
    log "server log:"
    tail -n 50 "$WORK/server.log" >&2 || true
    if [[ -f "$WORK/moto.log" ]]; then
        log "moto log:"
        tail -n 50 "$WORK/moto.log" >&2 || true
    fi
    die "conformance kit failed on the $STORE store"
fi
log "passed ($STORE store)"
