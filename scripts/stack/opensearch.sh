#!/usr/bin/env bash
# Local single-node OpenSearch (Elasticsearch-compatible REST API) on 127.0.0.1:9200, built from Maven Central jars:
# scripts/stack/opensearch/pom.xml names them, OpenSearchNode.java starts an org.opensearch.node.Node with the
# netty4 transport, analysis-common, painless and reindex (update-by-query) modules. Nothing but Java 17, Maven and curl is needed.
#
#   opensearch.sh install   resolve the jars into .stack/cache/m2 and compile the launcher (idempotent)
#   opensearch.sh start     install if needed, start in the background, wait until the cluster is yellow
#   opensearch.sh stop      stop the node we started (by pid file only)
#   opensearch.sh status    one line: running/stopped, port, pid, log
#   opensearch.sh ready     exit 0 when it answers with a yellow/green cluster health
#
# Data: .stack/opensearch/ (home/config, data, logs), log: .stack/logs/opensearch.log, pid: .stack/run/opensearch.pid.
# Cluster mode (CLUSTER=1): one node of two, OPENSEARCH_NODE=1 or 2, ports of scripts/stack/cluster.env, data
# .stack/cluster/opensearch-<n>/; the two discover each other and form one cluster (the first start needs both).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC_DIR="$ROOT/scripts/stack/opensearch"
INSTALL_DIR="$STACK_DIR/opensearch"
SVC=opensearch
HOME_DIR="$INSTALL_DIR"
HTTP_PORT=9200
TRANSPORT_PORT=9300
DISCOVERY=(-Enode.name=node-1 -Ediscovery.type=single-node -Ecluster.default_number_of_replicas=0)
if [[ $CLUSTER == 1 ]]; then
  # one node of the cluster (cluster.env): OPENSEARCH_NODE=1 or 2, each a cluster-manager
  # candidate and a data node; the jars and launcher are installed once for both
  NODE="${OPENSEARCH_NODE:-}"
  [[ $NODE =~ ^[1-9]$ ]] && (( NODE <= OPENSEARCH_NODES )) \
    || die "cluster mode: OPENSEARCH_NODE must be a node of the cluster, 1 to $OPENSEARCH_NODES (got '${OPENSEARCH_NODE:-}')"
  SVC="opensearch-$NODE"
  HOME_DIR="$STACK_DIR/$SVC"
  HTTP_PORT=${OPENSEARCH_HTTP_PORTS[$((NODE - 1))]}
  TRANSPORT_PORT=${OPENSEARCH_TRANSPORT_PORTS[$((NODE - 1))]}
  seeds="" managers=""
  for n in $(seq 1 "$OPENSEARCH_NODES"); do
    seeds+="${seeds:+,}127.0.0.1:${OPENSEARCH_TRANSPORT_PORTS[$((n - 1))]}"
    managers+="${managers:+,}node-$n"
  done
  DISCOVERY=(-Enode.name="node-$NODE" -Ediscovery.type=zen -Ediscovery.seed_hosts="$seeds"
    -Ecluster.initial_cluster_manager_nodes="$managers" -Ecluster.default_number_of_replicas=1)
fi
CLASSES_DIR="$INSTALL_DIR/classes"
CP_FILE="$INSTALL_DIR/classpath.txt"
LOG="$LOG_DIR/$SVC.log"
PID_FILE="$RUN_DIR/$SVC.pid"
URL="http://127.0.0.1:$HTTP_PORT"
JAVA="${JAVA17_HOME}/bin/java"
JAVAC="${JAVA17_HOME}/bin/javac"
[[ -x $JAVA ]] || JAVA=java
[[ -x $JAVAC ]] || JAVAC=javac

