#!/usr/bin/env bash
# Starts the release binary as a new user would (dev auth, SQLite in a fresh data
# directory), mints a token with the CLI, creates a chat and posts a message.
set -euo pipefail
bin="$1"
data=$(mktemp -d)
log="$data/server.log"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT

MISSIVE_DATA_DIR="$data" MISSIVE_BIND=127.0.0.1:0 NO_COLOR=1 "$bin" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on http://" "$log" && break
  sleep 0.1
done
addr=$(sed -nE 's#.*listening on http://([0-9.:]+).*#\1#p' "$log" | head -1)
[ -n "$addr" ] || { cat "$log"; echo "server did not start" >&2; exit 1; }

token=$(MISSIVE_DATA_DIR="$data" "$bin" token alice)
chat=$(curl -sf -X POST "http://$addr/v1/messaging/chats" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"participants":["bob"],"name":"Smoke"}')
id=$(printf '%s' "$chat" | sed -E 's/^\{"id":"([^"]+)".*/\1/')
curl -sf -X POST "http://$addr/v1/messaging/chats/$id/messages" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"content":"hello"}' | grep -q '"seq":1'
curl -sf "http://$addr/readyz" | grep -q ready

kill -TERM "$pid"
wait "$pid"
echo "smoke run passed: $addr"
