#!/usr/bin/env bash
# Runs the server locally with demo data: local services, a release build,
# migrations, the demo seed, then the server in the foreground (Ctrl-C stops).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/services.sh start
eval "$(scripts/services.sh env)"

# Admin endpoints stay off without a token; the demo uses a fixed one, which
# is fine because everything listens on loopback only.
export ADMIN_TOKEN=${ADMIN_TOKEN:-demo-admin-token}

echo "==> cargo build --release"
cargo build --release
bin=${CARGO_TARGET_DIR:-target}/release/ticketrush

echo "==> ticketrush migrate"
"${bin}" migrate

# Demo data is a convenience (and a re-run may find it already there): the
# server is still usable without it, so only this step may fail.
echo "==> ticketrush seed --demo"
if ! "${bin}" seed --demo; then
  echo "note: 'ticketrush seed --demo' failed; serving without (new) demo data" >&2
fi

echo "==> ticketrush serve on http://${BIND_ADDR:-127.0.0.1:8080}"
echo "    admin token: ${ADMIN_TOKEN}"
exec "${bin}" serve
