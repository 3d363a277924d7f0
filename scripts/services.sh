#!/usr/bin/env bash
# Local Redis and Postgres for the server, its tests and the demo.
#
#   scripts/services.sh [start|stop|status|env]      (start is the default)
#
# Addresses come from REDIS_URL and DATABASE_URL (same defaults as the
# server). A server already answering there is reused, whoever started it.
# Otherwise a project-local one is run with its data under .services/ at the
# repo root, installing the Debian packages first when they are missing.
# `stop` only stops the project-local servers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES_DIR=$ROOT/.services
REDIS_DIR=$SERVICES_DIR/redis
PG_DIR=$SERVICES_DIR/postgres
PG_DATA=$PG_DIR/data
APT_LOG=$SERVICES_DIR/apt.log

REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ticketrush}

say() { printf '%s\n' "$*"; }
die() {
  printf 'services.sh: %s\n' "$*" >&2
  exit 1
}
usage() { say "usage: scripts/services.sh [start|stop|status|env]"; }

# Paths in messages are shown relative to the repo root.
rel() { printf '%s\n' "${1#"$ROOT"/}"; }

# host:port, with brackets around IPv6 literals.
addr() {
  if [[ $1 == *:* ]]; then say "[$1]:$2"; else say "$1:$2"; fi
}

url_decode() { printf '%b' "${1//%/\\x}"; }

