#!/usr/bin/env bash
# Installs what the browser test (tests/browser.rs) needs: Debian's Chromium at
# /usr/bin/chromium, and playwright-core as pinned by tests/browser/package-lock.json.
# Playwright's own browser download is never used (it is not reachable here).
# Usage: infra/setup/browser.sh
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${repo_root}/infra/setup/lib.sh"

if [[ ! -x /usr/bin/chromium ]]; then
  apt_install chromium
fi
/usr/bin/chromium --version 2>/dev/null  # its wrapper script complains on stderr

echo "installing playwright-core into tests/browser/node_modules"
npm ci --prefix "${repo_root}/tests/browser" --no-audit --no-fund --loglevel=error
