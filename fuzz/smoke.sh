#!/usr/bin/env bash
# Short fuzzing smoke run for CI: every target for FUZZ_SECONDS (default 30)
# seconds, starting from the committed seed corpus but writing new inputs to
# a temporary directory, so the committed corpus stays small. Fails if any
# target crashes (the crashing input is left in fuzz/artifacts/<target>/).
#
#   FUZZ_SECONDS=30 bash fuzz/smoke.sh [target ...]
set -euo pipefail

cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

# cargo-fuzz needs nightly flags (-Zsanitizer); use a nightly toolchain if
# rustup has one, else let stable accept them.
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
    cargo=(cargo +nightly)
else
    echo "smoke: no nightly toolchain; using RUSTC_BOOTSTRAP=1 on $(rustc --version)" >&2
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi

target_dir="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ctrmon-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${cargo[@]}" fuzz build --target-dir "$target_dir"

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    echo "smoke: fuzzing $t for ${seconds}s" >&2
    log="$work/$t.log"
    if "${cargo[@]}" fuzz run --target-dir "$target_dir" "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
        cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)"
        summary+=("$t: ${execs:-?} execs, ${cov:-cov: ?}")
    else
        tail -n 40 "$log" >&2
        failed+=("$t")
        summary+=("$t: FAILED")
    fi
done

printf 'smoke: %s\n' "${summary[@]}" >&2
if [ "${#failed[@]}" -gt 0 ]; then
    echo "smoke: crashes or errors in: ${failed[*]}" >&2
    exit 1
fi
