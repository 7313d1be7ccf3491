#!/usr/bin/env bash
# Installs the browser of the console's browser tests (console/tests/browser.rs): Debian's
# chromium and chromium-driver (chromedriver), when missing. Idempotent; run by
# scripts/test.sh before the integration tests.
#
# Usage: scripts/browser-deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack/lib.sh"

command -v chromium >/dev/null 2>&1 || ensure_apt chromium chromium
command -v chromedriver >/dev/null 2>&1 || ensure_apt chromedriver chromium-driver
say "browser tests: $(chromium --version 2>/dev/null | head -n 1), $(chromedriver --version 2>/dev/null | head -n 1)"
