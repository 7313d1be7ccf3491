#!/usr/bin/env bash
# make test-cluster: the failure drills on the cluster mode (CLUSTER=1: three Kafka nodes,
# two search nodes, two instances of every service; scripts/stack/cluster.env). Starts the
# cluster (installing what is missing, like `make up`), runs testkit/tests/cluster.rs (an
# ignored test in `make test`, run here with --ignored), and stops the cluster whatever the
# outcome. Runs beside the single-node stack: its own ports and .stack/cluster/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CLUSTER=1
section() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
log_dir=target/test-logs
mkdir -p "$log_dir"
start=$SECONDS
# the test binary first, so the cluster does not wait on the compiler
section "building the cluster tests"
cargo test -p anineplus-testkit --test cluster --no-run
cargo build --bin anineplus-search

trap 'section "stopping the cluster"; bash scripts/stack/down.sh || true' EXIT
section "cluster mode (3 Kafka nodes, 2 search nodes, 2 instances of every service)"
bash scripts/stack/up.sh

section "failure drills"
set +e
STACK_DIR="$PWD/.stack/cluster" cargo test -p anineplus-testkit --test cluster -- --ignored --nocapture 2>&1 | tee "$log_dir/cluster.log"
rc=${PIPESTATUS[0]}
set -e
section "summary"
grep -E '^test |test result:|^\[cluster' "$log_dir/cluster.log" || true
echo "cluster step: $(( SECONDS - start ))s, exit $rc"
exit "$rc"
