#!/usr/bin/env bash
# make test: unit tests (no services), then the real stack, then the integration tests.
# Integration tests never skip: a missing service fails them with its name and log path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
section() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
log_dir=target/test-logs
mkdir -p "$log_dir"

# run_phase NAME CMD...: run a cargo test phase, keep its output, fail the script if it fails.
run_phase() {
  local name=$1; shift
  set +e
  "$@" 2>&1 | tee "$log_dir/$name.log"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

# count WHAT LOG...: sum "N passed" / "N failed" over cargo's "test result:" lines.
count() {
  local what=$1; shift
  grep -hoE "[0-9]+ $what" "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

section "unit tests (no services)"
run_phase unit cargo test --workspace --lib --bins

section "local stack"
bash scripts/stack/up.sh

section "npm packages of the federation tests"
bash scripts/node-deps.sh

section "browser of the console's tests (chromium, chromedriver)"
bash scripts/browser-deps.sh

section "integration tests (real Kafka, OpenSearch, PostgreSQL, Redis, registry)"
run_phase integration cargo test --workspace --no-fail-fast --test '*' -- --test-threads 4

section "summary"
printf 'unit:        %s passed, %s failed\n' "$(count passed "$log_dir/unit.log")" "$(count failed "$log_dir/unit.log")"
printf 'integration: %s passed, %s failed\n' "$(count passed "$log_dir/integration.log")" "$(count failed "$log_dir/integration.log")"
echo "$(count passed "$log_dir"/unit.log "$log_dir"/integration.log) passed, $(count failed "$log_dir"/unit.log "$log_dir"/integration.log) failed"
