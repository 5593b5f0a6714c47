#!/usr/bin/env bash
# Every offline check of the AWS CDK app in infra/ (issue 5):
#   1. tools: npm packages (exact versions of infra/package-lock.json), cfn-lint + checkov and
#      cargo-lambda (which brings zig) in venvs, moto -- all cached OUTSIDE the clone under
#      ${DOME_CACHE:-$HOME/.cache/dome}; idempotent;
#   2. cargo lambda build --release of every function binary that exists in the workspace;
#   3. cdk synth of the marketplace stack (from that build output), the validator stack and
#      the data-only stack, with the test parameters of infra/test/fixtures;
#   4. assertion tests (node:test + aws-cdk-lib/assertions), cdk-nag AwsSolutions (synth fails
#      on an unsuppressed finding);
#   5. cfn-lint and checkov on the templates, skips only from infra/check-skips.txt;
#   6. smoke deployment of the data resources into moto's CloudFormation (infra/smoke), then,
#      with DOME_TMF_API_BIN (a host build of tmf-api), tmf-api run against the deployed
#      table and notification queue; then the DynamoDB store contract suite and the SQS
#      adapter tests (host cargo test) on the deployed table and queues, through
#      DOME_TEST_DYNAMODB_TABLE, DOME_TEST_SQS_QUEUE_URL, DOME_TEST_SQS_FIFO_QUEUE_URL and
#      DOME_TEST_AWS_ENDPOINT.
#
#   local/infra-check.sh                 everything
#   local/infra-check.sh --build-only    tools and the Lambda build only
#
# Environment: DOME_CACHE; DOME_LAMBDA_ARCH (arm64 default, x86_64 if the aarch64 Rust target
# cannot be installed); DOME_LAMBDA_TARGET_DIR (target dir of the Lambda build, default
# $DOME_CACHE/target-lambda, kept apart from the host one: other target triple and profile);
# CARGO_TARGET_DIR (the host target dir of the step-6 tests, default $DOME_CACHE/target);
# DOME_LAMBDA_PROFILE (cargo profile, default release); DOME_LAMBDA_QUICK=1 keeps that profile
# but turns LTO off and opt-level to 1 through CARGO_PROFILE_* variables: a real, runnable
# build for CI synth in far less time (not what you deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
readonly ROOT="$PWD"

export DOME_CACHE="${DOME_CACHE:-$HOME/.cache/dome}"
# local/test.sh calls this script with its own (host) CARGO_TARGET_DIR exported.
readonly HOST_TARGET_DIR="${CARGO_TARGET_DIR:-$DOME_CACHE/target}"
export CARGO_TARGET_DIR="${DOME_LAMBDA_TARGET_DIR:-$DOME_CACHE/target-lambda}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
readonly PYTHON="${PYTHON:-python3}"
readonly CARGO_LAMBDA_VERSION="1.9.2"
readonly CFN_LINT_VERSION="1.58.0"
readonly CHECKOV_VERSION="3.3.30"
readonly COMETBFT_VERSION="0.38.25"
# The functions of infra/functions.json, in order.
readonly FUNCTIONS=(tmf-api notifier publisher relay replicator)
BUILD_ONLY=false
[[ "${1:-}" == "--build-only" ]] && BUILD_ONLY=true

step() { echo "== infra: $*" >&2; }
die() {
    echo "infra: ERROR: $*" >&2
    exit 1
}

mkdir -p "$DOME_CACHE"
# One run at a time per cache: installs and the lambda output dir are shared.
exec 8>"$DOME_CACHE/.infra-check.lock"
command -v flock >/dev/null 2>&1 && flock 8

# A venv with exactly the given pinned packages; rebuilt when the pins change.
venv() {
    local dir="$1"
    shift
    local marker
    marker="$dir/.dome-$(echo "$*" | sha256sum | cut -c1-16)"
    if [[ -f "$marker" ]]; then return 0; fi
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir" >&2 || die "could not create a venv at $dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2 ||
        die "pip install $* failed"
    touch "$marker"
}

step "tools"
venv "$DOME_CACHE/venv-cargo-lambda" "cargo-lambda==$CARGO_LAMBDA_VERSION"
export PATH="$DOME_CACHE/venv-cargo-lambda/bin:$PATH"
LAMBDA_ARCH="${DOME_LAMBDA_ARCH:-arm64}"
if [[ "$LAMBDA_ARCH" == arm64 ]] && ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    # Graviton is the default; without the target (no access to static.rust-lang.org) the
    # build falls back to x86_64, which synthesizes the same stack with architecture x86_64.
    rustup target add aarch64-unknown-linux-gnu >&2 || {
        echo "infra: WARNING: rustup could not add aarch64-unknown-linux-gnu; building x86_64" >&2
        LAMBDA_ARCH=x86_64
    }
