#!/usr/bin/env bash
# make bench-cluster: the cluster mode's benchmarks (pipelines/indexer/benches/cluster.rs):
# the cost of replication (rf3_vs_rf1_produce_ratio) and the indexer with two instances
# against one (indexer_scaling_ratio, the engine's own rates beside it). Starts the cluster
# mode like `make up CLUSTER=1` (installing what is missing) and leaves it running, like
# `make bench` leaves the stack: `make down CLUSTER=1` stops it. Figures go to
# target/bench/cluster.json (or $BENCH_RESULTS), apart from make bench's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CLUSTER=1
# The cluster's addresses (scripts/stack/cluster.env), exported for the bench.
source scripts/stack/lib.sh
export BENCH_RESULTS="${BENCH_RESULTS:-$PWD/target/bench/cluster.json}"
export BENCH_CLUSTER_RECORDS="${BENCH_CLUSTER_RECORDS:-200000}" # produce arms: records each
export BENCH_EVENTS="${BENCH_EVENTS:-100000}"                   # indexer arms: events
# The release build first, so the cluster does not wait on the compiler.
cargo bench -p anineplus-indexer --bench cluster --no-run
bash scripts/stack/up.sh
rm -f "$BENCH_RESULTS"
started=$SECONDS
BENCH_CLUSTER=1 cargo bench -p anineplus-indexer --bench cluster
echo "bench-cluster: ran in $((SECONDS - started)) s; figures in $BENCH_RESULTS"
cargo run -q -p anineplus-testkit --bin bench-report
