#!/usr/bin/env bash
# The project's own services, started by `make up` after the infrastructure, in order:
#   registry  anineplus-registry on 127.0.0.1:8081 (Confluent REST API); then every topic's
#             value schema is registered (`anineplus-schemas register`)
#   api       anineplus-api on 127.0.0.1:3000 (GraphQL, outbox relay), API_ENV=dev
#   indexer   anineplus-indexer (search indexer), metrics and health on 127.0.0.1:9464
# They are built in debug mode (`cargo build`), run in the background with their logs in
# .stack/logs/<service>.log, and reused when already running and healthy.
#
# Usage: services.sh start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/debug"
REGISTRY_LISTEN="${REGISTRY_LISTEN:-127.0.0.1:8081}"
SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://$REGISTRY_LISTEN}"
API_LISTEN="${API_LISTEN:-127.0.0.1:3000}"
METRICS_LISTEN="${METRICS_LISTEN:-127.0.0.1:9464}"

# name  binary  health URL  (start order; stopped in reverse)
SERVICES=(
  "registry anineplus-registry http://$REGISTRY_LISTEN/schemas/types"
  "api anineplus-api http://$API_LISTEN/health/ready"
  "indexer anineplus-indexer http://$METRICS_LISTEN/health"
)

build() {
  say "building the services (cargo build, debug)"
  (cd "$ROOT" && cargo build -q --bin anineplus-registry --bin anineplus-schemas \
    --bin anineplus-api --bin anineplus-indexer --bin anineplus-dlq) || die "cargo build failed"
}

healthy() { curl -fsS "$1" >/dev/null 2>&1; }

# start_service NAME BINARY HEALTH_URL
start_service() {
  local name=$1 binary=$2 health=$3
  if pid_alive "$name" && healthy "$health"; then say "$name already running"; return 0; fi
  stop_pid "$name"
  local port=${health#http://*:}; port=${port%%/*}
  if port_open "$port"; then
    die "port $port (for $name) is taken by another process: $(ss -ltnp "sport = :$port" 2>/dev/null | tail -n +2 | head -n 1)"
  fi
  say "starting $name (health: $health)"
  start_bg "$name" env API_ENV="${API_ENV:-dev}" REGISTRY_LISTEN="$REGISTRY_LISTEN" \
    SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL" API_LISTEN="$API_LISTEN" METRICS_LISTEN="$METRICS_LISTEN" \
    RUST_LOG="${RUST_LOG:-info,rdkafka=warn}" "$BIN/$binary"
  wait_for "$name" 90 "$LOG_DIR/$name.log" healthy "$health"
}

register_schemas() {
  "$BIN/anineplus-schemas" --registry "$SCHEMA_REGISTRY_URL" register >"$LOG_DIR/schemas-register.log" 2>&1 || {
    cat "$LOG_DIR/schemas-register.log" >&2
    die "the registry refused a topic schema (see above): fix the .avsc or the subject's compatibility"
  }
  say "every topic's value schema is registered ($(grep -c '^registered' "$LOG_DIR/schemas-register.log") subjects)"
}

start() {
  build
  local entry
  for entry in "${SERVICES[@]}"; do
    # shellcheck disable=SC2086  # entry is "name binary url"
    start_service $entry
    [[ ${entry%% *} == registry ]] && register_schemas
  done
  return 0
}

stop() {
  local i
  for (( i = ${#SERVICES[@]} - 1; i >= 0; i-- )); do stop_pid "${SERVICES[$i]%% *}"; done
}

status() {
  local entry name url
  for entry in "${SERVICES[@]}"; do
    name=${entry%% *}; url=${entry##* }
    if pid_alive "$name"; then
      if healthy "$url"; then status_line "$name" running "${url%%/[a-z]*}" "$(cat "$RUN_DIR/$name.pid")"
      else status_line "$name" "running (unhealthy)" "${url%%/[a-z]*}" "$(cat "$RUN_DIR/$name.pid")"; fi
    else status_line "$name" stopped "${url%%/[a-z]*}"; fi
  done
}

case "${1:-}" in
  start|stop|status) "$1" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
