#!/usr/bin/env bash
# The browser suite: the status page, the Configure view and signing in
# (access.test.mjs, with a host and users file of its own) in headless
# Chromium.
#
# Builds wsio, starts the built-in demo (`wsio run --http 127.0.0.1:0`),
# reads the status page's address from its stdout, runs the Playwright tests
# (`*.test.mjs`, node --test) against it, then stops the host with SIGTERM
# and checks that it exits 0 and never logged the test's bearer token. The
# Configure tests change the project, so each starts a host of its own.
#
# Needs Debian's chromium (/usr/bin/chromium, or set CHROMIUM) and the npm
# packages of crates/host/tests/browser (`npm ci` there; done here if missing).
# Leaves the screenshots in target/browser/ (status-page*.png,
# configure*.png, each at 1400 and 420 px wide) and the host's output
# beside them. `run.sh configure` runs only configure.test.mjs.
set -euo pipefail
cd "$(dirname "$0")/../../../.."

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "error: no Chromium at $chromium; install Debian's: apt-get install -y chromium (or set CHROMIUM)" >&2
  exit 1
fi
if [ ! -d crates/host/tests/browser/node_modules/playwright-core ]; then
  (cd crates/host/tests/browser && npm ci --no-audit --no-fund)
fi

cargo build
target=${CARGO_TARGET_DIR:-target}
out=$target/browser
mkdir -p "$out"
rm -f "$out"/status-page*.png "$out"/configure*.png "$out"/status-after-apply*.png
tests=(crates/host/tests/browser/*.test.mjs)
if [ $# -gt 0 ]; then tests=("${@/#/crates/host/tests/browser/}"); tests=("${tests[@]/%/.test.mjs}"); fi
token="browser-token-$$-$RANDOM.do-not-show"

# The host's stdout comes through a FIFO, so its first lines are read as
# they come (with a deadline), not polled for.
fifo=$(mktemp -u "${TMPDIR:-/tmp}/wsio-browser.XXXXXX")
mkfifo "$fifo"
"$target/debug/wsio" run --http 127.0.0.1:0 >"$fifo" 2>"$out/host.log" &
host=$!
exec 3<"$fifo"
rm -f "$fifo"

stop_host() {
  # Only the process this script started, by its id.
  if kill -0 "$host" 2>/dev/null; then kill -TERM "$host" 2>/dev/null || true; fi
}
trap stop_host EXIT

: >"$out/host.out"
url=
while IFS= read -r -t 60 line <&3; do
  printf '%s\n' "$line" >>"$out/host.out"
  case $line in
    "status page: "*) url=${line#status page: }; break ;;
  esac
done
if [ -z "$url" ]; then
  echo "error: wsio printed no status page address within 60 s; its output:" >&2
  cat "$out/host.out" "$out/host.log" >&2
  exit 1
fi
# Keep reading, so the host never blocks on a full pipe.
cat <&3 >>"$out/host.out" &

echo "== browser test against $url"
set +e
WSIO_STATUS_URL=$url \
  WSIO_SCREENSHOT=$PWD/$out/status-page.png \
  WSIO_TEST_TOKEN=$token \
  WSIO_BIN=$(cd "$target/debug" && pwd)/wsio \
  CHROMIUM=$chromium \
  node --test --test-concurrency=1 "${tests[@]}"
tested=$?
set -e

kill -TERM "$host"
set +e
wait "$host"
exited=$?
set -e
trap - EXIT

failed=0
if [ "$tested" -ne 0 ]; then
  echo "error: the browser test failed; the host's log:" >&2
  cat "$out/host.log" >&2
  failed=1
fi
if [ "$exited" -ne 0 ]; then
  echo "error: wsio exited with $exited after SIGTERM (expected 0); its log:" >&2
  cat "$out/host.log" >&2
  failed=1
fi
if grep -qF -- "$token" "$out/host.log" "$out/host.out"; then
  echo "error: the bearer token appears in the host's output:" >&2
  grep -nF -- "$token" "$out/host.log" "$out/host.out" >&2
  failed=1
fi
if [ "$failed" -eq 0 ]; then
  echo "== browser suite passed; screenshots: $out/*.png"
fi
exit "$failed"
