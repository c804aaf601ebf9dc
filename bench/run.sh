#!/usr/bin/env bash
# Net API load benchmarks (issue 6); the results and how to read them: docs/benchmarks.md.
#
#   bench/run.sh                       SQLite run: every scenario, 10 s each, 32 connections
#   bench/run.sh --postgres URL        ... and a second full run on a fresh PostgreSQL database
#                                      (URL of an existing database whose user may CREATE
#                                      DATABASE; NETAPI_BENCH_POSTGRES_URL works too)
#   bench/run.sh --scale               ... and the scale run: 100 vs 1,000,000 stored API keys
#   bench/run.sh --scale-only          only the scale run
#   bench/run.sh --scale-resources     ... and the resources scale run: forward auth with 100
#                                      vs 1,000,000 keys spread over 1,000 resources
#                                      (--scale-keys, --scale-resource-count N)
#   bench/run.sh --propagation --postgres URL
#                                      only the propagation run: two instances on one fresh
#                                      PostgreSQL database, keys revoked through one and timed
#                                      until the other refuses them (LISTEN/NOTIFY), with
#                                      invalidation polling at 250 ms and at 60 s
#   --rounds N                         run the scenarios N times, interleaved, and report the
#                                      median round of each row (default 3; a shared or
#                                      virtual machine moves between runs)
#   --only LIST                        only these scenarios (comma-separated loadgen names,
#                                      e.g. refresh,introspect); healthz and the bare axum
#                                      baseline always run
#   --duration S  --connections N  --scale-keys N  --no-build  --output FILE (also write the
#   tables there)  --server-log DIR (keep the server logs)  --profile DIR (record a perf
#   profile of the server, event cpu-clock, for each scenario: DIR/<run>-<scenario>.data)
#
# Needs: cargo, curl; taskset (util-linux) to pin the server and the load generator to
# different cores; psql for --postgres. Everything else is built from this repository
# (the load generator is bench/loadgen, the bare axum baseline bench/baseline). Traffic goes
# to 127.0.0.1 only.
set -euo pipefail

DURATION=10
CONNECTIONS=32
PG_URL="${NETAPI_BENCH_POSTGRES_URL:-}"
SCALE=0
MAIN=1
SCALE_KEYS=1000000
SCALE_RESOURCES=0
SCALE_RESOURCE_COUNT=1000
PROPAGATION=0
BUILD=1
OUTPUT=""
LOG_DIR=""
PROFILE_DIR=""
ONLY=""
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --postgres) PG_URL="$2"; shift 2 ;;
    --scale) SCALE=1; shift ;;
    --scale-only) SCALE=1; MAIN=0; shift ;;
    --scale-keys) SCALE_KEYS="$2"; shift 2 ;;
    --scale-resources) SCALE_RESOURCES=1; MAIN=0; shift ;;
    --propagation) PROPAGATION=1; MAIN=0; shift ;;
    --scale-resource-count) SCALE_RESOURCE_COUNT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --output) OUTPUT="$2"; shift 2 ;;
    --server-log) LOG_DIR="$2"; shift 2 ;;
    --profile) PROFILE_DIR="$2"; shift 2 ;;
    --only) ONLY=",$2,"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
ROOT=$PWD
for tool in cargo curl; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool" >&2; exit 1; }
done
if [ -n "$PROFILE_DIR" ]; then
  command -v perf >/dev/null || { echo "--profile needs perf (Debian: linux-perf)" >&2; exit 1; }
  mkdir -p "$PROFILE_DIR"
  PROFILE_DIR=$(cd "$PROFILE_DIR" && pwd)
fi
if [ "$PROPAGATION" = 1 ] && [ -z "$PG_URL" ]; then
  echo "--propagation needs --postgres (SQLite serves one process)" >&2; exit 1
fi
if [ -n "$PG_URL" ] && ! command -v psql >/dev/null; then
  echo "--postgres needs psql to create the benchmark database" >&2; exit 1
fi

log() { printf '[bench] %s\n' "$*" >&2; }

if [ "$BUILD" = 1 ]; then
  log "building release binaries"
  cargo build --release -p netapi -p netapi-loadgen -p netapi-bench-baseline
