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

data=$(mktemp -d)
log="$data/server.log"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$data"' EXIT

# Dev auth (no secret configured), so the page gets its tokens from /dev/token.
env -u MISSIVE_JWT_SECRET -u MISSIVE_JWT_PUBLIC_KEY -u MISSIVE_DATABASE_URL -u DATABASE_URL \
  MISSIVE_DATA_DIR="$data" MISSIVE_BIND=127.0.0.1:0 NO_COLOR=1 "$bin" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on http://" "$log" && break
  sleep 0.1
done
addr=$(sed -nE 's#.*listening on http://([0-9.:]+).*#\1#p' "$log" | head -1)
[ -n "$addr" ] || { cat "$log"; echo "server did not start" >&2; exit 1; }

mkdir -p "$target/browser"
status=0
BROWSER_DEPS="$cache" BASE_URL="http://$addr" SHOTS="$target/browser" \
  timeout 120 node .ci/browser-test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2
  tail -50 "$log" >&2
  exit "$status"
fi

kill -TERM "$pid"
wait "$pid" || true
pid=
echo "browser test passed: $target/browser/alice.png, $target/browser/bob.png"
