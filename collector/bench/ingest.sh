#!/usr/bin/env bash
# Ingest benchmark of tracelight-collector (issue 3, "Speed").
#
# Builds the release collector and tracelight-loadgen, then, for each storage
# configuration × protocol × batch size × connection count, starts a fresh collector on
# loopback (own temp data directory), drives it with the load generator for DURATION seconds
# and stops it. Prints one table: accepted spans/s, spans per collector CPU-second, the ratio
# of that to the decode-only rate (target ≥ 0.5), latency p50/p99, and peak RSS (VmHWM of the
# fresh process, target ≤ 128 MiB with the durable store).
#
# The decode-only upper bound is prost alone, one thread (`tracelight-loadgen
# --decode-baseline`), decoding the run's own payload (same batch size), measured right before
# and right after each load run; the run is compared with the mean of the two.
#
# Storage configurations: "default" (the collector's default engine, i.e. the durable store once
# it is wired, with --data-dir in a temp dir) and "memory" (--storage memory). While the default
# engine is still the memory store, only "memory" runs, and the script says so.
#
# Environment (all optional):
#   DURATION=15          measured seconds per run (plus WARMUP)
#   ROUNDS=1             times the whole matrix runs (interleaved: round 1 of every
#                        configuration, then round 2, ...); with more than one, a summary gives
#                        each configuration's ratios, their median (of the middle two for an even count) and how many reach 0.5
#   WARMUP=1             seconds of load before measuring
#   PROTOCOLS="grpc http"
#   BATCHES="100 512"    spans per request
#   CONNECTIONS="2 4"
#   INFLIGHT=1           requests in flight per connection
#   STORAGES="default memory"   append +noderived (e.g. memory+noderived) to run a configuration
#                                with span metrics and the service graph off
#   MEMORY_MAX_SPANS=    --memory-max-spans for the memory store (collector default if unset)
#   DECODE_SECONDS=3     length of the decode-only measurement
#   LOADGEN_THREADS=1    runtime threads of the load generator
#   BASE_PORT=43170      grpc, http, query, admin listen on BASE_PORT+0..3 (127.0.0.1)
#   OUT=                 directory for the JSON results (default: a temp dir, printed)
#   NO_BUILD=1           skip cargo build (use the existing release binaries)
#   COLLECTOR=path       run this collector binary instead of the release build (A/B runs)
#
# Needs: cargo, curl, jq. Only loopback addresses are used.
set -euo pipefail

DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-1}
PROTOCOLS=${PROTOCOLS:-grpc http}
BATCHES=${BATCHES:-100 512}
CONNECTIONS=${CONNECTIONS:-2 4}
INFLIGHT=${INFLIGHT:-1}
STORAGES=${STORAGES:-default memory}
MEMORY_MAX_SPANS=${MEMORY_MAX_SPANS:-}
DECODE_SECONDS=${DECODE_SECONDS:-3}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BASE_PORT=${BASE_PORT:-43170}
NO_BUILD=${NO_BUILD:-0}

for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "ingest.sh: $tool is required" >&2; exit 1; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
collector=${COLLECTOR:-$target_dir/release/tracelight-collector}
loadgen=$target_dir/release/tracelight-loadgen

work=$(mktemp -d -t tracelight-ingest.XXXXXX)
OUT=${OUT:-$work/results}
mkdir -p "$OUT"
results=$OUT/runs.jsonl
: >"$results"

collector_pid=
cleanup() {
    if [[ -n $collector_pid ]] && kill -0 "$collector_pid" 2>/dev/null; then
        kill -TERM "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
    fi
    rm -rf "$work/data"
}
trap cleanup EXIT

if [[ $NO_BUILD != 1 ]]; then
    echo "== building release binaries" >&2
    (cd "$root" && cargo build --release -p tracelight-collector -p tracelight-loadgen)
fi

grpc_addr=127.0.0.1:$BASE_PORT
http_addr=127.0.0.1:$((BASE_PORT + 1))
query_addr=127.0.0.1:$((BASE_PORT + 2))
admin_addr=127.0.0.1:$((BASE_PORT + 3))

# Arguments selecting a storage configuration.
storage_args() {
    # A "+noderived" suffix turns span metrics and the service graph off (issue 4's
    # "with and without them, in the same run").
    local config=${1%+noderived}
    [[ $1 == *+noderived ]] && echo "--spanmetrics false --servicegraph false"
    case $config in
        default) echo "--data-dir $work/data" ;;
        memory)
            echo "--storage memory --data-dir $work/data${MEMORY_MAX_SPANS:+ --memory-max-spans $MEMORY_MAX_SPANS}"
            ;;
        *) echo "--storage $config --data-dir $work/data" ;;
    esac
}
default_backend=$("$collector" --check-config --data-dir "$work/data" |
    sed -n 's/^backend = "\(.*\)"$/\1/p')
storages=()
for s in $STORAGES; do
    if [[ $s == default && $default_backend == memory ]]; then
        echo "NOTE: the collector's default storage is still \"memory\" (durable store not wired" \
            "into this build): running --storage memory only." >&2
        [[ " $STORAGES " == *" memory "* ]] || storages+=(memory)
        continue
    fi
    storages+=("$s")
done

