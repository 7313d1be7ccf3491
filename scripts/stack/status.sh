#!/usr/bin/env bash
# make status: what of the stack runs, and where.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
if [[ $CLUSTER == 1 ]]; then
  for svc in postgres redis; do bash "$here/$svc.sh" status; done
  for n in $(seq 1 "$KAFKA_NODES"); do KAFKA_NODE=$n bash "$here/kafka.sh" status; done
  for n in $(seq 1 "$OPENSEARCH_NODES"); do OPENSEARCH_NODE=$n bash "$here/opensearch.sh" status; done
else
  for svc in postgres redis kafka opensearch; do bash "$here/$svc.sh" status; done
fi
if [[ -x "$here/services.sh" ]]; then bash "$here/services.sh" status; fi
