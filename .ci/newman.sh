#!/usr/bin/env bash
# Runs the Postman collection (postman/) with newman against a missive binary: starts it
# on a free loopback port with a fresh data directory and the environment file's
# jwtSecret as MISSIVE_JWT_SECRET, runs every request, stops the server. Exits non-zero
# when an assertion fails or the server does not start.
#   bash .ci/newman.sh target/release/missive
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 <path to the missive binary>" >&2; exit 2; }
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$bin" ] || { echo "not an executable: $1" >&2; exit 2; }
cd "$(dirname "$0")/.."

collection=postman/missive.postman_collection.json
environment=postman/missive.postman_environment.json
# The server must verify what the collection signs: take the secret from the environment file.
secret=$(node -e '
  const env = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const v = env.values.find((v) => v.key === "jwtSecret");
  if (!v || !v.value) { console.error("no jwtSecret in " + process.argv[1]); process.exit(1); }
  process.stdout.write(v.value);
' "$environment")

source .ci/server.sh
start_server "$bin" MISSIVE_JWT_SECRET="$secret"
echo "missive listening on http://$addr (data in $data)"

# npm stays quiet (no install log, notices or funding lines); newman prints its run and
# summary table, without colour codes when the output is a log file.
color=on
[ -t 1 ] || { color=off; export FORCE_COLOR=0; }
status=0
NPM_CONFIG_LOGLEVEL=error NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false \
  npx -y newman@6 run "$collection" -e "$environment" --env-var "baseUrl=http://$addr" \
  --timeout-request 10000 --color "$color" || status=$?

stop_server
if [ "$status" -ne 0 ]; then
  echo "newman failed (exit $status); server log:" >&2
  tail -n 50 "$log" >&2
  exit "$status"
fi
echo "newman run passed: $addr"
