#!/usr/bin/env bash
# make up: start the whole local stack in the background and wait until each part is ready.
# Idempotent: what already runs (and is ours) is reused, so a second call returns quickly.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
start=$SECONDS

# Prerequisites first, so the JVM scripts below find Java and Maven.
ensure_jdk_maven

# Fast, native services first; then the two JVMs in parallel (each takes 10-30 s).
bash "$here/postgres.sh" start
bash "$here/redis.sh" start

pids=() names=()
for svc in kafka opensearch; do
  bash "$here/$svc.sh" start & pids+=($!) names+=("$svc")
done
failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
done
if (( ${#failed[@]} )); then
  for svc in "${failed[@]}"; do warn "$svc failed to start: see $LOG_DIR/$svc.log"; done
  die "stack incomplete (${failed[*]} failed); 'make down' stops what did start"
fi

# The project's own services (registry, API, pipelines) once they exist.
if [[ -x "$here/services.sh" ]]; then bash "$here/services.sh" start; fi

say "stack up in $(( SECONDS - start ))s"
bash "$here/status.sh"
