#!/usr/bin/env bash
# The project's own services, started by `make up` after the infrastructure, in order:
#   registry  anineplus-registry on 127.0.0.1:8081 (Confluent REST API); then every topic's
#             value schema is registered (`anineplus-schemas register`)
#   api       anineplus-api on 127.0.0.1:3000 (GraphQL, outbox relay), API_ENV=dev
#   indexer   anineplus-indexer (search indexer), metrics and health on 127.0.0.1:9464
#   log-index    anineplus-logs index (logs topic → daily indices logs-<service>-YYYY.MM.DD),
#                metrics and health on 127.0.0.1:9465
#   log-archive  anineplus-logs archive (logs topic → gzip files under .stack/logs-archive),
#                metrics and health on 127.0.0.1:9466
#   log-alerts   anineplus-logs alerts (error rates → alerts topic), metrics and health on
#                127.0.0.1:9467
#   analytics    anineplus-analytics (comments per anime per hour, subscriptions per plan,
#                exactly once → anime-stats topic and index), metrics and health on
#                127.0.0.1:9468
#   console      anineplus-console, the operators' console on http://127.0.0.1:8080
#                (health /health); it reads the registry as its own user `console`
# The registry requires credentials to write: the first start generates a password per
# client (admin, schemas, api, indexer, logs, analytics, tools, console) into .stack/registry/credentials (lines of
# user:password, mode 600, never committed) and the registry's users file beside it
# (auth.json); each service gets its own user in the userinfo of its SCHEMA_REGISTRY_URL.
# Anonymous reads stay open on this dev stack (REGISTRY_ANONYMOUS_READ=true).
# They are built in debug mode (`cargo build`), run in the background with their logs in
# .stack/logs/<service>.log, and reused when already running and healthy.
#
# Cluster mode (CLUSTER=1, scripts/stack/cluster.env): one registry, then two instances of
# every other service, named <service>-1 and <service>-2, on the ports of cluster.env (each
# run of this script with INSTANCE=<n> and that instance's listen addresses); the two
# analytics instances are ANALYTICS_INSTANCE 0 and 1, each console watches its own instance's
# pipelines.
#
# Usage: services.sh start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/debug"
REGISTRY_LISTEN="${REGISTRY_LISTEN:-127.0.0.1:8081}"
SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://$REGISTRY_LISTEN}"
API_LISTEN="${API_LISTEN:-127.0.0.1:3000}"
METRICS_LISTEN="${METRICS_LISTEN:-127.0.0.1:9464}"
LOG_INDEX_METRICS_LISTEN="${LOG_INDEX_METRICS_LISTEN:-127.0.0.1:9465}"
LOG_ARCHIVE_METRICS_LISTEN="${LOG_ARCHIVE_METRICS_LISTEN:-127.0.0.1:9466}"
LOG_ALERTS_METRICS_LISTEN="${LOG_ALERTS_METRICS_LISTEN:-127.0.0.1:9467}"
ANALYTICS_METRICS_LISTEN="${ANALYTICS_METRICS_LISTEN:-127.0.0.1:9468}"
CONSOLE_LISTEN="${CONSOLE_LISTEN:-127.0.0.1:8080}"
LOG_ARCHIVE_DIR="${LOG_ARCHIVE_DIR:-$STACK_DIR/logs-archive}"
INSTANCE="${INSTANCE:-}"

# name  binary  health URL  [arguments]  (start order; stopped in reverse)
SERVICES=(
  "registry anineplus-registry http://$REGISTRY_LISTEN/schemas/types"
  "api anineplus-api http://$API_LISTEN/health/ready"
  "indexer anineplus-indexer http://$METRICS_LISTEN/health"
  "log-index anineplus-logs http://$LOG_INDEX_METRICS_LISTEN/health index --metrics-listen $LOG_INDEX_METRICS_LISTEN"
  "log-archive anineplus-logs http://$LOG_ARCHIVE_METRICS_LISTEN/health archive --metrics-listen $LOG_ARCHIVE_METRICS_LISTEN"
  "log-alerts anineplus-logs http://$LOG_ALERTS_METRICS_LISTEN/health alerts --metrics-listen $LOG_ALERTS_METRICS_LISTEN"
  "analytics anineplus-analytics http://$ANALYTICS_METRICS_LISTEN/health --metrics-listen $ANALYTICS_METRICS_LISTEN"
  "console anineplus-console http://$CONSOLE_LISTEN/health --listen $CONSOLE_LISTEN"
)

build() {
  # (the cluster drills restart killed instances from a built tree: SERVICES_NO_BUILD=1)
  [[ ${SERVICES_NO_BUILD:-0} == 1 ]] && return 0
  say "building the services (cargo build, debug)"
  (cd "$ROOT" && cargo build -q --bin anineplus-registry --bin anineplus-schemas \
    --bin anineplus-api --bin anineplus-indexer --bin anineplus-logs --bin anineplus-analytics --bin anineplus-dlq --bin anineplus-console) || die "cargo build failed"
}