# Splits scheme://[user[:pass]@]host[:port][/path][?query] into URL_* globals.
# Percent-encoded user, password and path are decoded; the query is ignored.
parse_url() {
  local url=$1 rest auth=""
  rest=${url#*://}
  [[ $rest != "$url" ]] || die "not a URL: $url"
  URL_SCHEME=${url%%://*}
  rest=${rest%%\?*}
  URL_PATH=""
  if [[ $rest == */* ]]; then
    URL_PATH=$(url_decode "${rest#*/}")
    rest=${rest%%/*}
  fi
  if [[ $rest == *@* ]]; then
    auth=${rest%@*}
    rest=${rest##*@}
  fi
  URL_USER=$(url_decode "${auth%%:*}")
  URL_PASS=""
  [[ $auth != *:* ]] || URL_PASS=$(url_decode "${auth#*:}")
  URL_PORT=""
  if [[ $rest == \[* ]]; then
    URL_HOST=${rest%%]*}
    URL_HOST=${URL_HOST#\[}
    rest=${rest#*]}
    URL_PORT=${rest#:}
  else
    URL_HOST=${rest%%:*}
    [[ $rest != *:* ]] || URL_PORT=${rest#*:}
  fi
}

is_loopback() {
  [[ $1 == localhost || $1 == ::1 || $1 =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]]
}

check_endpoint() { # name host port
  is_loopback "$2" || die "$1 host must be a loopback address, got '$2'"
  if ! [[ $3 =~ ^[0-9]+$ ]] || ((10#$3 < 1 || 10#$3 > 65535)); then
    die "$1 port is not a port: '$3'"
  fi
}

load_config() {
  parse_url "$REDIS_URL"
  [[ $URL_SCHEME == redis ]] || die "REDIS_URL must start with redis:// (got $URL_SCHEME://)"
  REDIS_HOST=${URL_HOST:-127.0.0.1}
  REDIS_PORT=${URL_PORT:-6379}
  REDIS_PASS=$URL_PASS
  check_endpoint REDIS_URL "$REDIS_HOST" "$REDIS_PORT"

  parse_url "$DATABASE_URL"
  [[ $URL_SCHEME == postgres || $URL_SCHEME == postgresql ]] ||
    die "DATABASE_URL must start with postgres:// (got $URL_SCHEME://)"
  PG_HOST=${URL_HOST:-127.0.0.1}
  PG_PORT=${URL_PORT:-5432}
  PG_USER=${URL_USER:-postgres}
  PG_PASS=$URL_PASS
  PG_DB=${URL_PATH:-$PG_USER}
  check_endpoint DATABASE_URL "$PG_HOST" "$PG_PORT"

  # The client tools read credentials from the environment, which keeps
  # passwords off command lines.
  if [[ -n $REDIS_PASS ]]; then export REDISCLI_AUTH=$REDIS_PASS; fi
  if [[ -n $PG_PASS ]]; then export PGPASSWORD=$PG_PASS; fi
  export PGCONNECT_TIMEOUT=5
}

# --- privileges and packages ------------------------------------------------

# Commands that may leave daemons behind (package scripts, servers) run with
# the lock's fd 9 closed, or the daemon would hold the lock forever.
as_root() {
  if ((EUID == 0)); then
    "$@" 9>&-
  elif command -v sudo >/dev/null; then
    sudo "$@" 9>&-
  else
    die "root is needed for: $* (run as root, or install sudo)"
  fi
}

apt_get() {
  # The lock timeout waits out unattended upgrades instead of failing.
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get -q -o DPkg::Lock::Timeout=300 "$@" >>"$APT_LOG" 2>&1
}

apt_install() {
  command -v apt-get >/dev/null ||
    die "no apt-get: install $* (or their equivalents) yourself, or point REDIS_URL/DATABASE_URL at running servers"
  ((EUID == 0)) || command -v sudo >/dev/null ||
    die "installing $* needs root: run as root, install sudo, or install the packages yourself"
  say "packages: installing $* (log: $(rel "$APT_LOG"))"
  # Refresh the package lists only when there are none or the install fails,
  # so repeated runs stay offline and fast.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null ||
    ! apt_get install -y --no-install-recommends "$@"; then
    say "packages: running apt-get update"
    apt_get update || { tail -n 20 "$APT_LOG" >&2; die "apt-get update failed"; }
    apt_get install -y --no-install-recommends "$@" ||
      { tail -n 20 "$APT_LOG" >&2; die "installing $* failed"; }
  fi
}

# Debian's packages start a system-wide instance on the default port when
# installed (on systemd machines; containers with policy-rc.d skip it). Stop
# and disable it rather than reuse it: it runs the distribution's settings
# (Redis without AOF, so acknowledged writes can be lost on a crash), it would
# come back on every boot, and nothing here uses it. Only called right after
# this script installed the package, so no one else relies on that instance.
disable_system_service() { # service-name label
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    as_root systemctl disable --now "$1" >>"$APT_LOG" 2>&1 || true
  else
    if command -v service >/dev/null; then
      as_root service "$1" stop >>"$APT_LOG" 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null; then
      as_root update-rc.d "$1" disable >>"$APT_LOG" 2>&1 || true
    fi
  fi
  say "$2: stopped and disabled the package's system service '$1'"
}

# True if pid $1 is a live (not zombie) process whose name starts with $2.
proc_is() {
  local stat comm
  read -r stat comm < <(ps -p "$1" -o stat=,comm= 2>/dev/null) || return 1
  [[ $stat != Z* && $comm == "$2"* ]]
}

# Waits up to $1 seconds for the command to succeed.
wait_for() {
  local tries=$(($1 * 4))
  shift
  until "$@"; do
    ((--tries > 0)) || return 1
    sleep 0.25
  done
}

# --- Redis ------------------------------------------------------------------

redis_cli() { timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@" 2>/dev/null; }

redis_answers() {
  if command -v redis-cli >/dev/null; then
    [[ $(redis_cli ping) == PONG ]]
  else
    # No redis-cli yet: send an inline PING through bash's /dev/tcp.
    (
      exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT" || exit 1
      printf 'PING\r\n' >&3
      IFS= read -r -t 3 reply <&3 || exit 1
      [[ $reply == +PONG* ]]
    ) 2>/dev/null
  fi
}

redis_appendonly() {
  command -v redis-cli >/dev/null || return 0
  redis_cli --raw config get appendonly | sed -n 2p
}

# Prints the pid of the project-local Redis if it is running.
redis_local_pid() {
  local pid
  [[ -r $REDIS_DIR/redis.pid ]] || return 1
  pid=$(<"$REDIS_DIR/redis.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # A stale pidfile (after a crash) may name a recycled pid.
  proc_is "$pid" redis-server || return 1
  say "$pid"
}

pid_gone() { ! proc_is "$1" redis-server; }

stop_redis_local() { # pid
  kill -TERM "$1" || die "cannot signal redis pid $1 (started by another user?)"
  # SIGTERM makes Redis flush the AOF and exit cleanly.
  wait_for 30 pid_gone "$1" || die "redis pid $1 did not stop within 30s"
}

write_redis_conf() {
  local bind=$REDIS_HOST
  # "-::1" binds IPv6 loopback only where the host has it.
  [[ $REDIS_HOST != localhost ]] || bind="127.0.0.1 -::1"
  # Private: it may hold the password.
  (umask 077 && cat >"$REDIS_DIR/redis.conf") <<EOF
# Written by scripts/services.sh on every start; edits are overwritten.
bind $bind
port $REDIS_PORT
daemonize yes
pidfile "$REDIS_DIR/redis.pid"
logfile "$REDIS_DIR/redis.log"
dir "$REDIS_DIR"
# Redis holds the live state first, so every acknowledged write goes to the
# append-only file, fsynced once a second.
appendonly yes
appendfsync everysec
# The AOF is the persistence; RDB snapshots would only add fork pauses.
save ""
EOF
  if [[ -n $REDIS_PASS ]]; then
    printf 'requirepass "%s"\n' "$REDIS_PASS" >>"$REDIS_DIR/redis.conf"
  fi
}

start_redis() {
  local at pid
  at=$(addr "$REDIS_HOST" "$REDIS_PORT")
  if redis_answers; then
    if pid=$(redis_local_pid); then
      say "redis: reusing server at $at (project-local, pid $pid)"
    else
      say "redis: reusing server at $at (not started by this script; appendonly=$(redis_appendonly))"
    fi
    return
  fi
  if pid=$(redis_local_pid); then
    # Ours, but not at the configured address: REDIS_URL changed.
    stop_redis_local "$pid"
    say "redis: stopped project-local server (pid $pid) to restart it at $at"
  fi
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
    disable_system_service redis-server redis
    if wait_for 2 redis_answers; then
      say "redis: reusing server at $at (the system service did not stop; appendonly=$(redis_appendonly))"
      return
    fi
  fi
  mkdir -p "$REDIS_DIR"
  write_redis_conf
  redis-server "$REDIS_DIR/redis.conf" 9>&- ||
    die "redis-server failed to start; see $(rel "$REDIS_DIR/redis.log")"
  if ! wait_for 15 redis_answers; then
    tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
    die "redis did not answer at $at; see $(rel "$REDIS_DIR/redis.log")"
  fi
  say "redis: started project-local server at $at (pid $(redis_local_pid), data $(rel "$REDIS_DIR"), appendonly yes)"
}

stop_redis() {
  local pid
  if pid=$(redis_local_pid); then
    stop_redis_local "$pid"
    say "redis: stopped project-local server (pid $pid)"
  else
    say "redis: no project-local server running"
  fi
}

status_redis() {
  local at pid
  at=$(addr "$REDIS_HOST" "$REDIS_PORT")
  if redis_answers; then
    if pid=$(redis_local_pid); then
      say "redis: up at $at (project-local, pid $pid, appendonly=$(redis_appendonly))"
    else
      say "redis: up at $at (not started by this script, appendonly=$(redis_appendonly))"
    fi
  elif pid=$(redis_local_pid); then
    say "redis: DOWN at $at (a project-local server runs as pid $pid, elsewhere)"
    return 1
  else
    say "redis: DOWN at $at"
    return 1
  fi
}

# --- Postgres ---------------------------------------------------------------

# Server binaries: the version the data dir was created with, else
# pg_config's, else the newest Debian one, else whatever is on PATH.
find_pg_bin() {
  local dir ver="" candidates=()
  [[ ! -r $PG_DATA/PG_VERSION ]] || ver=$(<"$PG_DATA/PG_VERSION")
  [[ -z $ver ]] || candidates+=("/usr/lib/postgresql/$ver/bin")
  if command -v pg_config >/dev/null; then
    candidates+=("$(pg_config --bindir 2>/dev/null || true)")
  fi
  while IFS= read -r dir; do
    candidates+=("$dir")
  done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -t/ -k5,5Vr)
  if command -v initdb >/dev/null; then
    candidates+=("$(dirname "$(command -v initdb)")")
  fi
  for dir in "${candidates[@]}"; do
    if [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]]; then
      PG_BIN=$dir
      return 0
    fi
  done
  return 1
}

pg_tools_present() {
  command -v psql >/dev/null && command -v pg_isready >/dev/null &&
    command -v createdb >/dev/null
}

pg_answers() {
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3
}

tcp_port_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# initdb and postgres refuse to run as root. As root they run as the owner of
# an existing data dir, else as the postgres system user (created by the
# postgresql package); anyone else runs them as themselves.
pick_pg_os_user() {
  PG_OS_USER=$(id -un)
  ((EUID == 0)) || return 0
  PG_OS_USER=postgres
  if [[ -d $PG_DATA ]]; then
    local owner
    owner=$(stat -c %U "$PG_DATA")
    [[ $owner == root || $owner == UNKNOWN ]] || PG_OS_USER=$owner
  fi
}

as_pg() {
  if ((EUID == 0)); then
    command -v runuser >/dev/null || die "runuser (util-linux) is needed to run Postgres as $PG_OS_USER"
    (cd / && runuser -u "$PG_OS_USER" -- "$@" 9>&-)
  else
    "$@" 9>&-
  fi
}

ensure_pg_os_user() {
  ((EUID == 0)) || return 0
  id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
    --shell /usr/sbin/nologin "$PG_OS_USER"
  say "postgres: created system user $PG_OS_USER"
}

# The repo may sit below a directory the postgres user cannot enter (say
# /root). Grant that user traverse-only access (x: it can pass through, not
# list) on just the directories in the way: by ACL when setfacl exists, so
# only that user gains it, else with o+x.
ensure_pg_can_reach() {
  ((EUID == 0)) || return 0
  local dirs=() d i
  d=$PG_DIR
  while [[ $d != / ]]; do
    dirs+=("$d")
    d=$(dirname "$d")
  done
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    d=${dirs[i]}
    as_pg test -x "$d" && continue
    if command -v setfacl >/dev/null; then
      setfacl -m "u:$PG_OS_USER:x" "$d"
    else
      chmod o+x "$d"
    fi
    say "postgres: allowed user $PG_OS_USER to traverse $d"
  done
  as_pg test -w "$PG_DIR" || die "user $PG_OS_USER cannot write $(rel "$PG_DIR")"
}

pg_local_pid() { head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null; }

# After a reboot or container restart, postmaster.pid can name a pid now
# used by some other process, which pg_ctl and postgres would take for a
# running server; such a file is stale and safe to remove.
pg_pidfile_stale() {
  local pid
  pid=$(pg_local_pid) || return 1
  [[ -n $pid ]] || return 1
  ! proc_is "$pid" postgres
}

pg_local_running() {
  [[ -f $PG_DATA/postmaster.pid ]] && [[ -n ${PG_BIN:-} ]] && ! pg_pidfile_stale &&
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

install_pg_server() {
  apt_install postgresql
  disable_system_service postgresql postgres
  find_pg_bin || die "postgresql is installed but initdb/pg_ctl were not found"
}

ensure_pg_tools() {
  pg_tools_present && return 0
  # Nothing listening means a server is needed too: install it in one go.
  if tcp_port_open "$PG_HOST" "$PG_PORT"; then
    apt_install postgresql-client
  else
    install_pg_server
  fi
}

# Unix sockets are capped at 107 bytes; a deep checkout falls back to TCP only.
pg_socket_dir() {
  local dir=$PG_DIR/run
  if ((${#dir} + ${#PG_PORT} + 10 < 107)); then say "$dir"; fi
}

write_pg_conf() {
  local listen=$PG_HOST socket_dir
  socket_dir=$(pg_socket_dir)
  if [[ -n $socket_dir ]]; then as_pg mkdir -p "$socket_dir"; fi
  # Written by the server's user so it stays owned by it inside the data dir.
  as_pg tee "$PG_DATA/ticketrush.conf" >/dev/null <<EOF
# Written by scripts/services.sh on every start; edits are overwritten.
listen_addresses = '$listen'
port = $PG_PORT
unix_socket_directories = '$socket_dir'
# Test binaries each open their own pool, many at once.
max_connections = 300
# Durable, like production: commits cost what they will cost there.
fsync = on
synchronous_commit = on
EOF
}

init_pg_data() {
  local log=$PG_DIR/initdb.log
  # trust is safe because the server listens on loopback only. C collation
  # keeps sorting identical on every machine.
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --auth=trust \
    --encoding=UTF8 --no-locale >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "initdb failed; see $(rel "$log")"; }
  printf "\ninclude_if_exists = 'ticketrush.conf'\n" |
    as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  say "postgres: initialised $(rel "$PG_DATA") (PostgreSQL $(<"$PG_DATA/PG_VERSION"), superuser $PG_USER)"
}

check_pg_version() {
  local data_ver bin_ver
  data_ver=$(<"$PG_DATA/PG_VERSION")
  bin_ver=$("$PG_BIN/pg_ctl" --version | awk '{ split($3, v, "."); print v[1] }')
  [[ $data_ver == "$bin_ver" ]] ||
    die "$(rel "$PG_DATA") is PostgreSQL $data_ver but $PG_BIN is $bin_ver: install $data_ver or delete $(rel "$PG_DIR")"
}

start_pg_local() {
  local at log=$PG_DIR/postgres.log
  at=$(addr "$PG_HOST" "$PG_PORT")
  mkdir -p "$PG_DIR"
  chmod 0755 "$SERVICES_DIR" "$PG_DIR"
  if ((EUID == 0)); then chown "$PG_OS_USER:" "$PG_DIR"; fi
  ensure_pg_can_reach
  if [[ -f $PG_DATA/PG_VERSION ]]; then
    check_pg_version
  else
    init_pg_data
  fi
  write_pg_conf
  if [[ -f $PG_DATA/postmaster.pid ]] && pg_pidfile_stale; then
    rm -f "$PG_DATA/postmaster.pid"
    say "postgres: removed stale $(rel "$PG_DATA")/postmaster.pid"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$log" -w -t 60 -s start; then
    tail -n 20 "$log" >&2 || true
    die "postgres failed to start at $at; see $(rel "$log")"
  fi
  say "postgres: started project-local server at $at (pid $(pg_local_pid), data $(rel "$PG_DATA"))"
}

psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"
}

ensure_database() {
  local found
  found=$(psql_admin -tA -v db="$PG_DB" <<<"select 1 from pg_database where datname = :'db'") ||
    die "cannot query databases at $(addr "$PG_HOST" "$PG_PORT") as $PG_USER"
  [[ $found != 1 ]] || return 0
  createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
  say "postgres: created database $PG_DB"
}

start_postgres() {
  local at
  at=$(addr "$PG_HOST" "$PG_PORT")
  ensure_pg_tools
  find_pg_bin || true
  pick_pg_os_user
  if wait_for 1 pg_answers; then
    if pg_local_running; then
      say "postgres: reusing server at $at (project-local, pid $(pg_local_pid))"
    else
      say "postgres: reusing server at $at (not started by this script)"
    fi
    ensure_database
    return
  fi
  if pg_local_running; then
    # Ours, but not at the configured address: DATABASE_URL changed.
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -s stop
    say "postgres: stopped project-local server to restart it at $at"
  fi
  if [[ -z ${PG_BIN:-} ]]; then
    install_pg_server
    if wait_for 2 pg_answers; then
      say "postgres: reusing server at $at (the system service did not stop)"
      ensure_database
      return
    fi
  fi
  ensure_pg_os_user
  start_pg_local
  ensure_database
}

stop_postgres() {
  find_pg_bin || true
  pick_pg_os_user
  if pg_local_running; then
    local pid
    pid=$(pg_local_pid)
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -s stop
    say "postgres: stopped project-local server (pid $pid)"
  else
    say "postgres: no project-local server running"
  fi
}

status_postgres() {
  local at
  at=$(addr "$PG_HOST" "$PG_PORT")
  find_pg_bin || true
  pick_pg_os_user
  if command -v pg_isready >/dev/null && pg_answers; then
    if pg_local_running; then
      say "postgres: up at $at (project-local, pid $(pg_local_pid))"
    else
      say "postgres: up at $at (not started by this script)"
    fi
  elif pg_local_running; then
    say "postgres: DOWN at $at (a project-local server runs as pid $(pg_local_pid), elsewhere)"
    return 1
  else
    say "postgres: DOWN at $at"
    return 1
  fi
}

# --- commands ---------------------------------------------------------------

# Serialises start/stop so parallel callers do not race on the data dirs.
# Released when this script exits (see as_root about fd 9).
take_lock() {
  mkdir -p "$SERVICES_DIR"
  command -v flock >/dev/null || return 0
  exec 9>>"$SERVICES_DIR/.lock"
  flock 9
}

main() {
  local cmd=${1:-start} rc=0
  case $cmd in
    start)
      load_config
      take_lock
      start_redis
      start_postgres
      ;;
    stop)
      load_config
      take_lock
      stop_redis
      stop_postgres
      ;;
    status)
      load_config
      status_redis || rc=1
      status_postgres || rc=1
      return "$rc"
      ;;
    env)
      load_config
      printf 'export REDIS_URL=%q\n' "$REDIS_URL"
      printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
      ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      return 2
      ;;
  esac
}

main "$@"
