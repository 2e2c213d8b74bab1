#!/usr/bin/env bash
# The module's unit tests (the machine; `-p wsio --lib`) and the ABI tests
# (crates/host/tests/abi.rs and abi_stress.rs; `-p wsio-host`) under
# AddressSanitizer, on the stable toolchain (RUSTC_BOOTSTRAP=1 accepts
# -Zsanitizer). Our code, its dependencies and
# libwsio.so as dlopen()ed by the tests are instrumented; Rust's std is not
# (that needs -Zbuild-std and the rust-src component, absent here).
#
# --dynamic-list: the cdylib's __asan_* references are resolved from the
# test executable, which must export the ASan runtime for dlopen to work.
# Only the runtime: with --export-dynamic the executable (which may link the
# wsio rlib too) would also export its own iom_* functions, and the
# library's internal calls (iom_trigger_test -> iom_trigger_test_ex) would
# bind to the executable's copy, with its own, empty registries.
# LeakSanitizer is on; the one suppression is the tests' deliberate
# Box::leak of the loaded Library in crates/host/tests/support/iom.rs (kept
# loaded for the whole process).
set -euo pipefail
cd "$(dirname "$0")/.."
# A fixed place: RUSTFLAGS names it, and a path that changed every run
# would make cargo rebuild every dependency every time.
scratch=target/asan-support
mkdir -p "$scratch"
# Absolute: each test runs in its own package's directory (crates/host).
suppressions="$PWD/$scratch/lsan.supp"
printf 'leak:support::iom::api\n' >"$suppressions"
printf '{ __asan_*; __lsan_*; __sanitizer_*; };\n' >"$scratch/asan.dynamic-list"
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=address -Clink-arg=-Wl,--dynamic-list=$PWD/$scratch/asan.dynamic-list"
export ASAN_OPTIONS="detect_odr_violation=0:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$suppressions:print_suppressions=0"
cargo test --target x86_64-unknown-linux-gnu -p wsio --lib "$@"
cargo test --target x86_64-unknown-linux-gnu -p wsio-host --test abi --test abi_stress "$@"
