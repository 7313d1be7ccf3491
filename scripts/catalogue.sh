#!/usr/bin/env bash
# Fetches the real anime catalogue, bangumi-data (CC-BY-4.0,
# https://github.com/bangumi-data/bangumi-data), and prints the path of its data.json. The
# npm package is pinned and downloaded once from the npm registry (`npm pack`, which checks
# the registry's integrity hash; plain curl with the pinned sha512 when npm is missing) into
# $STACK_DIR/cache/bangumi-data/. Used by `make seed` (scripts/seed.sh) and by the relevance
# test and search benchmark (catalogue/tests/judged).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
VERSION=0.3.208
INTEGRITY=sha512-vllAI09uEZOaWNgJ2flRrnwmZ5//4k3nfYmfXFjsjgWHkmAKbFbn6M2YNplzBLKpmjPz9vvEyja3P3VpQSSTiw==
CACHE="$STACK_DIR/cache/bangumi-data/$VERSION"
TARBALL="$CACHE/bangumi-data-$VERSION.tgz"
DATA="$CACHE/package/dist/data.json"

say() { printf '\033[1m[catalogue]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[catalogue] error:\033[0m %s\n' "$*" >&2; exit 1; }

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

echo "$DATA"