install() {
  command -v mvn >/dev/null || die "maven (mvn) is needed to fetch the OpenSearch jars"
  mkdir -p "$INSTALL_DIR"
  # the two nodes of the cluster mode start together: one install at a time
  exec 8>"$INSTALL_DIR/install.lock"
  flock -w 600 8 || die "another OpenSearch install is still running"
  mvn_classpath "$SRC_DIR/pom.xml" "$CP_FILE"
  local stamp="$CLASSES_DIR/OpenSearchNode.class"
  if [[ ! -f $stamp || $SRC_DIR/OpenSearchNode.java -nt $stamp || $CP_FILE -nt $stamp ]]; then
    say "compiling the OpenSearch launcher"
    rm -rf "$CLASSES_DIR" && mkdir -p "$CLASSES_DIR"
    "$JAVAC" -nowarn -d "$CLASSES_DIR" -cp "$(cat "$CP_FILE")" "$SRC_DIR/OpenSearchNode.java" \
      || die "javac failed on $SRC_DIR/OpenSearchNode.java"
  fi
  exec 8>&-
}

listener() { ss -ltnp "sport = :$1" 2>/dev/null | tail -n +2 | grep . || echo "  (run: ss -ltnp 'sport = :$1' to see which)"; }

healthy() { curl -fsS --max-time 5 "$URL/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; }

start() {
  if port_open "$HTTP_PORT"; then
    if pid_alive "$SVC"; then
      say "$SVC already running (pid $(cat "$PID_FILE"), $URL)"
      healthy || wait_for "$SVC" 180 "$LOG" healthy   # listening but maybe not yellow yet
      return 0
    fi
    die "port $HTTP_PORT is taken by another process (not started by this script), stop it first:
$(listener "$HTTP_PORT")"
  fi
  if pid_alive "$SVC"; then
    # ours, but not listening (yet): still starting, or wedged
    say "$SVC (pid $(cat "$PID_FILE")) is up but not listening yet, waiting"
    wait_for "$SVC" 180 "$LOG" healthy
    return 0
  fi
  port_open "$TRANSPORT_PORT" && die "transport port $TRANSPORT_PORT is taken by another process:
$(listener "$TRANSPORT_PORT")"
  install
  mkdir -p "$HOME_DIR/config" "$HOME_DIR/data" "$HOME_DIR/logs" "$HOME_DIR/tmp"
  cp "$SRC_DIR/log4j2.properties" "$HOME_DIR/config/log4j2.properties"
  say "starting $SVC on $URL (log: $LOG)"
  printf '\n===== %s starting %s =====\n' "$(date -Is)" "$SVC" >>"$LOG"
  # JVM flags as the distribution's launcher sets them (SystemJvmOptions), minus AlwaysPreTouch (slow start)
  # shellcheck disable=SC2086  # the heap options are a list of flags
  start_bg "$SVC" "$JAVA" ${OPENSEARCH_HEAP_OPTS:--Xms512m -Xmx1g} -Xss1m \
    -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+ShowCodeDetailsInExceptionMessages \
    -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true \
    -Djava.locale.providers=SPI,COMPAT \
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
    -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0 \
    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
    -Djava.io.tmpdir="$HOME_DIR/tmp" \
    -cp "$CLASSES_DIR:$(cat "$CP_FILE")" OpenSearchNode \
    -Ecluster.name=anineplus "${DISCOVERY[@]}" \
    -Epath.home="$HOME_DIR" -Epath.data="$HOME_DIR/data" -Epath.logs="$HOME_DIR/logs" \
    -Enetwork.host=127.0.0.1 -Ehttp.port="$HTTP_PORT" -Etransport.port="$TRANSPORT_PORT" \
    -Ecluster.routing.allocation.disk.threshold_enabled=false
  wait_for "$SVC" 180 "$LOG" healthy
}

status() {
  local addr="http://127.0.0.1:$HTTP_PORT"
  if pid_alive "$SVC" && port_open "$HTTP_PORT"; then status_line "$SVC" running "$addr" "$(cat "$PID_FILE")"
  elif pid_alive "$SVC"; then status_line "$SVC" starting "$addr" "$(cat "$PID_FILE")"
  elif port_open "$HTTP_PORT"; then status_line "$SVC" "stopped (port taken)" "$addr"
  else status_line "$SVC" stopped "$addr"; fi
}

case "${1:-}" in
  install) install ;;
  start)   start ;;
  stop)    stop_pid "$SVC" ;;
  status)  status ;;
  ready)   healthy || exit 1 ;;
  *) echo "usage: $0 install|start|stop|status|ready" >&2; exit 64 ;;
esac
