#!/usr/bin/env bash
# User-space instructions per dispatched event on W1 (issue 6), counted with
# callgrind over two run lengths so that set-up cancels:
#
#   per event = (Ir(R2 rounds) - Ir(R1 rounds)) / ((R2 - R1) * K)
#
# Two counts per run: "dispatch" is only what runs inside `flush_round` (the
# zero-timeout waits and the delivery: lookup, eventfd read, add), collected
# with --toggle-collect; "whole" is the whole program, which also counts the
# bench's signalling writes and clock reads (the same for every variant).
#
# Usage: benches/callgrind.sh [N] [R1] [R2] [variants...]
#        benches/callgrind.sh w3 [R1] [R2] [variants...]
#
# The second form counts W3 instead: user-space instructions per churn
# (make an eventfd, watch it, unwatch it, close it), whole program, over R1
# and R2 churns (defaults 1000 and 11000).
set -euo pipefail
cd "$(dirname "$0")/.."
bin_path() {
  cargo bench --bench dispatch --no-run 2>&1 |
    sed -n 's/.*Executable benches\/dispatch\/main.rs (\(.*\))/\1/p'
}

if [ "${1:-}" = w3 ]; then
  R1=${2:-1000}
  R2=${3:-11000}
  shift $(( $# < 3 ? $# : 3 ))
  bin=$(bin_path)
  [ -x "$bin" ] || { echo "bench binary not found" >&2; exit 1; }
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  printf '%-12s %12s   (user-space instructions per churn, %d vs %d churns)\n' variant per_churn "$R1" "$R2"
  for v in ${*:-ctrmon raw raw_arc mio}; do
    for r in "$R1" "$R2"; do
      CTRMON_BENCH_ONLY_W3=$v CTRMON_BENCH_ROUNDS=$r \
        valgrind --tool=callgrind --callgrind-out-file="$out/cg.$v.$r" "$bin" >/dev/null 2>&1
    done
    a=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out/cg.$v.$R1")
    b=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out/cg.$v.$R2")
    per=$(echo "scale=1; ($b - $a) / ($R2 - $R1)" | bc -l)
    printf '%-12s %12s\n' "$v" "$per"
    echo "callgrind: W3 variant=$v user_ir_per_churn=$per"
  done
  exit 0
fi

N=${1:-4096}
R1=${2:-200}
R2=${3:-1200}
shift $(( $# < 3 ? $# : 3 ))
VARIANTS=${*:-ctrmon ctrmon_owned raw mio}
K=$(( N < 64 ? N : 64 ))

bin=$(bin_path)
[ -x "$bin" ] || { echo "bench binary not found" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total Ir of one run: $1 variant, $2 rounds, $3 extra valgrind options.
count() {
  local f="$out/cg.$1.$2.$RANDOM"
  CTRMON_BENCH_ONLY=$1 CTRMON_BENCH_ROUNDS=$2 CTRMON_BENCH_N=$N \
    valgrind --tool=callgrind --callgrind-out-file="$f" $3 "$bin" >/dev/null 2>&1
  sed -n 's/^summary: \([0-9]*\).*/\1/p' "$f"
}

printf '%-8s %12s %12s   (N=%d K=%d, rounds %d vs %d)\n' variant dispatch whole "$N" "$K" "$R1" "$R2"
for v in $VARIANTS; do
  d1=$(count "$v" "$R1" "--toggle-collect=*flush_round*")
  d2=$(count "$v" "$R2" "--toggle-collect=*flush_round*")
  w1=$(count "$v" "$R1" "")
  w2=$(count "$v" "$R2" "")
  ev=$(( (R2 - R1) * K ))
  printf '%-8s %12.1f %12.1f\n' "$v" \
    "$(echo "($d2 - $d1) / $ev" | bc -l)" "$(echo "($w2 - $w1) / $ev" | bc -l)"
  echo "callgrind: W1 N=$N variant=$v dispatch_ir_per_event=$(echo "scale=1; ($d2 - $d1) / $ev" | bc -l) whole_ir_per_event=$(echo "scale=1; ($w2 - $w1) / $ev" | bc -l)"
done
