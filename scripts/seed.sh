#!/usr/bin/env bash
# Loads the real anime catalogue, bangumi-data (CC-BY-4.0,
# https://github.com/bangumi-data/bangumi-data), into the running API through its GraphQL
# mutations (`anineplus-seed`, crate catalogue/). The pinned package is fetched once by
# scripts/catalogue.sh. Idempotent: anime the API already holds (title and release year)
# are not created again.
#
# Usage: scripts/seed.sh [anineplus-seed flags, e.g. --limit 50 --api-url http://127.0.0.1:3100]
#        (also SEED_LIMIT, SEED_API_URL, SEED_ADMIN_EMAIL, SEED_ADMIN_PASSWORD)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

say() { printf '\033[1m[seed]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[seed] error:\033[0m %s\n' "$*" >&2; exit 1; }

DATA="$(bash "$ROOT/scripts/catalogue.sh")" || die "fetching the catalogue failed"
say "building anineplus-seed (cargo build, debug)"
(cd "$ROOT" && cargo build -q -p anineplus-catalogue --bin anineplus-seed) || die "cargo build failed"
exec "$TARGET_DIR/debug/anineplus-seed" --data "$DATA" "$@"
