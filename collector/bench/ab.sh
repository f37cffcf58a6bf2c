#!/usr/bin/env bash
# Paired A/B comparison of two collector binaries (issue 3, "Speed"): spans per collector
# CPU-second under the same load, in many short runs that alternate the two binaries, so that
# the machine's drift (±20 % within minutes on the project's 2-core VM) hits both alike.
#
#   collector/bench/ab.sh OLD_BINARY NEW_BINARY
#
# For each configuration (protocol × batch × connections), PAIRS pairs of runs; within a pair
# the order alternates (old first, then new first). Each run starts a fresh collector on
# loopback with its own temporary data directory (the durable store), drives it with
# tracelight-loadgen for DURATION seconds after WARMUP, and reads the collector's CPU time from
# /proc (loadgen --pid). Prints every pair (old, new, new ÷ old), then per configuration the
# ranges, the median of the per-pair ratios and how many pairs the new binary was ahead; and,
# so that a change that trades latency for CPU shows, the medians of the per-pair ratios of
# the accepted spans per second and of the p99 latency.
#
# Environment (all optional):
#   PAIRS=8  DURATION=4  WARMUP=1
#   CONFIGS="grpc:100:2 grpc:100:4 grpc:512:4 http:100:2"   protocol:batch:connections
#   BASE_PORT=43270      grpc, http, query, admin listen on BASE_PORT+0..3 (127.0.0.1)
#   LOADGEN=path         default: target/release/tracelight-loadgen (built if missing)
#   EXTRA_ARGS=          more collector arguments for both binaries
#
# Needs: curl, jq, and coreutils/awk. Only loopback addresses are used.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 OLD_BINARY NEW_BINARY" >&2
    exit 2
fi
old=$1
new=$2
PAIRS=${PAIRS:-8}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
CONFIGS=${CONFIGS:-grpc:100:2 grpc:100:4 grpc:512:4 http:100:2}
BASE_PORT=${BASE_PORT:-43270}
EXTRA_ARGS=${EXTRA_ARGS:-}

for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "ab.sh: $tool is required" >&2; exit 1; }
done
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
loadgen=${LOADGEN:-${CARGO_TARGET_DIR:-$root/target}/release/tracelight-loadgen}
if [[ ! -x $loadgen ]]; then
    (cd "$root" && cargo build --release -p tracelight-loadgen)
fi
for b in "$old" "$new"; do
    [[ -x $b ]] || { echo "ab.sh: $b is not an executable" >&2; exit 1; }
done

work=$(mktemp -d -t tracelight-ab.XXXXXX)
collector_pid=
cleanup() {
    if [[ -n $collector_pid ]]; then
        kill "$collector_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

grpc_addr=127.0.0.1:$BASE_PORT
http_addr=127.0.0.1:$((BASE_PORT + 1))
admin_addr=127.0.0.1:$((BASE_PORT + 3))

# One run: prints spans per collector CPU-second, accepted spans per second, p99 latency (ms).
run() {
    local binary=$1 protocol=$2 batch=$3 conns=$4
    local data=$work/data
    rm -rf "$data"
    # shellcheck disable=SC2086 # EXTRA_ARGS is a list of arguments
    "$binary" --data-dir "$data" \
        --otlp-grpc-listen "$grpc_addr" --otlp-http-listen "$http_addr" \
        --query-listen "127.0.0.1:$((BASE_PORT + 2))" --admin-listen "$admin_addr" \
        $EXTRA_ARGS >"$work/collector.log" 2>&1 &
    collector_pid=$!
    local addr=$grpc_addr
    [[ $protocol == http ]] && addr=$http_addr
    local ready=0
    for _ in $(seq 100); do
        if curl -fsS "http://$admin_addr/ready" >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if ((!ready)); then
        echo "ab.sh: $binary did not become ready; log:" >&2
        cat "$work/collector.log" >&2
        exit 1
    fi
    "$loadgen" --protocol "$protocol" --addr "$addr" --batch "$batch" \
        --connections "$conns" --duration "$DURATION" --warmup "$WARMUP" \
        --pid "$collector_pid" --json |
        jq -r '"\(.collector.spans_per_cpu_second) \(.accepted_spans_per_sec) \(.latency.p99_ms)"'
    kill -TERM "$collector_pid"
    wait "$collector_pid" 2>/dev/null || true
    collector_pid=
}

summary=()
for config in $CONFIGS; do
    IFS=: read -r protocol batch conns <<<"$config"
    echo "== $protocol $batch spans × $conns connections: spans/CPU-s old new ratio, spans/s old new ratio, p99 ms old new ratio"
    : >"$work/pairs"
    for i in $(seq "$PAIRS"); do
        if ((i % 2)); then
            a=$(run "$old" "$protocol" "$batch" "$conns")
            b=$(run "$new" "$protocol" "$batch" "$conns")
        else
            b=$(run "$new" "$protocol" "$batch" "$conns")
            a=$(run "$old" "$protocol" "$batch" "$conns")
        fi
        # Columns: CPU old new ratio, spans/s old new ratio, p99 old new ratio.
        echo "$a $b" | awk '{
            printf "%.0f %.0f %.3f %.0f %.0f %.3f %.2f %.2f %.3f\n",
                $1, $4, $4 / $1, $2, $5, $5 / $2, $3, $6, ($3 > 0 ? $6 / $3 : 1)
        }' | tee -a "$work/pairs"
    done
    # Each column sorted on its own (sort(1): mawk has no asort): ranges and the median ratios.
    col() { cut -d' ' -f"$1" "$work/pairs" | sort -g; }
    line=$(paste -d' ' <(col 1) <(col 2) <(col 3) <(col 6) <(col 9) | awk -v c="$protocol $batch×$conns" '
        function median(a) { return (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }
        { o[NR] = $1; n[NR] = $2; r[NR] = $3; t[NR] = $4; p[NR] = $5 }
        END {
            printf "%-14s old %.0f–%.0f k  new %.0f–%.0f k  median new÷old %.3f (spans/s %.3f, p99 %.3f)",
                c, o[1] / 1000, o[NR] / 1000, n[1] / 1000, n[NR] / 1000, median(r), median(t), median(p)
        }')
    summary+=("$line  new ahead $(awk '$3 > 1' "$work/pairs" | wc -l) of $PAIRS")
done
echo
echo "spans per collector CPU-second (old: $old, new: $new); in brackets the median ratios of"
echo "accepted spans per second and of p99 latency"
printf '%s\n' "${summary[@]}"