fi
NETAPI="$ROOT/target/release/netapi"
LOADGEN="$ROOT/target/release/netapi-loadgen"
BASELINE="$ROOT/target/release/netapi-bench-baseline"
# The row every other is also compared with: the same forward-auth request, answered by a
# bare axum server after one SHA-256 and one HashMap lookup.
BARE_ROW="bare axum baseline"
# Bare rows of the same work as two of Net API's (issue 18): the form parsed, the client's
# secret checked by one SHA-256, the same access token signed (or verified and answered).
# Those two rows' "ratio to bare" is to these, not to the bearer baseline.
TOKEN_ROW="token, client credentials"
BARE_TOKEN_ROW="bare client credentials"
INTROSPECT_ROW="introspect"
BARE_INTROSPECT_ROW="bare introspection"

# Pinning: the server on the first half of the cores, the load generator on the rest.
CORES=$(nproc)
SERVER_PIN=()
LOAD_PIN=()
LOAD_THREADS=1
if [ "$CORES" -ge 2 ] && command -v taskset >/dev/null; then
  half=$((CORES / 2))
  SERVER_PIN=(taskset -c "0-$((half - 1))")
  LOAD_PIN=(taskset -c "$half-$((CORES - 1))")
  LOAD_THREADS=$((CORES - half))
  PINNING="server on CPU 0-$((half - 1)), load generator on CPU $half-$((CORES - 1))"
else
  LOAD_THREADS=1
  PINNING="not pinned ($CORES core(s) or no taskset)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/netapi-bench.XXXXXX")
SERVER_PID=""
PG_DATABASES=()
BARE_PID=""
# The propagation run's first instance (the second is SERVER_PID).
WRITER_PID=""
# More `netapi serve` options for the next start_server.
SERVER_EXTRA=()
cleanup() {
  stop_server || true
  if [ -n "$WRITER_PID" ]; then kill -TERM "$WRITER_PID" 2>/dev/null || true; fi
  stop_baseline || true
  for db in "${PG_DATABASES[@]}"; do
    psql "$PG_URL" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASSWORD="bench-password-1234"
ADMIN_EMAIL="admin@bench.test"
REDIRECT_URI="http://127.0.0.1:9/callback"
# RFC 7636's example pair; every code gets the same verifier, which is fine for a benchmark.
VERIFIER="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

json_field() { # json_field NAME JSON: a string field of a flat JSON answer
  printf '%s\n' "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n1
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    # Below Linux's ephemeral range (32768-60999), where outgoing connections take ports.
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"; return 0
    fi
  done
  echo "no free port found" >&2; return 1
}

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

peak_rss_mb() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

start_server() { # start_server LABEL DATABASE_URL
  local label="$1" db="$2" logfile="/dev/null"
  [ -n "$LOG_DIR" ] && { mkdir -p "$LOG_DIR"; logfile="$LOG_DIR/server-$label.log"; }
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"
  "${SERVER_PIN[@]}" "$NETAPI" serve --listen "127.0.0.1:$PORT" --database-url "$db" \
    --issuer "$BASE" --auth-failure-limit 1000000 --registration-limit-per-hour 0 \
    --registration-hash-queue 1000000 --max-connections-per-ip 0 "${SERVER_EXTRA[@]}" \
    >"$logfile" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if curl -fsS "$BASE/readyz" >/dev/null 2>&1; then
      log "server $SERVER_PID ready at $BASE ($label)"
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start; rerun with --server-log DIR to see why" >&2
  return 1
}

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

start_baseline() { # start_baseline API_KEY CLIENT_ID CLIENT_SECRET: the bare server, pinned as the server is
  local port
  port=$(free_port)
  BARE_BASE="http://127.0.0.1:$port"
  "${SERVER_PIN[@]}" "$BASELINE" --listen "127.0.0.1:$port" --key "$1" \
    --client-id "$2" --client-secret "$3" >/dev/null 2>&1 &
  BARE_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS -H "Authorization: Bearer $1" "$BARE_BASE/" >/dev/null 2>&1 && return 0
    kill -0 "$BARE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the bare baseline did not start" >&2
  return 1
}

stop_baseline() {
  if [ -n "$BARE_PID" ] && kill -0 "$BARE_PID" 2>/dev/null; then
    kill -TERM "$BARE_PID" 2>/dev/null || true
    wait "$BARE_PID" 2>/dev/null || true
  fi
  BARE_PID=""
}

# measure NAME LOADGEN-ARGS...: one scenario; appends a row to $ROWS:
# name, req/s, p50, p99, errors, server CPU %, server CPU µs per request, load generator CPU %
measure() {
  local name="$1"; shift
  if [ -n "$ONLY" ] && [ "$2" != healthz ] && [ "$name" != "$BARE_ROW" ] && [[ "$ONLY" != *",$2,"* ]]; then return 0; fi
  local before after started ended line perf_pid="" connections="${MEASURE_CONNECTIONS:-$CONNECTIONS}"
  if [ -n "$PROFILE_DIR" ]; then
    perf record -q -e cpu-clock -F 1999 -g -p "$SERVER_PID" \
      -o "$PROFILE_DIR/$RUN_LABEL-$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_').data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.3
  fi
  before=$(cpu_ticks "$SERVER_PID")
  started=$(date +%s.%N)
  line=$("${LOAD_PIN[@]}" "$LOADGEN" run --url "$BASE" --connections "$connections" \
    --duration "$DURATION" --threads "$LOAD_THREADS" "$@" | grep '^RESULT') || {
    echo "the load generator failed for $name" >&2; return 1; }
  ended=$(date +%s.%N)
  after=$(cpu_ticks "$SERVER_PID")
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
  fi
  # RESULT scenario ok rps p50 p99 errors loadgen-cpu all-requests
  echo "$line" | awk -F'\t' -v n="$name" -v a="$after" -v b="$before" -v s="$started" -v e="$ended" \
    -v hz="$(getconf CLK_TCK)" -v r="${ROUND:-1}" '{
      cpu = (a - b) / hz
      per = ($9 > 0) ? 1e6 * cpu / $9 : 0
      printf "%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\n", n, $4, $5, $6, $7, 100 * cpu / (e - s), per, $8, r
    }' >>"$ROWS"
}

