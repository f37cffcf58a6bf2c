#!/usr/bin/env bash
# Instructions per request of each variant of the `middleware` bench, counted by callgrind on the
# bench thread only: unlike CPU time, these counts do not move with the load of this shared
# machine, so they show small changes (±0.1 µs) that criterion's noise hides. An instruction is
# not a nanosecond (cache misses, atomics and malloc contention cost more than their count), so
# report both.
#
# Each variant runs twice, with N1 and N2 requests (after the same warm-up); the difference over
# N2 - N1 cancels the setup. Needs valgrind.
#
# Usage: bench/instructions.sh [bench binary]   (default: builds and finds it); N1, N2, VARIANTS
# overridable. Each `*_log` variant is compared with `bare_log`, the others with `bare`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N1=${N1:-500}
N2=${N2:-2500}
BIN=${1:-}
if [ -z "$BIN" ]; then
    BIN=$(cd "$ROOT" && cargo bench -p tracelight --bench middleware --no-run --message-format=json 2>/dev/null \
        | jq -r 'select(.executable != null and .target.name == "middleware") | .executable' | tail -1)
fi
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is required" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
count() { # variant n -> Ir of the main (bench) thread
    TRACELIGHT_BENCH_REQUESTS="$1:$2" valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$TMP/cg.$1.$2" "$BIN" >/dev/null 2>&1
    awk '/^summary:|^totals:/ { print $2; exit }' "$TMP/cg.$1.$2-01"
}
VARIANTS=${VARIANTS:-bare identity_layer metrics_only unsampled sampled bare_log metrics_only_log unsampled_log sampled_log}
echo "| variant | instructions/request | Δ vs baseline |"
echo "|---|---:|---:|"
declare -A seen
for v in $VARIANTS; do
    a=$(count "$v" "$N1")
    b=$(count "$v" "$N2")
    per=$(( (b - a) / (N2 - N1) ))
    seen[$v]=$per
    case "$v" in *_log) base=bare_log ;; *) base=bare ;; esac
    if [ -n "${seen[$base]:-}" ]; then
        printf '| %s | %d | %+d (%s) |\n' "$v" "$per" "$(( per - seen[$base] ))" "$base"
    else
        printf '| %s | %d | |\n' "$v" "$per"
    fi
done
