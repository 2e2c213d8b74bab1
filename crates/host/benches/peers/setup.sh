#!/usr/bin/env bash
# Installs the peer clients the throughput bench compares against, once, into
# target/bench-peers/: Python `websockets` in a venv (pip) and Node `ws` (npm).
# Idempotent; nothing is installed outside target/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
dir="$root/target/bench-peers"
mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c 'import websockets' 2>/dev/null; then
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check 'websockets>=13,<16'
fi
if [ ! -f "$dir/node_modules/ws/package.json" ]; then
    (cd "$dir" && npm install --silent --no-audit --no-fund --prefix "$dir" 'ws@8' >/dev/null)
fi
echo "peers: python $("$dir/venv/bin/python" -c 'import websockets; print("websockets", websockets.__version__)'), node $(node --version) ws $(node -p "require('$dir/node_modules/ws/package.json').version")"
