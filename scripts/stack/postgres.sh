#!/usr/bin/env bash
# PostgreSQL for the local stack: our own cluster under .stack/postgres on 127.0.0.1:5432
# (cluster mode: .stack/cluster/postgres on 127.0.0.1:15432, PG_PORT),
# from Debian's packages, with the project's role and databases.
#
# Usage: postgres.sh install|start|stop|status|ready
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=5432
[[ $CLUSTER == 1 ]] && PORT=$PG_PORT   # cluster mode: scripts/stack/cluster.env
LOG="$LOG_DIR/postgres.log"

# locate: the cluster's real folders. .stack/postgres may be a link to a folder outside the
# checkout (see place_data); the server gets real paths, since it may not traverse ours.
locate() {
  PG_HOME="$(readlink -f "$STACK_DIR/postgres" 2>/dev/null || echo "$STACK_DIR/postgres")"
  DATA="$PG_HOME/data"
  SOCK="$PG_HOME/run"
  # The server writes its log itself (as `postgres`), so it lives beside the data when the
  # checkout is out of its reach, with .stack/logs/postgres.log linking to it.
  if [[ -L "$STACK_DIR/postgres" ]]; then SERVER_LOG="$PG_HOME/postgres.log"; else SERVER_LOG="$LOG"; fi
}
locate

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# as_owner CMD...: PostgreSQL refuses to run as root, so root runs it as `postgres`.
as_owner() {
  # From /: `postgres` may not be allowed into the caller's folder (every path here is absolute).
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

install() {
  [[ -n $(pg_bin) && -x "$(pg_bin)/initdb" ]] || ensure_apt /usr/lib/postgresql/15/bin/initdb postgresql postgresql-client postgresql-contrib
  [[ -n $(pg_bin) ]] || die "PostgreSQL binaries not found under /usr/lib/postgresql after install"
  command -v psql >/dev/null || ensure_apt psql postgresql-client
}

# place_data: create the cluster's folders. Root runs the server as `postgres`, which must be
# able to reach them; when a parent of the checkout is private to root (a CI clone under a
# 0700 folder), the cluster lives in /var/lib/postgresql/anineplus-<hash of the checkout>
# instead, linked from .stack/postgres so the layout stays the same.
place_data() {
  if [[ $(id -u) -eq 0 && ! -e "$STACK_DIR/postgres" ]]; then
    chmod 755 "$STACK_DIR"
    if ! runuser -u postgres -- test -x "$STACK_DIR"; then
      local outside
      # (the cluster mode's data dir is another one: its own hash)
      local key=$ROOT; [[ $CLUSTER == 1 ]] && key="$ROOT cluster"
      outside="/var/lib/postgresql/anineplus-$(printf '%s' "$key" | md5sum | cut -c1-10)"
      warn "postgres cannot reach $STACK_DIR (a parent folder is private); keeping its data in $outside"
      mkdir -p "$outside"
      ln -sfn "$outside" "$STACK_DIR/postgres"
    fi
  fi
  locate
  mkdir -p "$DATA" "$SOCK"
  if [[ $SERVER_LOG != "$LOG" ]]; then
    touch "$SERVER_LOG"
    ln -sfn "$SERVER_LOG" "$LOG"
  fi
  if [[ $(id -u) -eq 0 ]]; then
    chmod 755 "$STACK_DIR"
    chown -R postgres:postgres "$(readlink -f "$STACK_DIR/postgres")"
  fi
}

ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }

ours() { [[ -f "$DATA/postmaster.pid" ]] && as_owner "$(pg_bin)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  install
  local bin; bin=$(pg_bin)
  if ours; then say "postgres already running (ours, $DATA)"; provision; return 0; fi
  if port_open $PORT; then
    die "port $PORT is taken by another process: $(ss -ltnp "sport = :$PORT" 2>/dev/null | tail -n +2 | head -n 1). Stop it (e.g. 'pg_ctlcluster 15 main stop') or free the port, then retry."
  fi
  place_data
  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    say "initialising PostgreSQL cluster in $DATA"
    as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 \
      || { tail -n 20 "$LOG" >&2; die "initdb failed (log: $LOG)"; }
  fi
  touch "$SERVER_LOG"
  if [[ $(id -u) -eq 0 ]]; then chown postgres "$SERVER_LOG"; fi
  say "starting postgres on 127.0.0.1:$PORT"
  # Tuned for tests on a small machine: durability settings stay on (the guarantees we test
  # depend on them), only memory and connection counts are adjusted.
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c max_connections=300 -c shared_buffers=256MB" >/dev/null \
    || { tail -n 20 "$LOG" >&2; die "postgres failed to start (log: $LOG)"; }
  wait_for postgres 60 "$LOG" ready
  provision
}

# provision: the project's role and databases (idempotent; the same file docker-compose uses).
provision() {
  psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -f "$(dirname "${BASH_SOURCE[0]}")/postgres/init.sql" >/dev/null
}

stop() {
  if ours; then
    say "stopping postgres"
    as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
}

status() {
  if ours; then status_line postgres running "127.0.0.1:$PORT" "$(head -n 1 "$DATA/postmaster.pid")"
  elif port_open "$PORT"; then status_line postgres "stopped (port taken)" "127.0.0.1:$PORT"
  else status_line postgres stopped "127.0.0.1:$PORT"; fi
}

"${1:-status}"
