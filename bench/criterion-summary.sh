#!/usr/bin/env bash
# Prints the criterion results of `cargo bench -p tracelight --bench middleware` as a table with
# the delta of each variant to `bare` (to `bare_log` for the `*_log` variants): the estimate criterion prints (the slope of time over
# iterations, with its 95 % confidence interval) and the median of the per-sample means. Needs jq.
#
# Usage: bench/criterion-summary.sh [criterion dir]   (default: target/criterion/middleware)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/criterion/middleware}
command -v jq >/dev/null || { echo "criterion-summary.sh: jq is required (apt-get install jq)" >&2; exit 1; }

# The printed estimate: the slope when criterion sampled linearly (the default), else the mean.
main() { # variant -> "point lower upper" in ns
    jq -r '(.slope // .mean) | "\(.point_estimate) \(.confidence_interval.lower_bound) \(.confidence_interval.upper_bound)"' \
        "$DIR/$1/new/estimates.json"
}
median() { # variant -> ns
    jq -r '.median.point_estimate' "$DIR/$1/new/estimates.json"
}

echo "| variant | µs/request (95 % CI) | Δ vs baseline µs | median µs | Δ median vs baseline µs |"
echo "|---|---:|---:|---:|---:|"
for v in bare identity_layer sampled unsampled metrics_only upstream_unsampled upstream bare_log sampled_log unsampled_log metrics_only_log; do
    [ -f "$DIR/$v/new/estimates.json" ] || continue
    case "$v" in *_log) base=bare_log ;; *) base=bare ;; esac
    [ -f "$DIR/$base/new/estimates.json" ] || continue
    read -r bare_point _ _ <<<"$(main "$base")"
    bare_median=$(median "$base")
    read -r point lo hi <<<"$(main "$v")"
    awk -v v="$v" -v p="$point" -v lo="$lo" -v hi="$hi" -v bp="$bare_point" \
        -v md="$(median "$v")" -v bmd="$bare_median" \
        'BEGIN { printf "| %s | %.2f (%.2f–%.2f) | %+.2f | %.2f | %+.2f |\n", v, p / 1000, lo / 1000, hi / 1000, (p - bp) / 1000, md / 1000, (md - bmd) / 1000 }'
done
