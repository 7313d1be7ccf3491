#!/usr/bin/env bash
# Single-node Apache Kafka 4.x (KRaft: broker + controller in one JVM) for the local stack,
# run from Maven Central jars (no tarball, no Docker).
#
#   scripts/stack/kafka.sh install   resolve the jars into .stack/cache/m2 (idempotent)
#   scripts/stack/kafka.sh start     install if needed, format the data dir once, start, wait until ready
#   scripts/stack/kafka.sh stop      stop the broker this script started (by pid file only)
#   scripts/stack/kafka.sh status    one line: running/stopped, port, pid, log
#   scripts/stack/kafka.sh ready     exit 0 when the broker answers on 127.0.0.1:9092
#
# Broker: PLAINTEXT://127.0.0.1:9092, controller: 127.0.0.1:9093.
# Data: .stack/kafka/  log: .stack/logs/kafka.log  pid: .stack/run/kafka.pid
# Cluster mode (CLUSTER=1): one node of three, KAFKA_NODE=1..3, ports of scripts/stack/cluster.env,
# data .stack/cluster/kafka-<n>/, log .stack/cluster/logs/kafka-<n>.log, pid .stack/cluster/run/kafka-<n>.pid;
# all three share one cluster id and a quorum of three controllers.
# Supporting files: scripts/stack/kafka/{pom.xml,server.properties,log4j2.properties}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE="$ROOT/scripts/stack/kafka"
SVC=kafka
NODE_ID=1
KAFKA_PORT=9092
CONTROLLER_PORT=9093
VOTERS="1@127.0.0.1:9093"
REPLICATION=1
MIN_ISR=1
CLUSTER_ID_FILE=""
if [[ $CLUSTER == 1 ]]; then
  # one node of the cluster (cluster.env): KAFKA_NODE=1, 2 or 3
  NODE_ID="${KAFKA_NODE:-}"
  [[ $NODE_ID =~ ^[1-9]$ ]] && (( NODE_ID <= KAFKA_NODES )) \
    || die "cluster mode: KAFKA_NODE must be a node of the cluster, 1 to $KAFKA_NODES (got '${KAFKA_NODE:-}')"
  SVC="kafka-$NODE_ID"
  KAFKA_PORT=${KAFKA_NODE_PORTS[$((NODE_ID - 1))]}
  CONTROLLER_PORT=${KAFKA_CONTROLLER_PORTS[$((NODE_ID - 1))]}
  VOTERS=""
  for n in $(seq 1 "$KAFKA_NODES"); do VOTERS+="${VOTERS:+,}$n@127.0.0.1:${KAFKA_CONTROLLER_PORTS[$((n - 1))]}"; done
  REPLICATION=$KAFKA_REPLICATION
  MIN_ISR=$KAFKA_MIN_ISR
  # every node is formatted with the same cluster id
  CLUSTER_ID_FILE="$STACK_DIR/kafka-cluster.id"
fi
KAFKA_HOME="$STACK_DIR/$SVC"
DATA_DIR="$KAFKA_HOME/data"
CONFIG="$KAFKA_HOME/server.properties"
CLASSPATH_FILE="$CACHE_DIR/kafka.classpath"
LOG="$LOG_DIR/$SVC.log"
PID_FILE="$RUN_DIR/$SVC.pid"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
JAVA="$JAVA17_HOME/bin/java"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m}"

install() {
  command -v mvn >/dev/null || die "maven (mvn) is needed to fetch the Kafka jars: apt-get install -y maven"
  [[ -x $JAVA ]] || die "no java at $JAVA (Java 17+ is needed)"
  mvn_classpath "$HERE/pom.xml" "$CLASSPATH_FILE"
}

# run_java MAIN ARGS...: run a class from the Kafka jars in the foreground.
run_java() {
  "$JAVA" -cp "$(cat "$CLASSPATH_FILE")" \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" "$@"
}

# ours: the pid file names a live Kafka broker JVM (guards against a recycled pid).
ours() {
  pid_alive "$SVC" && grep -qa 'kafka.Kafka' "/proc/$(cat "$PID_FILE")/cmdline" 2>/dev/null
}

# api_ok: a Kafka broker answers an ApiVersions request on 127.0.0.1:9092 with error_code 0.
# Request (v0, header v1): size=15, api_key=18, api_version=0, correlation_id=0x2a, client_id="stack".
# Response (v0): size(4) correlation_id(4)=0x2a error_code(2)=0. The broker only serves requests
# on this listener once it has joined the quorum, caught up with the metadata and been unfenced.
api_ok() {
  # shellcheck disable=SC2016 # the inner script is single-quoted on purpose; only the port is spliced in
  timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$KAFKA_PORT"' || exit 1
    printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x05stack" >&3
    resp=$(head -c 10 <&3 | od -An -tx1 | tr -d " \n")
    [[ $resp == ????????0000002a0000 ]]
  ' 2>/dev/null
}

