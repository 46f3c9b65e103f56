# Sourced by the CI scripts that drive a real missive binary (smoke, newman, browser).
# `start_server BIN [NAME=VALUE ...]` starts it as a fresh install: a new data directory,
# a free loopback port, none of the caller's database or auth settings, plus the given
# ones; it sets `pid` and `addr` (host:port) or exits with the server's log.
# `stop_server` stops it (also on exit, with the data directory removed).
data=$(mktemp -d)
log="$data/server.log"
pid=""
stop_server() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
trap 'stop_server; rm -rf "$data"' EXIT

start_server() {
  local bin="$1"
  shift
  env -u MISSIVE_DATABASE_URL -u DATABASE_URL -u MISSIVE_CONFIG -u MISSIVE_JWT_SECRET \
    -u MISSIVE_JWT_PUBLIC_KEY -u MISSIVE_JWT_ALGORITHM -u MISSIVE_JWT_ISSUER -u MISSIVE_JWT_AUDIENCE \
    MISSIVE_DATA_DIR="$data" MISSIVE_BIND=127.0.0.1:0 NO_COLOR=1 "$@" "$bin" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on http://" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  addr=$(sed -nE 's#.*listening on http://([0-9.:]+).*#\1#p' "$log" | head -1)
  [ -n "$addr" ] || { cat "$log" >&2; echo "the server did not start" >&2; exit 1; }
}
