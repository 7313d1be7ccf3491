#!/usr/bin/env bash
# make down: stop everything `make up` started (by pid file / our own data dir), nothing else.
# CLUSTER=1: the cluster mode's processes (under .stack/cluster/), never the single-node stack's.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
if [[ -x "$here/services.sh" ]]; then bash "$here/services.sh" stop; fi
if [[ $CLUSTER == 1 ]]; then
  for n in $(seq 1 "$OPENSEARCH_NODES"); do OPENSEARCH_NODE=$n bash "$here/opensearch.sh" stop; done
  for n in $(seq 1 "$KAFKA_NODES"); do KAFKA_NODE=$n bash "$here/kafka.sh" stop; done
  for svc in redis postgres; do bash "$here/$svc.sh" stop; done
else
  for svc in opensearch kafka redis postgres; do bash "$here/$svc.sh" stop; done
fi
say "stack down"
