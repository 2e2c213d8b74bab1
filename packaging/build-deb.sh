#!/usr/bin/env bash
# Builds the Debian package "wsio" (see docs/packaging.md) and prints the
# path of the .deb as the last line of stdout.
#
#   bash packaging/build-deb.sh            # target/debian/wsio_<version>-1_<arch>.deb
#
# 1. a release build of the host and of the module's cdylib (its SONAME,
#    libwsio.so.<ABI major>, comes from crates/wsio/build.rs; checked here);
# 2. wsio.pc from packaging/wsio.pc.in;
# 3. `cargo deb --no-build` with the metadata in crates/host/Cargo.toml
#    (cargo-deb is installed with `cargo install cargo-deb --locked` if
#    missing);
# 4. the shlibs and md5sums control files added, which cargo-deb does not
#    make (lintian's no-shlibs is an error for a package shipping a
#    library; md5sums let `dpkg --verify` check the installed files).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0

fail() {
  echo "build-deb.sh: $*" >&2
  exit 1
}

# Where Debian puts this machine's libraries; Cargo.toml names one.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
grep -q "\"usr/lib/$multiarch/" crates/host/Cargo.toml \
  || fail "crates/host/Cargo.toml installs libwsio.so elsewhere than usr/lib/$multiarch; adjust its [package.metadata.deb] assets for this architecture"
abi_major=$(sed -n 's/^const ABI_MAJOR: u32 = \([0-9]*\);$/\1/p' crates/wsio/build.rs)
[ -n "$abi_major" ] || fail "cannot read ABI_MAJOR from crates/wsio/build.rs"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
target_dir=${CARGO_TARGET_DIR:-target}

if ! command -v cargo-deb >/dev/null; then
  cargo install cargo-deb --locked
fi

echo "== release build: wsio (host) and libwsio.so (module)" >&2
cargo build --release --locked -p wsio-host -p wsio >&2
soname=$(readelf -d "$target_dir/release/libwsio.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libwsio.so.$abi_major" ] \
  || fail "libwsio.so has SONAME '$soname', expected libwsio.so.$abi_major"

# cargo-deb strips only the binaries of the package it builds; the module's
# library is stripped here as dh_strip does it, into the file Cargo.toml
# names (lintian: unstripped-binary-or-object).
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
  -o "$target_dir/release/libwsio.so.$abi_major" "$target_dir/release/libwsio.so"

sed -e "s/@MULTIARCH@/$multiarch/" -e "s/@ABI_MAJOR@/$abi_major/" -e "s/@VERSION@/$version/" \
  packaging/wsio.pc.in >"$target_dir/release/wsio.pc"

echo "== cargo deb" >&2
# --strip: the release profile keeps line tables (debug = 1) for backtraces
# in development; an installed binary goes without (lintian:
# unstripped-binary-or-object).
deb=$(cargo deb -p wsio-host --no-build --locked --strip --output "$target_dir/debian/" | tail -n 1)
[ -f "$deb" ] || fail "cargo deb printed no package path (got '$deb')"

echo "== adding DEBIAN/shlibs and DEBIAN/md5sums" >&2
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
dpkg-deb --raw-extract "$deb" "$unpacked/pkg"
sed "s/@ABI_MAJOR@/$abi_major/; s/@VERSION@/$version/" packaging/debian/shlibs \
  >"$unpacked/pkg/DEBIAN/shlibs"
(cd "$unpacked/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
  | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$unpacked/pkg/DEBIAN/shlibs" "$unpacked/pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$unpacked/pkg" "$deb" >&2

echo "$deb"
