#!/usr/bin/env bash
# Loads the real anime catalogue, bangumi-data (CC-BY-4.0,
# https://github.com/bangumi-data/bangumi-data), into the running API through its GraphQL
# mutations (`anineplus-seed`, crate catalogue/). The npm package is pinned and downloaded
# once from the npm registry (`npm pack`, which checks the registry's integrity hash; plain
# curl with the pinned sha512 when npm is missing) into $STACK_DIR/cache/bangumi-data/.
# Idempotent: anime the API already holds (title and release year) are not created again.
#
# Usage: scripts/seed.sh [anineplus-seed flags, e.g. --limit 50 --api-url http://127.0.0.1:3100]
#        (also SEED_LIMIT, SEED_API_URL, SEED_ADMIN_EMAIL, SEED_ADMIN_PASSWORD)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VERSION=0.3.208
INTEGRITY=sha512-vllAI09uEZOaWNgJ2flRrnwmZ5//4k3nfYmfXFjsjgWHkmAKbFbn6M2YNplzBLKpmjPz9vvEyja3P3VpQSSTiw==
CACHE="$STACK_DIR/cache/bangumi-data/$VERSION"
TARBALL="$CACHE/bangumi-data-$VERSION.tgz"
DATA="$CACHE/package/dist/data.json"

say() { printf '\033[1m[seed]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[seed] error:\033[0m %s\n' "$*" >&2; exit 1; }

if [[ ! -f $TARBALL ]]; then
  mkdir -p "$CACHE"
  say "downloading bangumi-data@$VERSION from registry.npmjs.org (once; cached in ${CACHE#$ROOT/})"
  if command -v npm >/dev/null; then
    (cd "$CACHE" && npm pack --silent --loglevel=error "bangumi-data@$VERSION" >/dev/null) \
      || die "npm pack bangumi-data@$VERSION failed"
  else
    curl -fsSL --retry 3 -o "$TARBALL.part" \
      "https://registry.npmjs.org/bangumi-data/-/bangumi-data-$VERSION.tgz" \
      || die "downloading bangumi-data@$VERSION failed"
    got="sha512-$(openssl dgst -sha512 -binary "$TARBALL.part" | base64 -w0)"
    [[ $got == "$INTEGRITY" ]] || { rm -f "$TARBALL.part"; die "bangumi-data@$VERSION: integrity $got, expected $INTEGRITY"; }
    mv "$TARBALL.part" "$TARBALL"
  fi
fi
if [[ ! -f $DATA ]]; then
  tar -xzf "$TARBALL" -C "$CACHE" package/dist/data.json package/package.json \
    || die "cannot extract $TARBALL (delete it to download again)"
fi

say "building anineplus-seed (cargo build, debug)"
(cd "$ROOT" && cargo build -q -p anineplus-catalogue --bin anineplus-seed) || die "cargo build failed"
exec "$TARGET_DIR/debug/anineplus-seed" --data "$DATA" "$@"