fi
case "$LAMBDA_ARCH" in
arm64) ARCH_FLAG=--arm64 GOARCH_VALUE=arm64 ;;
x86_64) ARCH_FLAG=--x86-64 GOARCH_VALUE=amd64 ;;
*) die "DOME_LAMBDA_ARCH must be arm64 or x86_64, got $LAMBDA_ARCH" ;;
esac
# Quick builds go to a folder of their own, so they are never mistaken for the release build.
if [[ "${DOME_LAMBDA_QUICK:-0}" == 1 ]]; then
    readonly ASSETS="$DOME_CACHE/lambda-assets/$LAMBDA_ARCH-quick"
else
    readonly ASSETS="$DOME_CACHE/lambda-assets/$LAMBDA_ARCH"
fi

step "cargo lambda build ($LAMBDA_ARCH, profile ${DOME_LAMBDA_PROFILE:-release})"
# Binaries being written by other issues appear in the workspace over time; build those that
# exist and say which are missing.
mapfile -t workspace_bins < <(cargo metadata --no-deps --format-version 1 --locked |
    "$PYTHON" -c 'import json, sys; [print(t["name"]) for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"]]')
build_args=()
missing=()
for fn in "${FUNCTIONS[@]}" dome-abci; do
    if printf '%s\n' "${workspace_bins[@]}" | grep -qx "$fn"; then
        build_args+=(--bin "$fn")
    else
        missing+=("$fn")
    fi
done
mkdir -p "$ASSETS"
if [[ "${DOME_LAMBDA_QUICK:-0}" == 1 ]]; then
    profile_var="CARGO_PROFILE_$(echo "${DOME_LAMBDA_PROFILE:-release}" | tr 'a-z-' 'A-Z_')"
    export "${profile_var}_LTO=off" "${profile_var}_OPT_LEVEL=1" "${profile_var}_CODEGEN_UNITS=16"
fi
cargo lambda build --locked $ARCH_FLAG --profile "${DOME_LAMBDA_PROFILE:-release}" \
    --lambda-dir "$ASSETS" "${build_args[@]}" >&2 || die "cargo lambda build failed"
# The validator runs dome-abci as a plain binary, not as a Lambda bootstrap.
readonly ABCI_BIN="$(dirname "$ASSETS")/dome-abci-$(basename "$ASSETS")"
cp "$ASSETS/dome-abci/bootstrap" "$ABCI_BIN"

# CometBFT for the validator's architecture: cross-compiled by the Go toolchain (pure Go).
readonly COMETBFT="$DOME_CACHE/cometbft-v$COMETBFT_VERSION-linux-$GOARCH_VALUE/cometbft"
if [[ ! -x "$COMETBFT" ]]; then
    command -v go >/dev/null 2>&1 || die "go is required to build CometBFT for the validator stack"
    # go install cross-compiles into <GOPATH>/bin/linux_<arch>/ (or <GOPATH>/bin natively);
    # a throw-away GOPATH keeps it away from the user's binaries, the shared GOMODCACHE
    # keeps downloads cached.
    tmp_gopath="$(mktemp -d)"
    modcache="$(go env GOMODCACHE)"
    env -u GOBIN GOPATH="$tmp_gopath" GOMODCACHE="$modcache" GOOS=linux GOARCH="$GOARCH_VALUE" CGO_ENABLED=0 \
        GOFLAGS=-mod=mod go install -trimpath "github.com/cometbft/cometbft/cmd/cometbft@v$COMETBFT_VERSION" >&2 ||
        die "building CometBFT v$COMETBFT_VERSION for linux/$GOARCH_VALUE failed"
    built="$(find "$tmp_gopath/bin" -name cometbft -type f | head -n 1)"
    [[ -n "$built" ]] || die "go install left no cometbft binary"
    mkdir -p "$(dirname "$COMETBFT")"
    mv "$built" "$COMETBFT"
    chmod -R u+w "$tmp_gopath" && rm -rf "$tmp_gopath"
fi

