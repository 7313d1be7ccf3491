#!/usr/bin/env bash
# make status: what of the stack runs, and where.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
for svc in postgres redis kafka opensearch; do bash "$here/$svc.sh" status; done
if [[ -x "$here/services.sh" ]]; then bash "$here/services.sh" status; fi
