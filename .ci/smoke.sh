#!/usr/bin/env bash
# Starts the release binary as a new user would (dev auth, SQLite in a fresh data
# directory), mints a token with the CLI, creates a chat and posts a message.
set -euo pipefail
bin="$1"
source "$(dirname "$0")/server.sh"
start_server "$bin"

token=$(MISSIVE_DATA_DIR="$data" "$bin" token alice)
chat=$(curl -sf -X POST "http://$addr/v1/messaging/chats" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"participants":["bob"],"name":"Smoke"}')
id=$(printf '%s' "$chat" | sed -E 's/^\{"id":"([^"]+)".*/\1/')
curl -sf -X POST "http://$addr/v1/messaging/chats/$id/messages" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"content":"hello"}' | grep -q '"seq":1'
curl -sf "http://$addr/readyz" | grep -q ready

# A clean exit on SIGTERM is part of the check.
kill -TERM "$pid"
wait "$pid"
pid=""
echo "smoke run passed: $addr"