start_collector() {
    rm -rf "$work/data"
    mkdir -p "$work/data"
    # shellcheck disable=SC2046 # storage_args is a list of words
    "$collector" $(storage_args "$1") \
        --otlp-grpc-listen "$grpc_addr" --otlp-http-listen "$http_addr" \
        --query-listen "$query_addr" --admin-listen "$admin_addr" \
        >"$OUT/collector-$1.log" 2>&1 &
    collector_pid=$!
    for _ in $(seq 100); do
        if curl -fsS "http://$admin_addr/ready" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$collector_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "ingest.sh: the collector did not become ready; log:" >&2
    tail -20 "$OUT/collector-$1.log" >&2
    exit 1
}

stop_collector() {
    kill -TERM "$collector_pid"
    wait "$collector_pid" || echo "ingest.sh: collector exited with $? on SIGTERM" >&2
    collector_pid=
}

# The upper bound decodes the same payload as the run (issue 3: "a bench that decodes the same
# payload with prost alone"): a 100-span request decodes at ~0.9 of a 512-span request's rate
# per span (its fixed costs are shared by fewer spans). The decode-only rate moves by ±20 % from
# one minute to the next, even on a quiet machine, so it is measured right before and right
# after each load run, and the run is compared with the mean of the two.
decode_baseline() {
    echo "== decode-only baseline $1 (prost, $2-span request, 1 thread, ${DECODE_SECONDS}s)" >&2
    "$loadgen" --decode-baseline --batch "$2" --duration "$DECODE_SECONDS" --json >"$OUT/decode-$1.json"
    jq -r '"   \(.spans_per_sec | floor) spans/s wall, \(.spans_per_cpu_second | floor) spans per CPU-second, \(.ns_per_span / 1000 * 100 | floor / 100) µs/span"' \
        "$OUT/decode-$1.json" >&2
}
measured=0

for round in $(seq "$ROUNDS"); do
    for storage in "${storages[@]}"; do
        for protocol in $PROTOCOLS; do
            addr=$grpc_addr
            [[ $protocol == http ]] && addr=$http_addr
            for batch in $BATCHES; do
                for conns in $CONNECTIONS; do
                    decode_baseline "$measured-before" "$batch"
                    echo "== round $round: $storage $protocol batch=$batch connections=$conns (${DURATION}s)" >&2
                    start_collector "$storage"
                    if ! "$loadgen" --protocol "$protocol" --addr "$addr" --batch "$batch" \
                        --connections "$conns" --inflight "$INFLIGHT" --duration "$DURATION" \
                        --warmup "$WARMUP" --threads "$LOADGEN_THREADS" --pid "$collector_pid" \
                        --json >"$work/run.json"; then
                        echo "ingest.sh: load run failed" >&2
                    fi
                    stop_collector
                    decode_baseline "$measured-after" "$batch"
                    decode=$(jq -s 'map(.spans_per_cpu_second) | add / length' \
                        "$OUT/decode-$measured-before.json" "$OUT/decode-$measured-after.json")
                    measured=$((measured + 1))
                    jq -c --arg storage "$storage" --argjson decode "$decode" --argjson round "$round" \
                        '. + {storage: $storage, round: $round, decode_spans_per_cpu_second: $decode}' \
                        "$work/run.json" >>"$results"
                done
            done
        done
    done
done

echo
for batch in $BATCHES; do
    echo "decode-only upper bound ($batch-span request, prost, 1 thread), spans per CPU-second:" \
        "$(jq -s --argjson batch "$batch" 'map(select(.batch == $batch) | .spans_per_cpu_second | floor)
            | "min \(min), max \(max) over \(length) measurements"' "$OUT"/decode-*.json | tr -d '"')"
done
echo "each run is compared with the mean of the measurements right before and right after it"
if [[ $default_backend == memory ]]; then
    echo "storage \"default\" is still the memory store in this build: ran --storage memory only"
fi
{
    printf 'storage\tproto\tbatch\tconns\tspans/s\tspans/CPU-s\tdecode/CPU-s\tx decode\tcores\tp50 ms\tp99 ms\tRSS peak MiB\trejected\terrors\n'
    jq -r '
        [ .storage, .protocol, .batch, .connections,
          (.accepted_spans_per_sec | floor),
          (.collector.spans_per_cpu_second // 0 | floor),
          (.decode_spans_per_cpu_second | floor),
          ((.collector.spans_per_cpu_second // 0) / .decode_spans_per_cpu_second * 100 | floor / 100),
          (.collector.cpu_cores * 100 | floor / 100),
          (.latency.p50_ms * 10 | floor / 10),
          (.latency.p99_ms * 10 | floor / 10),
          (.collector.hwm_kib / 1024 | floor),
          .rejected_spans,
          (if .errors == {} then "-" else (.errors | to_entries | map("\(.key)=\(.value)") | join(",")) end)
        ] | @tsv' "$results"
} | column -t -s $'\t'
if ((ROUNDS > 1)); then
    echo
    echo "x decode per configuration over $ROUNDS rounds (median; rounds at or above the 0.5 target):"
    jq -rs '
        group_by([.storage, .protocol, .batch, .connections])[]
        | (map((.collector.spans_per_cpu_second // 0) / .decode_spans_per_cpu_second) | sort) as $r
        | "\(.[0].storage) \(.[0].protocol) \(.[0].batch)×\(.[0].connections): "
          + ($r | map(. * 100 | floor / 100 | tostring) | join(" "))
          + "  median \(($r[($r | length - 1) / 2 | floor] + $r[$r | length / 2 | floor]) / 2 * 100 | floor / 100)"
          + "  ≥ 0.5 in \($r | map(select(. >= 0.5)) | length) of \($r | length)"' "$results"
fi
echo
echo "JSON results: $OUT (decode-N-before.json, decode-N-after.json, runs.jsonl)"
