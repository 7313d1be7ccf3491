#!/usr/bin/env bash
# The Python venv of the indexer bench's peer (pipelines/indexer/benches/indexer_vs_python.rs):
# $STACK_DIR/bench-venv (default .stack/bench-venv) with scripts/bench/requirements.txt,
# installed from PyPI the first time and again only when the requirements change.
# Prints the venv's python on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
STACK_DIR="${STACK_DIR:-$PWD/.stack}"
VENV="$STACK_DIR/bench-venv"
REQUIREMENTS=scripts/bench/requirements.txt
STAMP="$VENV/.requirements"
if [[ ! -x "$VENV/bin/python" ]] || ! cmp -s "$REQUIREMENTS" "$STAMP"; then
  PYTHON="${PYTHON:-python3}"
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
    echo "python-env: $PYTHON has no venv module; on Debian: apt-get install python3-venv" >&2
    exit 1
  fi
  echo "python-env: creating $VENV with $(tr '\n' ' ' < <(grep -v '^#' "$REQUIREMENTS"))" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --progress-bar on --disable-pip-version-check \
    -r "$REQUIREMENTS" >&2
  cp "$REQUIREMENTS" "$STAMP"
fi
echo "$VENV/bin/python"
