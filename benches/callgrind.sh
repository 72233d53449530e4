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
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4096}
R1=${2:-200}
R2=${3:-1200}
shift $(( $# < 3 ? $# : 3 ))
VARIANTS=${*:-ctrmon ctrmon_owned raw mio}
K=$(( N < 64 ? N : 64 ))

bin=$(cargo bench --bench dispatch --no-run 2>&1 |
  sed -n 's/.*Executable benches\/dispatch\/main.rs (\(.*\))/\1/p')
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
