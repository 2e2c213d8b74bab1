#!/usr/bin/env bash
# Installs the real peers of the interop tests (tests/interop.rs): Python's
# `websockets` in tests/interop/.venv, Node's `ws` in tests/interop/node_modules
# (from package-lock.json), and Debian's nginx. Idempotent; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import websockets' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet -r requirements.txt
fi

if [ ! -f node_modules/ws/package.json ]; then
  npm ci --no-audit --no-fund
fi

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y nginx
fi

echo "interop peers: websockets $(.venv/bin/python -c 'import websockets; print(websockets.__version__)'), ws $(node -p 'require("./node_modules/ws/package.json").version'), $(/usr/sbin/nginx -v 2>&1 || nginx -v 2>&1)"