healthy() { curl -fsS "$1" >/dev/null 2>&1; }

REGISTRY_AUTH_DIR="$STACK_DIR/registry"
REGISTRY_CLIENTS=(admin schemas api indexer logs analytics tools console)

# The registry's users (idempotent: passwords are generated once and kept).
registry_credentials() {
  local file="$REGISTRY_AUTH_DIR/credentials" user
  mkdir -p "$REGISTRY_AUTH_DIR"
  if [[ ! -s $file ]]; then
    say "generating the registry's credentials ($file)"
    (umask 077; for user in "${REGISTRY_CLIENTS[@]}"; do
      echo "$user:$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)"
    done >"$file")
  fi
  # A client added since the file was made gets its password now.
  for user in "${REGISTRY_CLIENTS[@]}"; do
    grep -q "^$user:" "$file" || (umask 077; echo "$user:$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)" >>"$file")
  done
  # What each user may do: admin everything; schemas, api (it registers its topics' schemas
  # at start) write the value subjects; indexer, logs (the log pipelines), analytics (it
  # looks up anime-stats, registered here), tools (DLQ, search) and console (it decodes the
  # dead letters it shows) read.
  (umask 077; {
    echo '{"users": ['
    local sep=""
    while IFS=: read -r user password; do
      printf '%s{"username": "%s", "algorithm": "plain", "password": "%s"}\n' "$sep" "$user" "$password"; sep=","
    done <"$file"
    echo '], "permissions": ['
    echo '{"username": "admin", "operation": "Write", "resource": "Config:"},'
    echo '{"username": "admin", "operation": "Write", "resource": "Subject:*"},'
    echo '{"username": "schemas", "operation": "Write", "resource": "Subject:*-value"},'
    echo '{"username": "api", "operation": "Write", "resource": "Subject:*-value"},'
    echo '{"username": "indexer", "operation": "Read", "resource": "Subject:*"},'
    echo '{"username": "logs", "operation": "Read", "resource": "Subject:*"},'
    echo '{"username": "analytics", "operation": "Read", "resource": "Subject:*"},'
    echo '{"username": "tools", "operation": "Read", "resource": "Subject:*"},'
    echo '{"username": "console", "operation": "Read", "resource": "Subject:*"}'
    echo ']}'
  } >"$REGISTRY_AUTH_DIR/auth.json")
}

# registry_url USER: the registry's URL with USER's credentials.
registry_url() {
  local userinfo
  userinfo=$(grep "^$1:" "$REGISTRY_AUTH_DIR/credentials")
  echo "${SCHEMA_REGISTRY_URL/:\/\//://$userinfo@}"
}

