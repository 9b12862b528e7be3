#!/usr/bin/env bash
# The whole test suite, as README and .ci/run call it. Works on a fresh Debian machine with
# the Rust toolchain: installs Prometheus and Chromium from apt when missing (tests drive the
# real programs; every other test server is started in-process on 127.0.0.1), then checks
# formatting, lints and generated files, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test programs (prometheus, chromium)"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked
