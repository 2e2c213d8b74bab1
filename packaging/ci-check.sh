#!/usr/bin/env bash
# CI check of the Debian package (issue 19; run by .ci/run, as root or with
# sudo; Debian or Ubuntu). Builds it with packaging/build-deb.sh, checks its
# contents and lintian's verdict, installs it with dpkg, checks the unit and
# the project, runs the installed wsio as the wsio user on a loopback port
# and reads GET /io_modules, builds the C example host against the installed
# header and library with pkg-config and runs it against a demo server,
# then purges the package and checks that only the system user "wsio" is
# left (kept by design, docs/packaging.md). Everything listens on 127.0.0.1;
# every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
step() { echo "-- $*"; }
fail() {
  echo "ci-check.sh: FAILED: $*" >&2
  exit 1
}

# Tools: lintian (the package's checker) and pkg-config, from Debian.
if ! command -v lintian >/dev/null || ! command -v pkg-config >/dev/null \
  || ! command -v curl >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y lintian pkg-config curl
fi

scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

# Waits (at most 30 s) for a line of $1 matching the regex $2 while process
# $3 lives, and prints it. (grep reads a process substitution so that the
# wait ends at the match; the tail behind it ends with $3 or the timeout.)
wait_line() {
  local line
  line=$(grep -m 1 -E -- "$2" < <(timeout 30 tail -n +1 -f --pid="$3" "$1")) \
    || { cat "$1" >&2; fail "no line matching '$2' in $1"; }
  echo "$line"
}

step "build the package"
deb=$(bash packaging/build-deb.sh | tail -n 1)
echo "$deb"

step "contents (dpkg-deb -c)"
dpkg-deb -c "$deb" | tee "$scratch/contents"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
# mode, owner and path of every file the issue asks for (the unit's folder
# is cargo-deb's choice: /lib or /usr/lib).
for expected in \
  "-rwxr-xr-x root/root .* ./usr/bin/wsio$" \
  "-rw-r--r-- root/root .* ./usr/lib/$multiarch/libwsio.so.1$" \
  "lrwxrwxrwx root/root .* ./usr/lib/$multiarch/libwsio.so -> libwsio.so.1$" \
  "-rw-r--r-- root/root .* ./usr/lib/$multiarch/pkgconfig/wsio.pc$" \
  "-rw-r--r-- root/root .* ./usr/include/iom.h$" \
  "-rw------- root/root .* ./etc/wsio/project.toml$" \
  "-rw-r--r-- root/root .* ./(usr/)?lib/systemd/system/wsio.service$" \
  "-rw-r--r-- root/root .* ./usr/share/doc/wsio/copyright$" \
  "-rw-r--r-- root/root .* ./usr/share/doc/wsio/changelog.Debian.gz$"; do
  grep -qE -- "^$expected" "$scratch/contents" || fail "the package lacks: $expected"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -t | sort | tee "$scratch/control"
for file in control md5sums conffiles postinst postrm prerm shlibs triggers; do
  grep -qx "./$file" "$scratch/control" || fail "no $file control file"
done
[ "$(dpkg-deb --info "$deb" conffiles)" = "/etc/wsio/project.toml" ] \
  || fail "the conffile list is not just /etc/wsio/project.toml"
dpkg-deb --field "$deb" Package Version Architecture Depends

step "lintian (errors fail; accepted warnings: docs/packaging.md)"
lintian --fail-on error --tag-display-limit 0 "$deb"

step "install (dpkg -i)"
if dpkg -s wsio >/dev/null 2>&1; then $SUDO dpkg --purge wsio; fi
$SUDO dpkg -i "$deb"
unit=$(dpkg -L wsio | grep -E '/systemd/system/wsio\.service$')
getent passwd wsio >/dev/null || fail "postinst made no user wsio"
[ "$(stat -c '%U:%G %a' /etc/wsio/project.toml)" = "wsio:wsio 600" ] \
  || fail "/etc/wsio/project.toml is $(stat -c '%U:%G %a' /etc/wsio/project.toml), not wsio:wsio 600"
[ "$(stat -c '%U %a' /etc/wsio)" = "wsio 700" ] || fail "/etc/wsio is $(stat -c '%U %a' /etc/wsio)"
[ "$(stat -c '%U %a' /var/lib/wsio)" = "wsio 750" ] || fail "/var/lib/wsio is $(stat -c '%U %a' /var/lib/wsio)"
readelf -d "/usr/lib/$multiarch/libwsio.so.1" | grep -q 'Library soname: \[libwsio.so.1\]' \
  || fail "the installed library has no SONAME libwsio.so.1"

step "systemd-analyze verify $unit"
systemd-analyze verify "$unit"
systemd-analyze security --offline=true "$unit" | tail -n 1

step "wsio check /etc/wsio/project.toml"
/usr/bin/wsio check /etc/wsio/project.toml

step "the installed wsio, as the user wsio, on a loopback port"
# setpriv execs wsio itself, so $! is wsio's pid (runuser would stay between).
setpriv --reuid=wsio --regid=wsio --init-groups --reset-env \
  env RUST_LOG=info /usr/bin/wsio run --http 127.0.0.1:0 /etc/wsio/project.toml \
  >"$scratch/run.log" 2>&1 &
host=$!
pids+=("$host")
api=$(wait_line "$scratch/run.log" '^io_modules API: http://127\.0\.0\.1:[0-9]+/io_modules$' "$host")
api=${api#io_modules API: }
wait_line "$scratch/run.log" 'loaded module WebSocket Client .* from built-in' "$host"
[ "$(ps -o user= -p "$host")" = wsio ] || fail "wsio does not run as the user wsio"
curl --silent --show-error --fail --max-time 10 "$api" | tee "$scratch/io_modules.json"
echo
grep -q '"name":"WebSocket Client"' "$scratch/io_modules.json" || fail "GET /io_modules shows no module"
grep -q '"name":"demo"' "$scratch/io_modules.json" || fail "GET /io_modules shows no instance demo"
# What the unit's ExecReload sends: the project is re-read and applied,
# the unchanged instance kept, and wsio goes on serving.
kill -HUP "$host"
wait_line "$scratch/run.log" 'reloaded /etc/wsio/project.toml: no instance changed' "$host"
curl --silent --show-error --fail --max-time 10 "$api" >/dev/null || fail "no answer after SIGHUP"
kill -TERM "$host"
wait "$host" || fail "wsio did not exit 0 on SIGTERM: $(cat "$scratch/run.log")"

if [ -d /run/systemd/system ]; then
  step "systemd: start, reload, stop"
  $SUDO systemctl start wsio
  systemctl is-active wsio
  $SUDO systemctl reload wsio
  systemctl is-active wsio
  $SUDO systemctl stop wsio
else
  step "systemd is not PID 1 here: the service itself was not started"
fi

step "the C example host, built against the installed header with pkg-config"
pkg-config --exists --print-errors wsio
cc -Wall -Wextra -Werror -std=c11 -pthread crates/host/tests/c/echo_host.c \
  $(pkg-config --cflags --libs wsio) -ldl -o "$scratch/echo_host"
# echo_host dlopen()s the module; a host may link it instead (-lwsio):
# that takes the dev symlink, records the SONAME and loads through ldconfig.
cat >"$scratch/linked.c" <<'C'
#include <stdio.h>
#include <iom.h>
int main(void) {
    printf("linked module: ABI version %u\n", iom_abi_version());
    return iom_abi_version() == IOM_ABI_VERSION ? 0 : 1;
}
C
cc -Wall -Wextra -Werror -std=c11 "$scratch/linked.c" $(pkg-config --cflags --libs wsio) \
  -o "$scratch/linked"
readelf -d "$scratch/linked" | grep -q 'NEEDED.*\[libwsio.so.1\]' \
  || fail "a host linked with -lwsio does not need libwsio.so.1"
"$scratch/linked"
/usr/bin/wsio demo-server --listen 127.0.0.1:0 >"$scratch/demo.log" 2>&1 &
demo=$!
pids+=("$demo")
port=$(wait_line "$scratch/demo.log" '^demo server: ws://127\.0\.0\.1:[0-9]+/' "$demo" \
  | sed -E 's#^demo server: ws://127\.0\.0\.1:([0-9]+)/.*#\1#')
timeout 30 "$scratch/echo_host" "$(pkg-config --variable=module wsio)" "$port" \
  | tee "$scratch/echo_host.log"
grep -qx done "$scratch/echo_host.log" || fail "echo_host did not finish its ping-pong"
kill -TERM "$demo"
wait "$demo" || true

step "purge (dpkg --purge)"
$SUDO dpkg --purge wsio
if dpkg -s wsio >/dev/null 2>&1; then fail "wsio is still known to dpkg"; fi
sed -E 's#^.* \./#/#; s# -> .*##' "$scratch/contents" | while read -r path; do
  if [ -f "$path" ] || [ -L "$path" ]; then fail "purge left $path"; fi
done
for path in /etc/wsio /var/lib/wsio /etc/systemd/system/multi-user.target.wants/wsio.service \
  /var/lib/systemd/deb-systemd-helper-enabled/wsio.service.dsh-also; do
  if [ -e "$path" ]; then fail "purge left $path"; fi
done
getent passwd wsio >/dev/null && echo "kept by design: the system user wsio (docs/packaging.md)"
left=$(find /etc /var /usr /run /tmp -xdev -user wsio 2>/dev/null || true)
[ -z "$left" ] || fail "files of the user wsio left after purge: $left"

echo "-- package check passed: $deb"
