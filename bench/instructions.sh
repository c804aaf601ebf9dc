#!/usr/bin/env bash
# Instructions per request, counted by callgrind (valgrind): the one measure of bench/ that
# other jobs on the machine do not move. Net API and the bare axum baseline run under
# callgrind; for each scenario the load generator sends 1 s of requests (caches filled), the
# counters are zeroed, 4 s more are sent, and the counters are dumped. Kernel time (TCP on
# loopback) is not counted: callgrind sees user space only.
#
#   bench/instructions.sh [--no-build] [--keep DIR]   (DIR: keep the callgrind files there)
#
# Needs: valgrind (callgrind_control), curl. Builds as bench/run.sh does. 127.0.0.1 only.
set -euo pipefail

BUILD=1
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0; shift ;;
    --keep) KEEP="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ROOT=$PWD
for tool in valgrind callgrind_control curl; do
  command -v "$tool" >/dev/null || { echo "bench/instructions.sh needs $tool" >&2; exit 1; }
done
[ "$BUILD" = 1 ] && cargo build --release -p netapi -p netapi-loadgen -p netapi-bench-baseline
NETAPI="$ROOT/target/release/netapi"
LOADGEN="$ROOT/target/release/netapi-loadgen"
BASELINE="$ROOT/target/release/netapi-bench-baseline"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/netapi-instructions.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp "$WORK"/cg.* "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
wait_for() { # wait_for URL [CURL-ARGS...]: callgrind starts slowly
  local url="$1"; shift
  for _ in $(seq 1 600); do curl -fsS "$@" "$url" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "$url did not answer" >&2; return 1
}

DB="sqlite://$WORK/bench.db"
KEY=$(printf 'bench-password-1234' | "$NETAPI" admin --database-url "$DB" --create create-user \
  --email admin@bench.test --password-stdin --admin | tail -n1)
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.netapi.%p" "$NETAPI" serve \
  --listen "127.0.0.1:$PORT" --database-url "$DB" --issuer "$BASE" --auth-failure-limit 1000000 \
  --registration-limit-per-hour 0 --max-connections-per-ip 0 >/dev/null 2>&1 &
NETAPI_PID=$!
PIDS+=("$NETAPI_PID")
wait_for "$BASE/readyz"
post() { curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$2" "$BASE$1"; }
VERIFY_KEY=$(post /v1/api-keys '{"name":"verifier","scopes":["keys:verify"]}' | field key)
CLIENT=$(post /v1/oauth-clients '{"client_name":"m","grant_types":["client_credentials"],"scope":"users:read"}')
CLIENT_ID=$(printf '%s' "$CLIENT" | field client_id)
CLIENT_SECRET=$(printf '%s' "$CLIENT" | field client_secret)
TOKEN=$(curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials "$BASE/oauth/token" | field access_token)

BARE_PORT=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.bare.%p" "$BASELINE" \
  --listen "127.0.0.1:$BARE_PORT" --key "$KEY" --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" \
  >/dev/null 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_for "http://127.0.0.1:$BARE_PORT/" -H "Authorization: Bearer $KEY"

count() { # count NAME PID URL LOADGEN-ARGS...: one table row
  local name="$1" pid="$2" url="$3" line requests file before
  shift 3
  "$LOADGEN" run --url "$url" --connections 4 --duration 1 --warmup 0 "$@" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  line=$("$LOADGEN" run --url "$url" --connections 4 --duration 4 --warmup 0 "$@" 2>/dev/null | grep '^RESULT')
  before=$(ls "$WORK" | wc -l)
  callgrind_control -d "$name" "$pid" >/dev/null 2>&1
  for _ in $(seq 1 100); do [ "$(ls "$WORK" | wc -l)" -gt "$before" ] && break; sleep 0.1; done
  file=$(ls -t "$WORK"/cg.*."$pid".* | head -n1)
  requests=$(printf '%s' "$line" | cut -f9)
  awk -v n="$name" -v r="$requests" '/^summary:/ { printf "| %s | %d | %d |\n", n, r, $2 / r; exit }' "$file"
}

echo "| scenario | requests counted | instructions per request |"
echo "|---|---:|---:|"
count "bare axum baseline" "$BARE_PID" "http://127.0.0.1:$BARE_PORT" --scenario forward-auth-apikey --api-key "$KEY" --resource "$BASE"
count healthz "$NETAPI_PID" "$BASE" --scenario healthz
count "users/me, API key" "$NETAPI_PID" "$BASE" --scenario users-me-apikey --api-key "$KEY"
count "forward auth, API key" "$NETAPI_PID" "$BASE" --scenario forward-auth-apikey --api-key "$KEY" --resource "$BASE"
count "forward auth, access token" "$NETAPI_PID" "$BASE" --scenario forward-auth-token --token "$TOKEN" --resource "$BASE"
count "keys/verify" "$NETAPI_PID" "$BASE" --scenario verify --api-key "$VERIFY_KEY" --verify-key "$KEY"
count "bare client credentials" "$BARE_PID" "http://127.0.0.1:$BARE_PORT" --scenario client-credentials \
  --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET"
count "token, client credentials" "$NETAPI_PID" "$BASE" --scenario client-credentials \
  --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET"
# The bare server introspects the tokens it signs.
BARE_TOKEN=$(curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
  "http://127.0.0.1:$BARE_PORT/oauth/token" | field access_token)
count "bare introspection" "$BARE_PID" "http://127.0.0.1:$BARE_PORT" --scenario introspect \
  --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --token "$BARE_TOKEN"
count "introspect" "$NETAPI_PID" "$BASE" --scenario introspect \
  --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --token "$TOKEN"
