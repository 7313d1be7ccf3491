#!/usr/bin/env bash
# The project's own services, started by `make up` after the infrastructure:
#   registry   anineplus-registry on 127.0.0.1:8081 (Confluent REST API), then every topic's
#              value schema registered (`anineplus-schemas register`).
# Services are built in debug mode (`cargo build`), run in the background with their logs in
# .stack/logs/<service>.log, and reused when already running.
#
# Usage: services.sh start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/debug"
REGISTRY_LISTEN="${REGISTRY_LISTEN:-127.0.0.1:8081}"
SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://$REGISTRY_LISTEN}"

build() {
  say "building the services (cargo build, debug)"
  (cd "$ROOT" && cargo build -q --bin anineplus-registry --bin anineplus-schemas) \
    || die "cargo build failed"
}

registry_ready() { curl -fsS "$SCHEMA_REGISTRY_URL/schemas/types" >/dev/null 2>&1; }

start_registry() {
  if pid_alive registry && registry_ready; then say "registry already running"; return 0; fi
  stop_pid registry
  if port_open "${REGISTRY_LISTEN##*:}"; then
    die "port ${REGISTRY_LISTEN##*:} is taken by another process: $(ss -ltnp "sport = :${REGISTRY_LISTEN##*:}" 2>/dev/null | tail -n +2 | head -n 1)"
  fi
  say "starting registry on $SCHEMA_REGISTRY_URL"
  REGISTRY_LISTEN="$REGISTRY_LISTEN" start_bg registry "$BIN/anineplus-registry"
  wait_for registry 60 "$LOG_DIR/registry.log" registry_ready
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
  start_registry
  register_schemas
}

stop() { stop_pid registry; }

status() {
  if pid_alive registry; then status_line registry running "$SCHEMA_REGISTRY_URL" "$(cat "$RUN_DIR/registry.pid")"
  else status_line registry stopped "$SCHEMA_REGISTRY_URL"; fi
}

case "${1:-}" in
  start|stop|status) "$1" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
