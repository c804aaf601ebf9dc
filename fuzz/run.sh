#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `bash fuzz/run.sh [seconds-per-target]`
# (default 20); `bash fuzz/run.sh build` only builds them (CI builds them while other work
# runs). Installs cargo-fuzz if it is missing, builds all targets once (AddressSanitizer,
# libFuzzer), then runs each on a temporary copy of its seed corpus (fuzz/corpus/<target>/, so
# the repository stays clean) and fails if any target finds a crash, a panic (a broken
# invariant), a hang or a memory blow-up. Inputs that fail are kept in fuzz/artifacts/<target>/;
# replay one with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` from fuzz/.
set -euo pipefail
seconds="${1:-20}"
cd "$(dirname "$0")"

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sanitizer coverage); the stable
# toolchain accepts them under RUSTC_BOOTSTRAP. Only this script's cargo sees the variable.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# The targets are built against the versions the main workspace tested: its lock file, plus
# what fuzzing alone needs (libfuzzer-sys), which cargo adds.
cp ../Cargo.lock Cargo.lock

targets=(api_key_format jwt_verify basic_auth form_body redirect_uri page_token scopes rfc3339)
started=$SECONDS
cargo fuzz build
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - started)) s"
[ "$seconds" = build ] && exit 0

triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="${CARGO_TARGET_DIR:-target}/$triple/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=()
for target in "${targets[@]}"; do
  cp -r "corpus/$target" "$work/$target"
  mkdir -p "artifacts/$target"
  # jwt_verify: room for tokens past the verifier's 8 KiB limit.
  max_len=4096
  [ "$target" = jwt_verify ] && max_len=9000
  if "$bin_dir/$target" "$work/$target" \
      -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len="$max_len" \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$work/$target.log" 2>&1; then
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")"
    echo "fuzz: $target ok (${runs:-?} inputs in ${seconds} s)"
    passed=$((passed + 1))
  else
    echo "fuzz: $target FAILED; the end of its log:"
    tail -n 40 "$work/$target.log"
    failed+=("$target")
  fi
done

echo "fuzz: $passed passed, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
