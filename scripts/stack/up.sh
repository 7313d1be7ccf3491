#!/usr/bin/env bash
# make up: start the whole local stack in the background and wait until each part is ready.
# Idempotent: what already runs (and is ours) is reused, so a second call returns quickly.
# CLUSTER=1: the cluster mode (scripts/stack/cluster.env): three Kafka nodes, two search
# nodes, two instances of every project service, beside the single-node stack.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
start=$SECONDS

# Prerequisites first, so the JVM scripts below find Java and Maven.
ensure_jdk_maven

# Fast, native services first; then the two JVMs in parallel (each takes 10-30 s).
bash "$here/postgres.sh" start
bash "$here/redis.sh" start

pids=() names=()
if [[ $CLUSTER == 1 ]]; then
  # cluster mode: every node at once (a quorum forms only when a majority is up)
  for n in $(seq 1 "$KAFKA_NODES"); do
    KAFKA_NODE=$n bash "$here/kafka.sh" start & pids+=($!) names+=("kafka-$n")
  done
  for n in $(seq 1 "$OPENSEARCH_NODES"); do
    OPENSEARCH_NODE=$n bash "$here/opensearch.sh" start & pids+=($!) names+=("opensearch-$n")
  done
else
  for svc in kafka opensearch; do
    bash "$here/$svc.sh" start & pids+=($!) names+=("$svc")
  done
fi
failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
done
if (( ${#failed[@]} )); then
  for svc in "${failed[@]}"; do warn "$svc failed to start: see $LOG_DIR/$svc.log"; done
  die "stack incomplete (${failed[*]} failed); 'make down' stops what did start"
fi
if [[ $CLUSTER == 1 ]]; then
  # every search node joined, every shard has its replica
  wait_for opensearch-cluster 120 "$LOG_DIR/opensearch-1.log" curl -fsS --max-time 5 \
    "${ELASTICSEARCH_URL%%,*}/_cluster/health?wait_for_nodes=$OPENSEARCH_NODES&wait_for_status=green&timeout=2s"
fi

# The project's own services (registry, API, pipelines) once they exist.
if [[ -x "$here/services.sh" ]]; then bash "$here/services.sh" start; fi

say "stack up in $(( SECONDS - start ))s"
bash "$here/status.sh"
