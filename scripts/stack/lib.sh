#!/usr/bin/env bash
# Shared helpers for the local stack scripts (sourced, not run).
#
# Layout: everything the stack writes lives under $STACK_DIR (default <repo>/.stack, git-ignored):
#   .stack/<svc>/        data of one service
#   .stack/logs/<svc>.log  its log
#   .stack/run/<svc>.pid   pid of the process *we* started (nothing else is ever stopped)
#   .stack/cache/        downloaded jars (kept between runs; CI may cache it)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Cluster mode (CLUSTER=1, `make up CLUSTER=1`): three Kafka nodes, two search nodes and two
# instances of every project service, on ports of their own and with their state under
# .stack/cluster/, so it runs beside the single-node stack. Unset or 0: the single-node stack.
CLUSTER="${CLUSTER:-0}"
[[ $CLUSTER == 0 || $CLUSTER == 1 ]] || { echo "CLUSTER must be 0 or 1 (got '$CLUSTER')" >&2; exit 2; }
if [[ $CLUSTER == 1 ]]; then
  STACK_DIR="${STACK_DIR:-$ROOT/.stack/cluster}"
  # the jars are the same: one cache for both modes
  CACHE_DIR="${CACHE_DIR:-$ROOT/.stack/cache}"
  # shellcheck source=cluster.env
  source "$ROOT/scripts/stack/cluster.env"
else
  STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
  CACHE_DIR="$STACK_DIR/cache"
fi
export STACK_DIR CLUSTER
LOG_DIR="$STACK_DIR/logs"
RUN_DIR="$STACK_DIR/run"
mkdir -p "$LOG_DIR" "$RUN_DIR" "$CACHE_DIR"

# Java 17 is the machine default; OpenSearch 3.x would need 21+.
JAVA17_HOME="${JAVA17_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /usr/bin/java)")")")}"

say()  { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[33m[stack]\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

# port_open PORT: true when something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive SVC: true when the pid file of SVC names a live process.
pid_alive() {
  local f="$RUN_DIR/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# wait_for NAME TIMEOUT_SECONDS LOGFILE CMD...: poll CMD until it succeeds, or fail naming the log.
wait_for() {
  local name=$1 timeout=$2 log=$3; shift 3
  local start=$SECONDS
  while ! "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= timeout )); then
      warn "$name did not become ready within ${timeout}s. Last lines of $log:"
      tail -n 25 "$log" >&2 2>/dev/null || true
      die "$name failed to start (log: $log)"
    fi
    if [[ -f "$RUN_DIR/$name.pid" ]] && ! pid_alive "$name"; then
      warn "$name exited during start-up. Last lines of $log:"
      tail -n 25 "$log" >&2 2>/dev/null || true
      die "$name failed to start (log: $log)"
    fi
    sleep 1
  done
  say "$name ready after $(( SECONDS - start ))s"
}

# stop_pid SVC: stop the process we started for SVC (TERM, then KILL after 30s).
stop_pid() {
  local svc=$1 f="$RUN_DIR/$1.pid"
  [[ -f $f ]] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $svc (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { warn "$svc did not stop in 30s, killing"; kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$f"
}

# start_bg SVC CMD...: start CMD in its own process group, log to .stack/logs/SVC.log, record pid.
start_bg() {
  local svc=$1; shift
  local log="$LOG_DIR/$svc.log"
  setsid "$@" >>"$log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/$svc.pid"
}

# mvn_classpath POM OUTFILE: resolve the dependencies of POM into the cache and write the classpath.
mvn_classpath() {
  local pom=$1 out=$2
  # Up to date only if newer than the pom AND every jar it names is still there (the m2 cache may be gone).
  if [[ -s $out && $out -nt $pom ]]; then
    local jar ok=1
    while IFS= read -r -d: jar || [[ -n $jar ]]; do
      jar=${jar%$'\n'}
      [[ -z $jar || -f $jar ]] || { ok=0; break; }
    done < "$out"
    (( ok )) && return 0
  fi
  say "resolving jars for $(basename "$(dirname "$pom")") from Maven Central (first run only)..."
  mvn -B -q -f "$pom" -Dmaven.repo.local="$CACHE_DIR/m2" \
    dependency:build-classpath -Dmdep.outputFile="$out" >"$LOG_DIR/mvn-$(basename "$(dirname "$pom")").log" 2>&1 \
    || { tail -n 30 "$LOG_DIR/mvn-$(basename "$(dirname "$pom")").log" >&2; die "maven could not resolve $pom"; }
}

# ---- Debian packages ----
# ensure_apt CMD PACKAGE...: install Debian PACKAGEs when CMD is not on the machine yet.
# Sourced by the service scripts; needs root (or sudo) the first time only.
ensure_apt() {
  local probe=$1; shift
  if command -v "$probe" >/dev/null 2>&1 || [[ -x $probe ]]; then return 0; fi
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  say "installing Debian packages: $* (first run only)"
  if [[ ! -f "$STACK_DIR/.apt-updated" ]]; then
    $sudo apt-get update -qq >"$LOG_DIR/apt.log" 2>&1 || { tail -n 20 "$LOG_DIR/apt.log" >&2; die "apt-get update failed (log: $LOG_DIR/apt.log)"; }
    touch "$STACK_DIR/.apt-updated"
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1 \
    || { tail -n 20 "$LOG_DIR/apt.log" >&2; die "apt-get install $* failed (log: $LOG_DIR/apt.log)"; }
}

# ensure_jdk_maven: a JDK 17+ (javac too: OpenSearch's launcher is compiled) and Maven, which
# fetch and run the Kafka and OpenSearch jars. Installed from Debian's packages if missing.
ensure_jdk_maven() {
  command -v javac >/dev/null 2>&1 || ensure_apt javac openjdk-17-jdk-headless
  command -v mvn >/dev/null 2>&1 || ensure_apt mvn maven
  local major
  major=$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')
  [[ ${major:-0} -ge 17 ]] || die "Java 17 or newer is needed (found: $(java -version 2>&1 | head -n 1)); apt-get install openjdk-17-jdk-headless"
}

# status_line SVC STATE ADDRESS [PID] : the one-line format of `make status`.
status_line() {
  printf '%-11s %-24s %-24s pid %-8s log %s\n' "$1" "$2" "$3" "${4:--}" "$LOG_DIR/$1.log"
}
