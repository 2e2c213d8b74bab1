#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each; first
# argument overrides) starting from the committed seeds in fuzz/corpus/<target>/.
# New inputs go to fuzz/target/corpus/<target>/ (not committed); a crash
# fails the script and leaves its input in fuzz/artifacts/<target>/.
#
# Stable Rust: RUSTC_BOOTSTRAP=1 lets it accept the -Z flags cargo-fuzz
# passes (sanitizer, coverage). cargo-fuzz itself: cargo install cargo-fuzz --locked
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
export RUSTC_BOOTSTRAP=1
targets=(properties_json project_file trigger_properties trigger_test action_properties)
cargo fuzz build
for target in "${targets[@]}"; do
  mkdir -p "target/corpus/$target"
  echo "== fuzz $target for ${seconds}s"
  log="target/fuzz-$target.log"
  if ! cargo fuzz run "$target" "target/corpus/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target FAILED: see $log and fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
done
echo "fuzz: every target ran ${seconds}s without a crash"