if ((${#missing[@]} > 0)); then
    # Synth needs a package per function. Until a binary exists, its package is a bootstrap
    # that fails every invocation with this message: CI can synthesize and check the stack,
    # and nothing built this way can serve traffic by accident.
    echo "infra: WARNING: not in the workspace yet, packaged as failing stand-ins: ${missing[*]}" >&2
    for fn in "${missing[@]}"; do
        [[ "$fn" == dome-abci ]] && die "dome-abci must exist"
        mkdir -p "$ASSETS/$fn"
        printf '#!/bin/sh\necho "dome: %s was not built (missing from the workspace when packaged)" >&2\nexit 1\n' "$fn" >"$ASSETS/$fn/bootstrap"
        chmod 0755 "$ASSETS/$fn/bootstrap"
    done
fi
$BUILD_ONLY && {
    echo "$ASSETS"
    exit 0
}

step "npm packages"
lock_hash="$(sha256sum infra/package-lock.json | cut -c1-16)"
readonly NPM_DIR="$DOME_CACHE/infra-npm/$lock_hash"
if [[ ! -f "$NPM_DIR/.complete" ]]; then
    rm -rf "$NPM_DIR"
    mkdir -p "$NPM_DIR"
    cp infra/package.json infra/package-lock.json "$NPM_DIR/"
    (cd "$NPM_DIR" && npm ci --no-audit --no-fund >&2) || die "npm ci failed"
    touch "$NPM_DIR/.complete"
fi
# infra/node_modules is a symlink into the cache (ignored by git).
if [[ -e infra/node_modules && ! -L infra/node_modules ]]; then
    die "infra/node_modules is a real directory; remove it (the packages live in $NPM_DIR)"
fi
ln -sfn "$NPM_DIR/node_modules" infra/node_modules

venv "$DOME_CACHE/venv-infra" "cfn-lint==$CFN_LINT_VERSION" "checkov==$CHECKOV_VERSION"
MOTO_SERVER="$(local/moto.sh | tail -n 1)"

step "typescript"
(cd infra && node_modules/.bin/tsc -p .) || die "tsc failed"

step "assertion tests"
(cd infra && node --test build/test/) || die "assertion tests failed"

step "cdk synth (marketplace, validator, data)"
OUT="$(mktemp -d)"
MOTO_PID=""
cleanup() {
    [[ -n "$MOTO_PID" ]] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
    rm -rf "$OUT"
}
trap cleanup EXIT
# Ctrl-C or a CI timeout: exit through the EXIT trap, so moto never outlives the script.
trap 'exit 130' INT
trap 'exit 143' TERM
# Fake account and region: synth is offline and the stacks need no lookups.
(cd infra && CDK_DEFAULT_ACCOUNT=123456789012 CDK_DEFAULT_REGION=eu-west-1 \
    node_modules/.bin/cdk synth --quiet --ci --output "$OUT/cdk.out" \
    -c marketplaceConfig=test/fixtures/marketplace.json -c lambdaAssets="$ASSETS" -c architecture="$LAMBDA_ARCH" \
    -c validatorConfig=test/fixtures/validator.json -c cometbftBinary="$COMETBFT" \
    -c abciBinary="$ABCI_BIN" \
    -c dataOnly=true >&2) || die "cdk synth failed (cdk-nag findings are printed above)"
templates=("$OUT"/cdk.out/*.template.json)
((${#templates[@]} == 3)) || die "expected 3 templates, got ${#templates[@]}"

step "cfn-lint"
mapfile -t cfn_skips < <(awk '$1 == "cfn-lint" {print $2}' infra/check-skips.txt)
"$DOME_CACHE/venv-infra/bin/cfn-lint" --ignore-checks "${cfn_skips[@]}" -- "${templates[@]}" || die "cfn-lint found problems"

step "checkov"
checkov_skips="$(awk '$1 == "checkov" {print $2}' infra/check-skips.txt | paste -sd, -)"
# No network: skip the guideline download.
BC_SKIP_MAPPING=TRUE "$DOME_CACHE/venv-infra/bin/checkov" --quiet --compact --skip-download \
    --framework cloudformation --skip-check "$checkov_skips" -d "$OUT/cdk.out" >&2 || die "checkov found problems"

step "smoke deployment of the data resources into moto"
port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$OUT/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 100); do
    "$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null && break
    sleep 0.2
done
smoke_args=("http://127.0.0.1:$port" "$OUT/cdk.out/DomeData.template.json" "$OUT/outputs.env")
if [[ -n "${DOME_TMF_API_BIN:-}" ]]; then
    [[ -x "$DOME_TMF_API_BIN" ]] || die "DOME_TMF_API_BIN=$DOME_TMF_API_BIN is not an executable"
    smoke_args+=("$DOME_TMF_API_BIN")
else
    echo "infra: NOTE: DOME_TMF_API_BIN not set: tmf-api is not run against the deployed resources" >&2
fi
"$(dirname "$MOTO_SERVER")/python" infra/smoke/deploy_data.py "${smoke_args[@]}" || die "smoke deployment failed"

step "store and queue tests on the deployed table and queues"
# KEY=value lines written by deploy_data.py (names and URLs moto's CloudFormation chose).
output() { awk -F= -v key="$1" '$1 == key {sub(/^[^=]*=/, ""); print}' "$OUT/outputs.env"; }
deployed_table="$(output TableName)"
notify_queue="$(output NotifyQueueUrl)"
replication_queue="$(output ReplicationQueueUrl)"
[[ -n "$deployed_table" && -n "$notify_queue" && -n "$replication_queue" ]] ||
    die "stack outputs missing in $OUT/outputs.env"
# The suites empty the table and purge the queues before each case (they refuse a
# non-loopback endpoint); run after the tmf-api check, which reads what it wrote.
CARGO_TARGET_DIR="$HOST_TARGET_DIR" \
    DOME_TEST_AWS_ENDPOINT="http://127.0.0.1:$port" \
    DOME_TEST_DYNAMODB_TABLE="$deployed_table" \
    DOME_TEST_SQS_QUEUE_URL="$notify_queue" \
    DOME_TEST_SQS_FIFO_QUEUE_URL="$replication_queue" \
    cargo test --locked -p dome-store-dynamodb -p dome-queue-sqs --tests >&2 ||
    die "store or queue tests failed on the deployed resources"
echo "infra: all checks passed ($LAMBDA_ARCH)" >&2
