#!/usr/bin/env bash
# Redis for the local stack: 127.0.0.1:6379 from Debian's package, data under .stack/redis
# (cluster mode: 127.0.0.1:16379, REDIS_PORT, under .stack/cluster/redis).
#
# Usage: redis.sh install|start|stop|status|ready
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=6379
[[ $CLUSTER == 1 ]] && PORT=$REDIS_PORT   # cluster mode: scripts/stack/cluster.env
DATA="$STACK_DIR/redis"
LOG="$LOG_DIR/redis.log"

install() { ensure_apt redis-server redis-server redis-tools; }

ready() { [[ $(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]]; }

start() {
  install
  if pid_alive redis && ready; then say "redis already running"; return 0; fi
  if port_open $PORT; then
    die "port $PORT is taken by another process: $(ss -ltnp "sport = :$PORT" 2>/dev/null | tail -n +2 | head -n 1). Stop it (e.g. 'service redis-server stop') or free the port, then retry."
  fi
  mkdir -p "$DATA"
  say "starting redis on 127.0.0.1:$PORT"
  # A cache and rate limiter: no persistence needed, an LRU bound on memory.
  start_bg redis redis-server --bind 127.0.0.1 --port "$PORT" --dir "$DATA" \
    --save "" --appendonly no --maxmemory 512mb --maxmemory-policy allkeys-lru --daemonize no
  wait_for redis 30 "$LOG" ready
}

stop() { stop_pid redis; }

status() {
  if pid_alive redis; then status_line redis running "127.0.0.1:$PORT" "$(cat "$RUN_DIR/redis.pid")"
  elif port_open "$PORT"; then status_line redis "stopped (port taken)" "127.0.0.1:$PORT"
  else status_line redis stopped "127.0.0.1:$PORT"; fi
}

"${1:-status}"
