#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds, checks
# formatting and lints, checks the AWS CDK app offline (local/infra-check.sh), then runs
# every test, including the ones that start real CometBFT networks on 127.0.0.1. Heavy
# artefacts are cached under ${DOME_CACHE:-$HOME/.cache/dome}.
set -euo pipefail
cd "$(dirname "$0")/.."

export DOME_CACHE="${DOME_CACHE:-$HOME/.cache/dome}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DOME_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { echo "== $*" >&2; }

step "tools"
DOME_COMETBFT_BIN="$(local/bootstrap.sh | tail -n 1)"
export DOME_COMETBFT_BIN
DOME_MOTO_SERVER="$(local/moto.sh | tail -n 1)"
export DOME_MOTO_SERVER

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --bins --locked
# Tests start these binaries as separate processes.
export DOME_ABCI_BIN="$CARGO_TARGET_DIR/debug/dome-abci"

step "AWS CDK app, checked offline"
# Quick profile: a real, runnable Lambda build (LTO off) in its own target dir
# ($DOME_CACHE/target-lambda), synth, assertion tests, cdk-nag, cfn-lint, checkov, then the
# smoke deployment into moto with tmf-api and the store/queue suites on what it deployed.
DOME_LAMBDA_QUICK=1 DOME_TMF_API_BIN="$CARGO_TARGET_DIR/debug/tmf-api" local/infra-check.sh

step "test"
# Network tests each start several validators: run them one at a time on a 2-core machine.
cargo test --workspace --locked -- --test-threads=1

step "TMF620 conformance kit"
# The official kit against the built tmf-api, once per store (DynamoDB: on a moto server).
for store in embedded dynamodb; do
    DOME_TMF_API_BIN="$CARGO_TARGET_DIR/debug/tmf-api" local/ctk.sh --store "$store"
done

step "TMF620 generated-input test"
# schemathesis against the official TMF620 swagger (local/schemathesis.sh lists its exclusions).
DOME_TMF_API_BIN="$CARGO_TARGET_DIR/debug/tmf-api" local/schemathesis.sh
