#!/usr/bin/env bash
# Installs the npm packages of the tests' Node projects (the Apollo gateway and composition
# of api/tests/federation.rs), exactly as pinned by each package-lock.json (`npm ci`).
# Idempotent: a project whose node_modules was installed from the same lock file is left
# alone. Needs Node 20+ and npm; run by scripts/test.sh before the integration tests.
#
# Usage: scripts/node-deps.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROJECTS=(api/tests/federation)

say() { printf '\033[1m[node-deps]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[node-deps] error:\033[0m %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null && command -v npm >/dev/null \
  || die "node and npm are needed by the federation tests: install Node.js 20+ (https://nodejs.org, or Debian's nodejs + npm packages where they are 20+)"
major=$(node -p 'process.versions.node.split(".")[0]')
(( major >= 20 )) || die "Node.js 20+ is needed, found $(node --version)"

for project in "${PROJECTS[@]}"; do
  dir="$ROOT/$project"
  stamp="$dir/node_modules/.installed-from-lock"
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    say "$project: npm packages up to date"
    continue
  fi
  say "$project: installing npm packages (npm ci, $(node --version), npm $(npm --version))"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed in $project"
  echo "$want" >"$stamp"
  say "$project: npm packages installed"
done