seed_admin() { # seed_admin DATABASE_URL -> API_KEY
  API_KEY=$(printf '%s' "$PASSWORD" | "$NETAPI" admin --database-url "$1" --create create-user \
    --email "$ADMIN_EMAIL" --password-stdin --admin | tail -n1)
  [ -n "$API_KEY" ] || { echo "could not create the admin user" >&2; return 1; }
}

api_post() { # api_post PATH JSON
  curl -fsS -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
    -d "$2" "$BASE$1"
}

access_token() {
  local answer
  answer=$(curl -fsS -u "$CC_ID:$CC_SECRET" -d grant_type=client_credentials "$BASE/oauth/token")
  json_field access_token "$answer"
}

# The authorization code flow through the real pages: sign in once, approve once, then one
# code (and so one refresh token family) per connection.
seed_refresh_tokens() { # seed_refresh_tokens COUNT FILE
  local count="$1" file="$2" jar="$WORK/cookies.txt" page csrf status location code answer
  rm -f "$jar" "$file"
  page=$(curl -fsS -c "$jar" "$BASE/login?return_to=/portal")
  csrf=$(printf '%s' "$page" | grep -o 'name="csrf_token" value="[^"]*"' | head -n1 | sed 's/.*value="//; s/"$//')
  status=$(curl -sS -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" \
    --data-urlencode "email=$ADMIN_EMAIL" --data-urlencode "password=$PASSWORD" \
    --data-urlencode "csrf_token=$csrf" --data-urlencode "return_to=/portal" "$BASE/login")
  [ "$status" = 303 ] || { echo "sign-in failed with $status" >&2; return 1; }
  local query
  query="response_type=code&client_id=$WEB_ID&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=users%3Aread&code_challenge=$CHALLENGE&code_challenge_method=S256"
  for i in $(seq 1 "$count"); do
    page=$(curl -sS -b "$jar" -c "$jar" -o "$WORK/authorize.html" -w '%{http_code} %{redirect_url}' \
      "$BASE/oauth/authorize?$query&state=s$i")
    status=${page%% *}
    location=${page#* }
    if [ "$status" = 200 ]; then
      # The consent page: approve with its hidden fields.
      csrf=$(grep -o 'name="csrf_token" value="[^"]*"' "$WORK/authorize.html" | head -n1 | sed 's/.*value="//; s/"$//')
      local request
      request=$(grep -o 'name="request" value="[^"]*"' "$WORK/authorize.html" | head -n1 |
        sed 's/.*value="//; s/"$//; s/&#39;/'"'"'/g; s/&quot;/"/g; s/&#34;/"/g; s/&lt;/</g; s/&#60;/</g; s/&gt;/>/g; s/&#62;/>/g; s/&amp;/\&/g; s/&#38;/\&/g')
      page=$(curl -sS -b "$jar" -c "$jar" -o /dev/null -w '%{http_code} %{redirect_url}' \
        --data-urlencode "csrf_token=$csrf" --data-urlencode "request=$request" \
        --data-urlencode "decision=approve" "$BASE/oauth/authorize")
      status=${page%% *}
      location=${page#* }
    fi
    case "$location" in
      "$REDIRECT_URI"*code=*) ;;
      *) echo "authorization failed ($status $location)" >&2; return 1 ;;
    esac
    code=$(printf '%s' "$location" | sed 's/.*[?&]code=\([^&]*\).*/\1/')
    answer=$(curl -fsS -u "$WEB_ID:$WEB_SECRET" -d grant_type=authorization_code -d "code=$code" \
      --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER" "$BASE/oauth/token")
    json_field refresh_token "$answer" >>"$file"
  done
  [ "$(wc -l <"$file")" -ge "$count" ] || { echo "missing refresh tokens" >&2; return 1; }
}

# table TITLE ROWS-FILE: the Markdown table of one run. With several rounds, each row is the
# round with the median req/s, and each ratio the median of the per-round ratios to that
# round's healthz, or bare row (its own bare row where it has one, else the bare axum
# baseline).
table() {
  local title="$1" rows="$2" rounds
  rounds=$(awk -F'\t' '{ if ($9 > n) n = $9 } END { print n + 0 }' "$rows")
  echo
  echo "### $title"
  echo
  [ "$rounds" -gt 1 ] && { echo "Median of $rounds interleaved rounds."; echo; }
  echo "| scenario | req/s | p50 ms | p99 ms | ratio to healthz | ratio to bare | errors | server CPU | server CPU µs/req | load gen CPU |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' -v bare_row="$BARE_ROW" -v token="$TOKEN_ROW" -v bare_token="$BARE_TOKEN_ROW" \
    -v introspect="$INTROSPECT_ROW" -v bare_introspect="$BARE_INTROSPECT_ROW" '
    function median_index(list, count,    i, j, t, idx) {
      # list[1..count] holds "value SUBSEP row"; returns the row of the median value.
      for (i = 2; i <= count; i++) {
        t = list[i]; j = i - 1
        while (j >= 1 && (list[j] + 0) > (t + 0)) { list[j + 1] = list[j]; j-- }
        list[j + 1] = t
      }
      split(list[int((count + 1) / 2)], idx, SUBSEP)
      return idx[2]
    }
    # The req/s of the bare row that row `name` is compared with, in `round` (0 if none).
    function bare_for(name, round,    b) {
      b = (name in own) ? own[name] : bare_row
      return ((b, round) in rps_of) ? rps_of[b, round] : 0
    }
    BEGIN {
      own[token] = bare_token; own[bare_token] = bare_token
      own[introspect] = bare_introspect; own[bare_introspect] = bare_introspect
    }
    {
      row[NR] = $0
      if (!($1 in seen)) { seen[$1] = 1; order[++names] = $1 }
      if ($1 == "healthz") base[$9] = $2
      rps_of[$1, $9] = $2
      name_of[NR] = $1; rps[NR] = $2; round_of[NR] = $9
    }
    END {
      for (n = 1; n <= names; n++) {
        name = order[n]; count = 0; rcount = 0; bcount = 0
        delete by_rps; delete by_ratio; delete by_bare
        for (i = 1; i <= NR; i++) {
          if (name_of[i] != name) continue
          by_rps[++count] = rps[i] SUBSEP i
          if (base[round_of[i]] > 0) by_ratio[++rcount] = (rps[i] / base[round_of[i]]) SUBSEP i
          if (bare_for(name, round_of[i]) > 0) by_bare[++bcount] = (rps[i] / bare_for(name, round_of[i])) SUBSEP i
        }
        pick = median_index(by_rps, count)
        ratio = "-"
        if (rcount > 0) {
          r = median_index(by_ratio, rcount)
          ratio = sprintf("%.2f", rps[r] / base[round_of[r]])
        }
        bare_ratio = "-"
        if (bcount > 0) {
          r = median_index(by_bare, bcount)
          bare_ratio = sprintf("%.2f", rps[r] / bare_for(name, round_of[r]))
        }
        split(row[pick], f, "\t")
        printf "| %s | %.0f | %.2f | %.2f | %s | %s | %d | %d %% | %d | %d %% |\n", f[1], f[2], f[3], f[4], ratio, bare_ratio, f[5], f[6], f[7], f[8]
      }
    }' "$rows"
}

REPORT="$WORK/report.md"
{
  echo "## Net API benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); $PINNING; $CONNECTIONS connections, ${DURATION} s per scenario after 1 s of warm-up; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' + local changes')."
} >"$REPORT"

full_run() { # full_run LABEL DATABASE_URL
  local label="$1" db="$2"
  RUN_LABEL="$label"
  ROWS="$WORK/rows-$label.tsv"
  : >"$ROWS"
  log "$label: seeding"
  seed_admin "$db"
  start_server "$label" "$db"
  local answer
  answer=$(api_post /v1/oauth-clients '{"client_name":"bench machine","grant_types":["client_credentials"],"scope":"users:read"}')
  CC_ID=$(json_field client_id "$answer")
  CC_SECRET=$(json_field client_secret "$answer")
  answer=$(api_post /v1/oauth-clients "{\"client_name\":\"bench web\",\"redirect_uris\":[\"$REDIRECT_URI\"],\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"scope\":\"users:read\"}")
  WEB_ID=$(json_field client_id "$answer")
  WEB_SECRET=$(json_field client_secret "$answer")
  [ -n "$CC_SECRET" ] && [ -n "$WEB_SECRET" ] || { echo "could not create the clients" >&2; return 1; }
  seed_refresh_tokens "$CONNECTIONS" "$WORK/refresh-$label.txt"
  VERIFY_KEY=$(json_field key "$(api_post /v1/api-keys '{"name":"bench verifier","scopes":["keys:verify"]}')")
  [ -n "$VERIFY_KEY" ] || { echo "could not create the keys:verify key" >&2; return 1; }
  start_baseline "$API_KEY" "$CC_ID" "$CC_SECRET"
  local bare_token
  bare_token=$(json_field access_token "$(curl -fsS -u "$CC_ID:$CC_SECRET" \
    -d grant_type=client_credentials "$BARE_BASE/oauth/token")")
  [ -n "$bare_token" ] || { echo "the bare baseline gave no token" >&2; return 1; }

  for ROUND in $(seq 1 "$ROUNDS"); do
    # Every round rotates each connection's refresh token; the next one starts new families.
    [ "$ROUND" -gt 1 ] && seed_refresh_tokens "$CONNECTIONS" "$WORK/refresh-$label.txt"
    log "$label round $ROUND/$ROUNDS: healthz"
    measure healthz --scenario healthz
    log "$label round $ROUND/$ROUNDS: $BARE_ROW"
    SERVER_PID=$BARE_PID BASE=$BARE_BASE measure "$BARE_ROW" --scenario forward-auth-apikey \
      --api-key "$API_KEY" --resource "$BASE"
    log "$label round $ROUND/$ROUNDS: users-me-apikey"
    measure "users/me, API key" --scenario users-me-apikey --api-key "$API_KEY"
    log "$label round $ROUND/$ROUNDS: users-me-token"
    measure "users/me, access token" --scenario users-me-token --token "$(access_token)"
    log "$label round $ROUND/$ROUNDS: forward-auth-apikey"
    measure "forward auth, API key" --scenario forward-auth-apikey --api-key "$API_KEY" --resource "$BASE"
    log "$label round $ROUND/$ROUNDS: forward-auth-token"
    measure "forward auth, access token" --scenario forward-auth-token --token "$(access_token)" --resource "$BASE"
    log "$label round $ROUND/$ROUNDS: verify"
    measure "keys/verify" --scenario verify --api-key "$VERIFY_KEY" --verify-key "$API_KEY"
    log "$label round $ROUND/$ROUNDS: client-credentials"
    measure "$TOKEN_ROW" --scenario client-credentials --client-id "$CC_ID" --client-secret "$CC_SECRET"
    log "$label round $ROUND/$ROUNDS: $BARE_TOKEN_ROW"
    SERVER_PID=$BARE_PID BASE=$BARE_BASE measure "$BARE_TOKEN_ROW" --scenario client-credentials \
      --client-id "$CC_ID" --client-secret "$CC_SECRET"
    log "$label round $ROUND/$ROUNDS: refresh"
    measure "token, refresh (rotation)" --scenario refresh --client-id "$WEB_ID" --client-secret "$WEB_SECRET" \
      --refresh-tokens "$WORK/refresh-$label.txt"
    log "$label round $ROUND/$ROUNDS: introspect"
    measure "$INTROSPECT_ROW" --scenario introspect --client-id "$CC_ID" --client-secret "$CC_SECRET" --token "$(access_token)"
    log "$label round $ROUND/$ROUNDS: $BARE_INTROSPECT_ROW"
    SERVER_PID=$BARE_PID BASE=$BARE_BASE measure "$BARE_INTROSPECT_ROW" --scenario introspect \
      --client-id "$CC_ID" --client-secret "$CC_SECRET" --token "$bare_token"
  done
  stop_baseline
  ROUND=1
  local rss_auth
  rss_auth=$(peak_rss_mb "$SERVER_PID")
  log "$label: register"
  measure "register (argon2)" --scenario register
  local rss_all
  rss_all=$(peak_rss_mb "$SERVER_PID")
  stop_server
  {
    table "$label" "$ROWS"
    echo
    echo "Server peak RSS (VmHWM): $rss_auth MB through the introspect row, $rss_all MB with the register row."
  } >>"$REPORT"
}

scale_run() {
  local db="sqlite://$WORK/scale.db" rest=$((SCALE_KEYS - 100)) seeded
  RUN_LABEL="scale"
  ROWS="$WORK/rows-scale.tsv"
  : >"$ROWS"
  log "scale: 100 keys"
  seed_admin "$db"
  "$LOADGEN" seed-keys --database-url "$db" --email "$ADMIN_EMAIL" --count 99 >/dev/null
  start_server scale "$db"
  measure "healthz" --scenario healthz
  measure "users/me, API key, 100 keys stored (cache hit)" --scenario users-me-apikey --api-key "$API_KEY"
  log "scale: seeding $rest more keys through the Store"
  # Never-used keys for the miss rows: the 32-connection row takes them from the top of the
  # file, the one-connection row (p50 of a lone miss, no queueing) from the bottom.
  local single=100000 keep=$((CONNECTIONS * 20000 + 100000))
  [ "$keep" -gt "$rest" ] && keep=$rest
  [ "$single" -gt $((keep / 2)) ] && single=$((keep / 2))
  seeded=$("$LOADGEN" seed-keys --database-url "$db" --email "$ADMIN_EMAIL" --count "$rest" \
    --secrets-out "$WORK/miss-keys.txt" --secrets-count "$keep" | grep '^SEEDED')
  local seconds
  seconds=$(echo "$seeded" | cut -f3)
  measure "users/me, API key, $SCALE_KEYS keys stored (cache hit)" --scenario users-me-apikey --api-key "$API_KEY"
  log "scale: cache misses"
  head -n $((keep - single)) "$WORK/miss-keys.txt" >"$WORK/miss-keys-many.txt"
  tail -n "$single" "$WORK/miss-keys.txt" >"$WORK/miss-keys-one.txt"
  measure "users/me, API key, $SCALE_KEYS keys stored (cache miss: each key used once)" \
    --scenario users-me-apikey-miss --keys-file "$WORK/miss-keys-many.txt" --warmup 0
  MEASURE_CONNECTIONS=1 measure "users/me, API key, $SCALE_KEYS keys stored (cache miss, 1 connection)" \
    --scenario users-me-apikey-miss --keys-file "$WORK/miss-keys-one.txt" --warmup 0
  local rss
  rss=$(peak_rss_mb "$SERVER_PID")
  stop_server
  {
    table "Scale (SQLite)" "$ROWS"
    echo
    echo "Seeding $rest keys through Store::insert_api_key (one insert per statement, autocommit) took $seconds s. Server peak RSS (VmHWM): $rss MB."
  } >>"$REPORT"
}

# Forward auth's hit path with keys of many resources: one key of the first resource is
# measured with 100 keys stored, then with SCALE_KEYS, all spread over SCALE_RESOURCE_COUNT
# resources (seeded through the Store, key i for resource i mod N).
scale_resources_run() {
  local db="sqlite://$WORK/scale-resources.db" rest=$((SCALE_KEYS - 100)) seeded seconds
  local n="$SCALE_RESOURCE_COUNT" resource="https://api-0.bench.example" hit
  RUN_LABEL="scale-resources"
  ROWS="$WORK/rows-scale-resources.tsv"
  : >"$ROWS"
  log "scale-resources: $n resources, 100 keys"
  seed_admin "$db"
  "$LOADGEN" seed-keys --database-url "$db" --email "$ADMIN_EMAIL" --count 100 \
    --resources "$n" --secrets-out "$WORK/hit-key.txt" --secrets-count 1 >/dev/null
  hit=$(head -n1 "$WORK/hit-key.txt")
  start_server scale-resources "$db"
  measure "healthz" --scenario healthz
  measure "forward auth, API key of 1 of $n resources, 100 keys stored (cache hit)" \
    --scenario forward-auth-apikey --api-key "$hit" --resource "$resource" --scope bench:read
  log "scale-resources: seeding $rest more keys over the $n resources"
  seeded=$("$LOADGEN" seed-keys --database-url "$db" --email "$ADMIN_EMAIL" --count "$rest" \
    --resources "$n" | grep '^SEEDED')
  seconds=$(echo "$seeded" | cut -f3)
  measure "forward auth, API key of 1 of $n resources, $SCALE_KEYS keys stored (cache hit)" \
    --scenario forward-auth-apikey --api-key "$hit" --resource "$resource" --scope bench:read
  local rss
  rss=$(peak_rss_mb "$SERVER_PID")
  stop_server
  {
    table "Scale over $n resources (SQLite)" "$ROWS"
    echo
    echo "Seeding $rest keys over $n resources through Store::insert_api_key took $seconds s. Server peak RSS (VmHWM): $rss MB."
  } >>"$REPORT"
}

new_pg_database() { # new_pg_database: a fresh database, its URL in PG_DB_URL (dropped on exit)
  local name base query prefix
  name="netapi_bench_$(date +%s)_$$_${#PG_DATABASES[@]}"
  psql "$PG_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $name" >/dev/null
  PG_DATABASES+=("$name")
  base="${PG_URL%%\?*}"
  query="${PG_URL#"$base"}"
  if [[ "$base" =~ ^postgres(ql)?://[^/]*$ ]]; then prefix="$base"; else prefix="${base%/*}"; fi
  PG_DB_URL="$prefix/$name$query"
}

# Two instances on one PostgreSQL database: for each polling interval, keys made and revoked
# through the first, each cached by the second, which is asked until it answers 401.
propagation_run() {
  local poll line writer
  new_pg_database
  seed_admin "$PG_DB_URL"
  {
    echo "### Revocation propagation (PostgreSQL, two instances)"
    echo
    echo "| invalidation_poll_ms | keys revoked | p50 ms | p99 ms | max ms | min ms | reader requests |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
  } >>"$REPORT"
  for poll in 250 60000; do
    SERVER_EXTRA=(--invalidation-poll-ms "$poll")
    start_server "propagation-writer-$poll" "$PG_DB_URL"
    WRITER_PID=$SERVER_PID
    writer=$BASE
    SERVER_PID=""
    start_server "propagation-reader-$poll" "$PG_DB_URL"
    line=$("${LOAD_PIN[@]}" "$LOADGEN" propagation --writer "$writer" --reader "$BASE" \
      --key "$API_KEY" --samples 200 | grep '^PROPAGATION') || {
      echo "the propagation run failed (poll $poll ms)" >&2; return 1; }
    # PROPAGATION samples p50 p99 max min reader-requests
    echo "$line" | awk -F'\t' -v p="$poll" '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", p, $2, $3, $4, $5, $6, $7 }' >>"$REPORT"
    stop_server
    kill -TERM "$WRITER_PID" 2>/dev/null || true
    wait "$WRITER_PID" 2>/dev/null || true
    WRITER_PID=""
  done
  SERVER_EXTRA=()
  echo >>"$REPORT"
}

if [ "$MAIN" = 1 ]; then
  full_run SQLite "sqlite://$WORK/bench.db"
  if [ -n "$PG_URL" ]; then
    new_pg_database
    full_run PostgreSQL "$PG_DB_URL"
  fi
fi
if [ "$PROPAGATION" = 1 ]; then
  propagation_run
fi
if [ "$SCALE" = 1 ]; then
  scale_run
fi
if [ "$SCALE_RESOURCES" = 1 ]; then
  scale_resources_run
fi

echo
cat "$REPORT"
if [ -n "$OUTPUT" ]; then
  cp "$REPORT" "$OUTPUT"
  log "written to $OUTPUT"
fi
