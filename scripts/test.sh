#!/usr/bin/env bash
# make test: unit tests (no services), then the real stack, then the integration tests.
# Integration tests never skip: a missing service fails them with its name and log path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
section() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

section "unit tests (no services)"
cargo test --workspace --lib --bins

section "local stack"
bash scripts/stack/up.sh

section "integration tests (real Kafka, OpenSearch, PostgreSQL, Redis)"
cargo test --workspace --test '*' -- --test-threads 4
