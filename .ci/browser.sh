#!/usr/bin/env bash
# Browser test of the demo page: two headless Chromium pages (alice and bob) chat through
# the release binary. Usage: .ci/browser.sh <path to missive binary>.
# Screenshots go to ./target/browser.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "$1")"
# Always the clone's own target/ (gitignored), whatever CARGO_TARGET_DIR says.
target="$(realpath -m target)"
cache="${CACHE:-$HOME/.cache}/missive-browser"

# Debian's Chromium: a browser build downloaded by a tool would not be reachable here.
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# playwright-core only drives the browser (it downloads none); kept outside the repo.
if [ ! -f "$cache/node_modules/playwright-core/package.json" ]; then
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$cache" playwright-core@1 >/dev/null
fi

# Dev auth (no secret configured), so the page gets its tokens from /dev/token.
source .ci/server.sh
start_server "$bin"

mkdir -p "$target/browser"
status=0
BROWSER_DEPS="$cache" BASE_URL="http://$addr" SHOTS="$target/browser" \
  timeout 120 node .ci/browser-test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2
  tail -50 "$log" >&2
  exit "$status"
fi

stop_server
echo "browser test passed: $target/browser/alice.png, $target/browser/bob.png"
