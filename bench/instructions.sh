#!/usr/bin/env bash
# Instructions per request of each variant of the `middleware` bench, counted by callgrind on the
# bench thread only: unlike CPU time, these counts do not move with the load of this shared
# machine, so they show small changes (±0.1 µs) that criterion's noise hides. An instruction is
# not a nanosecond (cache misses, atomics and malloc contention cost more than their count), so
# report both.
#
# Default (METHOD=request): one run per variant with N requests after 500 of warm-up, counting
# only inside `tower::util::oneshot::Oneshot::poll` (callgrind --toggle-collect), i.e. one request
# through the router, handler included, request construction and span flushes excluded; the
# total is divided by N + 500. Repeats agree within about ±30 instructions.
# METHOD=diff: the whole bench thread, run with N1 and N2 requests, (Ir(N2) - Ir(N1)) / (N2 - N1);
# it also counts what happens between requests and varies by up to ±900 instructions.
#
# The callgrind files are kept in OUT (default: a temporary directory, removed) for
# `callgrind_annotate --inclusive=yes OUT/cg.<variant>-01`.
#
# Usage: bench/instructions.sh [bench binary]   (default: builds and finds it); METHOD, N, N1, N2,
# VARIANTS, OUT overridable. Each `*_log` variant is compared with `bare_log`, the others with
# `bare`. Needs valgrind.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
METHOD=${METHOD:-request}
N=${N:-3000}
N1=${N1:-500}
N2=${N2:-2500}
WARM_UP=500
BIN=${1:-}
if [ -z "$BIN" ]; then
    BIN=$(cd "$ROOT" && cargo bench -p tracelight --bench middleware --no-run --message-format=json 2>/dev/null \
        | jq -r 'select(.executable != null and .target.name == "middleware") | .executable' | tail -1)
fi
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is required" >&2; exit 1; }
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d)
    trap 'rm -rf "$OUT"' EXIT
fi
count() { # variant n [toggle] -> Ir of the main (bench) thread
    local toggle=()
    [ -n "${3:-}" ] && toggle=("--toggle-collect=$3")
    TRACELIGHT_BENCH_REQUESTS="$1:$2" valgrind --tool=callgrind --separate-threads=yes "${toggle[@]}" \
        --callgrind-out-file="$OUT/cg.$1.$2" "$BIN" >/dev/null 2>&1
    awk '/^summary:|^totals:/ { print $2; exit }' "$OUT/cg.$1.$2-01"
}
VARIANTS=${VARIANTS:-bare identity_layer metrics_only unsampled sampled upstream_unsampled upstream bare_log metrics_only_log unsampled_log sampled_log}
echo "| variant | instructions/request | Δ vs baseline |"
echo "|---|---:|---:|"
declare -A seen
for v in $VARIANTS; do
    if [ "$METHOD" = diff ]; then
        a=$(count "$v" "$N1")
        b=$(count "$v" "$N2")
        per=$(( (b - a) / (N2 - N1) ))
    else
        total=$(count "$v" "$N" '<tower::util::oneshot::Oneshot*>::poll')
        per=$(( total / (N + WARM_UP) ))
    fi
    seen[$v]=$per
    case "$v" in *_log) base=bare_log ;; *) base=bare ;; esac
    if [ -n "${seen[$base]:-}" ]; then
        printf '| %s | %d | %+d (%s) |\n' "$v" "$per" "$(( per - seen[$base] ))" "$base"
    else
        printf '| %s | %d | |\n' "$v" "$per"
    fi
done
