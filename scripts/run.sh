#!/usr/bin/env bash
# make run: bring everything up, print the endpoints, then follow the logs until Ctrl-C.
# Ctrl-C stops following only; the stack keeps running until `make down`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/stack/up.sh
source scripts/stack/lib.sh
cat <<TXT

  AnineePlus is up.
    GraphQL API      http://127.0.0.1:3000/graphql   (GraphiQL in a browser; health /health/ready)
    Indexer metrics  http://127.0.0.1:9464/metrics
    Log pipeline     http://127.0.0.1:9465/metrics (index), :9466 (archive), :9467 (alerts)
    Analytics        http://127.0.0.1:9468/metrics   (try: { trendingAnime { anime { title } commentCount } })
    Console          http://127.0.0.1:8080            (operators: sign in as an OPERATOR or ADMIN, e.g. admin@anineplus.local)
    Find a request   target/debug/anineplus-logs trace <x-correlation-id>   (every service's records)
    Log archive      $STACK_DIR/logs-archive/
    Schema registry  http://127.0.0.1:8081           (try: curl 127.0.0.1:8081/subjects)
    Search engine    http://127.0.0.1:9200
    Kafka            127.0.0.1:9092
    PostgreSQL       postgres://anineplus:anineplus@127.0.0.1:5432/anineplus
    Redis            redis://127.0.0.1:6379
    Logs             $LOG_DIR/

  Following the logs (Ctrl-C stops following; 'make down' stops the stack).

TXT
exec tail -n 5 -F "$LOG_DIR"/*.log
