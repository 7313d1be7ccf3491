#!/usr/bin/env bash
# make down: stop everything `make up` started (by pid file / our own data dir), nothing else.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
if [[ -x "$here/services.sh" ]]; then bash "$here/services.sh" stop; fi
for svc in opensearch kafka redis postgres; do bash "$here/$svc.sh" stop; done
say "stack down"
