#!/usr/bin/env bash
# Forwarding throughput (issue 4, "Speed"): the same load against collector A alone and against
# A forwarding to a healthy collector B, interleaved in one run.
#
# Modes (each run starts fresh collectors in temp directories):
#   alone    A with the durable store, no forwarding
#   forward  A with the durable store + --forward to B (gRPC, gzip unless FORWARD_COMPRESSION),
#            B with the durable store
#   agent    A with --storage none + --forward to B
#
# Reported per run: spans/s acknowledged by A (load generator), A's CPU cores, spans per A
# CPU-second, A's peak RSS; B's CPU cores over the run; A's queue depth when the load stops
# and how long it then takes B to have everything (the forwarder keeping up means a small,
# bounded backlog).
#
# Environment: ROUNDS=2 DURATION=15 WARMUP=2 PROTOCOL=grpc BATCH=512 CONNECTIONS=4
#              MODES="alone forward agent" BASE_PORT=44170 NO_BUILD=1 (skip cargo build)
#              FORWARD_COMPRESSION=gzip (or none: A → B on loopback gains nothing from gzip)
# Needs: cargo, curl, jq. Only loopback addresses are used.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
PROTOCOL=${PROTOCOL:-grpc}
BATCH=${BATCH:-512}
CONNECTIONS=${CONNECTIONS:-4}
MODES=${MODES:-alone forward agent}
FORWARD_COMPRESSION=${FORWARD_COMPRESSION:-gzip}
BASE_PORT=${BASE_PORT:-44170}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
collector=$target_dir/release/tracelight-collector
loadgen=$target_dir/release/tracelight-loadgen
if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$root" && cargo build --release -p tracelight-collector -p tracelight-loadgen)
fi

work=$(mktemp -d -t tracelight-forward.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

a_grpc=127.0.0.1:$BASE_PORT a_http=127.0.0.1:$((BASE_PORT + 1)) a_admin=127.0.0.1:$((BASE_PORT + 3))
b_grpc=127.0.0.1:$((BASE_PORT + 10)) b_admin=127.0.0.1:$((BASE_PORT + 13))

start() { # name admin args...
    local name=$1 admin=$2
    shift 2
    "$collector" "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://$admin/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "forward.sh: $name did not start" >&2
    tail "$work/$name.log" >&2
    exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { # admin series
    curl -fsS "http://$1/metrics" | awk -v s="$2" 'index($0, s " ") == 1 {print $2}'
}

label=$(echo "$b_grpc" | tr '.:' '__')
printf 'mode\tround\tspans/s\tA cores\tspans/A-CPU-s\tA RSS MiB\tB cores\tqueued at end\tdrain s\n' >"$work/table"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        rm -rf "$work/a" "$work/b"
        pids=()
        b_pid=
        if [[ $mode != alone ]]; then
            start b "$b_admin" --data-dir "$work/b" --otlp-grpc-listen "$b_grpc" \
                --otlp-http-listen 127.0.0.1:$((BASE_PORT + 11)) \
                --query-listen 127.0.0.1:$((BASE_PORT + 12)) --admin-listen "$b_admin"
            b_pid=${pids[-1]}
        fi
        a_args=(--data-dir "$work/a" --otlp-grpc-listen "$a_grpc" --otlp-http-listen "$a_http"
            --query-listen 127.0.0.1:$((BASE_PORT + 2)) --admin-listen "$a_admin")
        case $mode in
            forward) a_args+=(--forward "http://$b_grpc" --forward-compression "$FORWARD_COMPRESSION") ;;
            agent) a_args+=(--storage none --forward "http://$b_grpc" --forward-compression "$FORWARD_COMPRESSION") ;;
        esac
        start a "$a_admin" "${a_args[@]}"
        a_pid=${pids[-1]}
        addr=$a_grpc
        [[ $PROTOCOL == http ]] && addr=$a_http
        b_before=0
        [[ -n $b_pid ]] && b_before=$(cpu_ticks "$b_pid")
        echo "== $mode round $round" >&2
        "$loadgen" --protocol "$PROTOCOL" --addr "$addr" --batch "$BATCH" \
            --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
            --pid "$a_pid" --json >"$work/run.json"
        queued=- drain=- b_cores=-
        if [[ -n $b_pid ]]; then
            b_after=$(cpu_ticks "$b_pid")
            b_cores=$(echo "($b_after - $b_before) / $(getconf CLK_TCK) / ($DURATION + $WARMUP)" | bc -l)
            queued=$(metric "$a_admin" "tracelight_collector_forward_queue_spans{upstream=\"$label\"}")
            t0=$(date +%s.%N)
            while [[ $(metric "$a_admin" "tracelight_collector_forward_queue_spans{upstream=\"$label\"}") != 0 ]]; do
                sleep 0.05
            done
            drain=$(echo "$(date +%s.%N) - $t0" | bc -l)
        fi
        jq -r --arg mode "$mode" --arg round "$round" --arg b "$b_cores" --arg q "$queued" --arg d "$drain" '
            [ $mode, $round, (.accepted_spans_per_sec | floor),
              (.collector.cpu_cores * 100 | floor / 100),
              (.collector.spans_per_cpu_second | floor),
              (.collector.hwm_kib / 1024 | floor),
              (if $b == "-" then "-" else ($b | tonumber * 100 | floor / 100) end),
              $q,
              (if $d == "-" then "-" else ($d | tonumber * 100 | floor / 100) end)
            ] | @tsv' "$work/run.json" >>"$work/table"
        for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" || true; done
        pids=()
    done
done
column -t -s $'\t' "$work/table"