# started: our broker logged that it finished starting, after the offset recorded at our start.
started() {
  local off=0
  [[ -f $RUN_DIR/$SVC.logoffset ]] && off=$(cat "$RUN_DIR/$SVC.logoffset")
  (( off <= $(stat -c %s "$LOG" 2>/dev/null || echo 0) )) || off=0
  # (process substitution, not a pipe: with pipefail, grep -q closing early would fail tail)
  grep -q 'Kafka Server started' <(tail -c +"$((off + 1))" "$LOG" 2>/dev/null)
}

# is_ready: our JVM is alive, the broker answers the Kafka protocol, and it logged "started".
is_ready() { ours && api_ok && started; }

port_owner() { ss -ltnp "( sport = :$1 )" 2>/dev/null | tail -n +2 || true; }

format_once() {
  if [[ -f $DATA_DIR/meta.properties ]]; then return 0; fi
  mkdir -p "$DATA_DIR"
  local id
  if [[ -n $CLUSTER_ID_FILE ]]; then
    # Every node of the cluster formats with one id: the first to get the lock writes its
    # candidate, every node (itself included) then reads the file, whoever wrote it.
    if [[ ! -s $CLUSTER_ID_FILE ]]; then
      local candidate
      candidate=$(run_java kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n 1)
      ( flock 8; [[ -s $CLUSTER_ID_FILE ]] || echo "$candidate" > "$CLUSTER_ID_FILE" ) 8>"$CLUSTER_ID_FILE.lock"
    fi
    id=$( ( flock -s 8; cat "$CLUSTER_ID_FILE" ) 8>"$CLUSTER_ID_FILE.lock")
  else
    id=$(run_java kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n 1)
  fi
  [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a Kafka cluster id (got '$id', log: $LOG)"
  say "formatting $DATA_DIR (cluster id $id)"
  run_java kafka.tools.StorageTool format -t "$id" -c "$CONFIG" >>"$LOG" 2>&1 \
    || { tail -n 20 "$LOG" >&2; die "kafka storage format failed (log: $LOG)"; }
  echo "$id" > "$KAFKA_HOME/cluster.id"
}

start() {
  # one start at a time (two racing starts would both launch a JVM); fd 9 is closed for the broker
  exec 9>"$RUN_DIR/$SVC.lock"
  flock -w "$((START_TIMEOUT + 60))" 9 || die "another '$0 start' is still running"
  if ours; then
    if is_ready; then say "$SVC already running (pid $(cat "$PID_FILE")) on 127.0.0.1:$KAFKA_PORT"; return 0; fi
    say "$SVC (pid $(cat "$PID_FILE")) is starting; waiting for it"
    wait_for "$SVC" "$START_TIMEOUT" "$LOG" is_ready
    return 0
  fi
  rm -f "$PID_FILE"   # stale (process gone or pid reused by something else)

  local p
  for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port 127.0.0.1:$p is taken by another process (not the kafka started by this script):
$(port_owner "$p")
stop that process, then run: $0 start"
    fi
  done

  install
  mkdir -p "$KAFKA_HOME"
  sed -e "s#@DATA_DIR@#$DATA_DIR#g" -e "s#@NODE_ID@#$NODE_ID#g" -e "s#@VOTERS@#$VOTERS#g" \
    -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
    -e "s#@REPLICATION@#$REPLICATION#g" -e "s#@MIN_ISR@#$MIN_ISR#g" "$HERE/server.properties" > "$CONFIG"
  format_once

  stat -c %s "$LOG" 2>/dev/null > "$RUN_DIR/$SVC.logoffset" || echo 0 > "$RUN_DIR/$SVC.logoffset"
  say "starting $SVC on 127.0.0.1:$KAFKA_PORT (log: $LOG)"
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of JVM flags
  start_bg "$SVC" "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -cp "$(cat "$CLASSPATH_FILE")" kafka.Kafka "$CONFIG" 9>&-
  wait_for "$SVC" "$START_TIMEOUT" "$LOG" is_ready
}

stop() {
  if [[ -f $PID_FILE ]] && ! ours; then
    warn "stale pid file $PID_FILE (process gone or not kafka); removing it"
    rm -f "$PID_FILE"
    return 0
  fi
  stop_pid "$SVC"
}

status() {
  if ours; then
    local state=running
    is_ready || state="starting"
    status_line "$SVC" "$state" "127.0.0.1:$KAFKA_PORT" "$(cat "$PID_FILE")"
  elif port_open "$KAFKA_PORT"; then
    status_line "$SVC" "stopped (port taken)" "127.0.0.1:$KAFKA_PORT"
  else
    status_line "$SVC" stopped "127.0.0.1:$KAFKA_PORT"
  fi
}

case "${1:-}" in
  install) install ;;
  start)   start ;;
  stop)    stop ;;
  status)  status ;;
  ready)   is_ready ;;
  *) echo "usage: $0 {install|start|stop|status|ready}" >&2; exit 2 ;;
esac