# start_service NAME BINARY HEALTH_URL [ARGS...]
start_service() {
  local name=$1 binary=$2 health=$3; shift 3
  # Each service reaches the registry as its own user (the registry itself as admin).
  local client=$name; [[ $name == registry ]] && client=admin; [[ $name == log-* ]] && client=logs
  name+=${INSTANCE:+-$INSTANCE}
  if pid_alive "$name" && healthy "$health"; then say "$name already running"; return 0; fi
  stop_pid "$name"
  local port=${health#http://*:}; port=${port%%/*}
  if port_open "$port"; then
    die "port $port (for $name) is taken by another process: $(ss -ltnp "sport = :$port" 2>/dev/null | tail -n +2 | head -n 1)"
  fi
  say "starting $name (health: $health)"
  local service_registry_url; service_registry_url=$(registry_url "$client")
  start_bg "$name" env API_ENV="${API_ENV:-dev}" REGISTRY_LISTEN="$REGISTRY_LISTEN" \
    REGISTRY_AUTH_FILE="$REGISTRY_AUTH_DIR/auth.json" REGISTRY_ANONYMOUS_READ="${REGISTRY_ANONYMOUS_READ:-true}" \
    SCHEMA_REGISTRY_URL="$service_registry_url" API_LISTEN="$API_LISTEN" METRICS_LISTEN="$METRICS_LISTEN" \
    LOG_ARCHIVE_DIR="$LOG_ARCHIVE_DIR" RUST_LOG="${RUST_LOG:-info,rdkafka=warn}" "$BIN/$binary" "$@"
  wait_for "$name" 90 "$LOG_DIR/$name.log" healthy "$health"
}

register_schemas() {
  "$BIN/anineplus-schemas" --registry "$(registry_url schemas)" register >"$LOG_DIR/schemas-register.log" 2>&1 || {
    cat "$LOG_DIR/schemas-register.log" >&2
    die "the registry refused a topic schema (see above): fix the .avsc or the subject's compatibility"
  }
  say "every topic's value schema is registered ($(grep -c '^registered' "$LOG_DIR/schemas-register.log") subjects)"
}

start() {
  build
  registry_credentials
  local entry
  if [[ $CLUSTER == 1 ]]; then
    # shellcheck disable=SC2086  # entry is "name binary url"
    start_service ${SERVICES[0]}
    register_schemas
    local i
    for i in $(seq 1 "$SERVICE_INSTANCES"); do
      instance_env "$i" bash "${BASH_SOURCE[0]}" start-instance || die "instance $i did not start"
    done
    return 0
  fi
  for entry in "${SERVICES[@]}"; do
    # shellcheck disable=SC2086  # entry is "name binary url"
    start_service $entry
    [[ ${entry%% *} == registry ]] && register_schemas
  done
  return 0
}

# instance_env N CMD...: CMD with the environment of the cluster mode's instance N.
instance_env() {
  local i=$1; shift
  port() { echo "127.0.0.1:$(instance_port "$1" "$i")"; }
  local metrics log_index log_archive log_alerts analytics
  metrics=$(port 19464) log_index=$(port 19465) log_archive=$(port 19466) log_alerts=$(port 19467) analytics=$(port 19468)
  # the console's pipelines: the default list, on this instance's metrics addresses
  local pipelines="indexer=http://$metrics;anineplus-indexer:anime+episode+user+organization+comment+subscription"
  pipelines+=",log-index=http://$log_index;anineplus-log-index:logs,log-archive=http://$log_archive;anineplus-log-archive:logs"
  pipelines+=",log-alerts=http://$log_alerts;anineplus-log-alerts:logs"
  pipelines+=",analytics-comments=http://$analytics;anineplus-analytics-comments:comment"
  pipelines+=",analytics-subscriptions=http://$analytics;anineplus-analytics-subscriptions:subscription"
  pipelines+=",analytics-index=http://$analytics;anineplus-analytics-index:anime-stats"
  env INSTANCE="$i" API_LISTEN="$(port 13000)" METRICS_LISTEN="$metrics" \
    LOG_INDEX_METRICS_LISTEN="$log_index" LOG_ARCHIVE_METRICS_LISTEN="$log_archive" \
    LOG_ALERTS_METRICS_LISTEN="$log_alerts" ANALYTICS_METRICS_LISTEN="$analytics" \
    ANALYTICS_INSTANCE="$((i - 1))" CONSOLE_LISTEN="$(port 18080)" CONSOLE_PIPELINES="$pipelines" "$@"
}

# start_instance: every service but the registry, as instance $INSTANCE (cluster mode).
start_instance() {
  [[ $INSTANCE =~ ^[1-9]$ ]] || die "start-instance needs INSTANCE=<n>"
  local entry
  for entry in "${SERVICES[@]:1}"; do
    # shellcheck disable=SC2086  # entry is "name binary url"
    start_service $entry
  done
}

# names: what this script starts, in start order (cluster mode: each instance's).
names() {
  local entry i
  for entry in "${SERVICES[@]}"; do
    if [[ $CLUSTER == 1 && ${entry%% *} != registry ]]; then
      for i in $(seq 1 "$SERVICE_INSTANCES"); do echo "${entry%% *}-$i"; done
    else
      echo "${entry%% *}"
    fi
  done
}

stop() {
  local all i
  mapfile -t all < <(names)
  for (( i = ${#all[@]} - 1; i >= 0; i-- )); do stop_pid "${all[$i]}"; done
}

status() {
  if [[ $CLUSTER == 1 && -z $INSTANCE ]]; then
    status_line registry "$(pid_alive registry && echo running || echo stopped)" "http://$REGISTRY_LISTEN" \
      "$(cat "$RUN_DIR/registry.pid" 2>/dev/null)"
    local i
    for i in $(seq 1 "$SERVICE_INSTANCES"); do instance_env "$i" bash "${BASH_SOURCE[0]}" status; done
    return 0
  fi
  local entry name url
  for entry in "${SERVICES[@]}"; do
    read -r name _ url _ <<<"$entry"
    [[ -n $INSTANCE ]] && { [[ $name == registry ]] && continue; name+="-$INSTANCE"; }
    if pid_alive "$name"; then
      if healthy "$url"; then status_line "$name" running "${url%%/[a-z]*}" "$(cat "$RUN_DIR/$name.pid")"
      else status_line "$name" "running (unhealthy)" "${url%%/[a-z]*}" "$(cat "$RUN_DIR/$name.pid")"; fi
    else status_line "$name" stopped "${url%%/[a-z]*}"; fi
  done
}

case "${1:-}" in
  start|stop|status) "$1" ;;
  start-instance) start_instance ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
