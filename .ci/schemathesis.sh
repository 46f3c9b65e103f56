#!/usr/bin/env bash
# schemathesis (pinned, in a venv cached outside the clone) against a fresh server: every
# check, the stateful phase, two users' tokens (so the authorization checks compare two
# identities). Fails on any failure. Usage: .ci/schemathesis.sh MISSIVE_BINARY [DATABASE_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$1"
database_url="${2:-}"
SCHEMATHESIS_VERSION=4.32.5
source .ci/venv.sh
pinned_venv schemathesis "$SCHEMATHESIS_VERSION"
source .ci/server.sh
secret=schemathesis-secret-schemathesis-secret-0123
# Rates are lifted: the fuzzer sends thousands of requests as two users, and a 429 would
# hide what the request itself gets. (429 is documented and tested elsewhere.)
limits=()
for kind in POST TYPING READ EDIT MEMBERSHIP; do
  limits+=("MISSIVE_${kind}_RATE_PER_SEC=1000000" "MISSIVE_${kind}_RATE_BURST=1000000")
done
db=()
[ -z "$database_url" ] || db=("MISSIVE_DATABASE_URL=$database_url")
start_server "$bin" MISSIVE_JWT_SECRET="$secret" "${limits[@]}" "${db[@]}"
token() { MISSIVE_JWT_SECRET="$secret" MISSIVE_DATA_DIR="$data" "$bin" token "$1" --ttl 1h; }
auth="$data/auth.json"
cat >"$auth" <<JSON
{"auth": [
  {"name": "alice", "fixedHeaders": [{"name": "Authorization", "value": "Bearer $(token alice)"}]},
  {"name": "bob", "fixedHeaders": [{"name": "Authorization", "value": "Bearer $(token bob)"}]}
]}
JSON
"$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run "http://$addr/openapi.json" \
  --auth-wfc "$auth" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --seed 20261201 \
  --exclude-path /messaging \
  --request-timeout 10 \
  --workers 1 \
  --report junit --report-dir "$data/report"
