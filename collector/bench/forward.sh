#!/usr/bin/env bash
# Forwarding throughput (issue 4, "Speed"): the same load against collector A alone and against
# A forwarding to a healthy collector B, interleaved in one run.
#
# Modes (each run starts fresh collectors in temp directories):
#   alone    A with the durable store, no forwarding
#   forward  A with the durable store + --forward to B (gRPC, gzip unless FORWARD_COMPRESSION),
#            B with the durable store
#   agent    A with --storage none + --forward to B
#   backlog  A as in "forward", but B starts only when the load stops: A queues the whole run,
#            then the drain rate of that backlog is the sender's capacity (A → B with nothing
#            else running), to compare with the rate A ingests in "alone"
#
# Reported per run: spans/s acknowledged by A (load generator), A's CPU cores, spans per A
# CPU-second and µs of A CPU per span, A's peak RSS; B's CPU cores over the run. With an
# upstream, A's admin /metrics is sampled every SAMPLE seconds during the measured window
# (after the warm-up): the rate A accepted and the rate B acknowledged (A's
# forward_sent_spans_total) over the window, their ratio, A's largest queue depth and its
# growth per second over the window (≈ 0: the sender keeps up, the backlog is bounded), the
# spans A's sender had to retry; then A's queue depth when the load stops, how long it takes B
# to have everything, and that drain's rate (what A → B sustains once the load generator no
# longer competes with B for CPU).
#
# PIN=1 pins A to CPU 0 and B, the load generator and the sampler to CPU 1 (taskset), so
# "alone" and "forward" compare A's own work on the same single core; unpinned, all of them
# share both cores. PIN=2 gives B a CPU of its own (CPU 1) and puts A, the load generator and
# the sampler on CPU 0: A's surroundings are the same with and without an upstream, as with B
# on another host, so the ratio is what forwarding itself costs A.
#
# Environment: ROUNDS=2 DURATION=15 WARMUP=2 PROTOCOL=grpc BATCH=512 CONNECTIONS=4
#              MODES="alone forward agent" (or backlog) BASE_PORT=44170 NO_BUILD=1 (skip cargo build)
#              FORWARD_COMPRESSION=gzip (or zstd, or none: A → B on loopback gains nothing from it)
#              PIN=0|1|2 SAMPLE=0.5 COLLECTOR=path (another collector binary, e.g. a baseline)
#              DRAIN_TIMEOUT=300 (seconds a drain may take before the run fails)
#              B_ARGS= (more arguments for B, e.g. "--spanmetrics false --servicegraph false")
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
PIN=${PIN:-0}
SAMPLE=${SAMPLE:-0.5}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
collector=${COLLECTOR:-$target_dir/release/tracelight-collector}
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

# the CPU of a role (a, b, load: the load generator and sampler) for PIN, or nothing
on() {
    case "$PIN:$1" in
        1:a | 2:a | 2:load) echo "taskset -c 0" ;;
        1:b | 1:load | 2:b) echo "taskset -c 1" ;;
    esac
}

start() { # name cpu admin args...
    local name=$1 role=$2 admin=$3
    shift 3
    $(on "$role") "$collector" "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://$admin/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "forward.sh: $name did not start" >&2
    tail "$work/$name.log" >&2
    exit 1
}

start_b() {
    start b b "$b_admin" --data-dir "$work/b" --otlp-grpc-listen "$b_grpc" \
        --otlp-http-listen 127.0.0.1:$((BASE_PORT + 11)) \
        --query-listen 127.0.0.1:$((BASE_PORT + 12)) --admin-listen "$b_admin" ${B_ARGS:-}
    b_pid=${pids[-1]}
}

drain_started=
drain_timeout() { # now: fails the run when a drain takes longer than DRAIN_TIMEOUT seconds
    [[ -n $drain_started ]] || drain_started=$1
    if (($(echo "$1 - $drain_started > ${DRAIN_TIMEOUT:-300}" | bc -l))); then
        echo "forward.sh: A's queue did not drain within ${DRAIN_TIMEOUT:-300}s" >&2
        exit 1
    fi
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { # admin series
    curl -fsS "http://$1/metrics" | awk -v s="$2" 'index($0, s " ") == 1 {print $2}'
}
# Every SAMPLE s until killed: seconds since start, A's accepted spans (all receivers), spans
# sent to the upstream, spans queued.
sampler() { # admin queue-series
    local t0 now
    t0=$(date +%s.%N)
    while :; do
        now=$(date +%s.%N)
        curl -fsS "http://$1/metrics" 2>/dev/null | awk -v t="$(echo "$now - $t0" | bc -l)" -v q="$2" '
            index($0, "tracelight_collector_spans_accepted_total") == 1 { acc += $2 }
            index($0, "tracelight_collector_forward_sent_spans_total") == 1 { sent += $2 }
            index($0, q " ") == 1 { queued = $2 }
            END { printf "%.2f %d %d %d\n", t, acc, sent, queued }'
        sleep "$SAMPLE"
    done
}

label=$(echo "$b_grpc" | tr '.:' '__')
printf 'mode\tround\tspans/s\tA cores\tspans/A-CPU-s\tA µs/span\tA RSS MiB\tB cores\tA acc/s\tB got/s\tgot/acc\tqueue max\tqueue growth/s\tretried\tqueued at end\tdrain s\tdrain spans/s\n' >"$work/table"
echo "forward.sh: PIN=$PIN collector=$collector load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        rm -rf "$work/a" "$work/b"
        pids=()
        b_pid= drain_started=
        [[ $mode == forward || $mode == agent ]] && start_b
        a_args=(--data-dir "$work/a" --otlp-grpc-listen "$a_grpc" --otlp-http-listen "$a_http"
            --query-listen 127.0.0.1:$((BASE_PORT + 2)) --admin-listen "$a_admin")
        case $mode in
            forward | backlog) a_args+=(--forward "http://$b_grpc" --forward-compression "$FORWARD_COMPRESSION") ;;
            agent) a_args+=(--storage none --forward "http://$b_grpc" --forward-compression "$FORWARD_COMPRESSION") ;;
        esac
        start a a "$a_admin" "${a_args[@]}"
        a_pid=${pids[-1]}
        addr=$a_grpc
        [[ $PROTOCOL == http ]] && addr=$a_http
        b_before=0
        [[ -n $b_pid ]] && b_before=$(cpu_ticks "$b_pid")
        echo "== $mode round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        queue_series="tracelight_collector_forward_queue_spans{upstream=\"$label\"}"
        $(on load) bash -c "$(declare -f sampler); SAMPLE=$SAMPLE sampler $a_admin '$queue_series'" >"$work/samples" &
        sampler_pid=$!
        $(on load) "$loadgen" --protocol "$PROTOCOL" --addr "$addr" --batch "$BATCH" \
            --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
            --pid "$a_pid" --json >"$work/run.json"
        kill "$sampler_pid" 2>/dev/null || true
        wait "$sampler_pid" 2>/dev/null || true
        # The measured window: first and last sample within [WARMUP, WARMUP + DURATION].
        window=$(awk -v from="$WARMUP" -v to="$((WARMUP + DURATION))" '
            $1 >= from && $1 <= to + 0.3 {
                if (!n++) { t0 = $1; a0 = $2; s0 = $3; q0 = $4 }
                t1 = $1; a1 = $2; s1 = $3; q1 = $4; if ($4 > qmax) qmax = $4
            }
            END {
                if (n < 2 || t1 <= t0) { print "- - - - -"; exit }
                acc = (a1 - a0) / (t1 - t0); sent = (s1 - s0) / (t1 - t0)
                printf "%d %d %s %d %d\n", acc, sent, (acc > 0 ? sprintf("%.3f", sent / acc) : "-"), qmax, (q1 - q0) / (t1 - t0)
            }' "$work/samples")
        read -r a_acc b_got got_ratio q_max q_growth <<<"$window"
        if [[ $mode == alone ]]; then b_got=- got_ratio=- q_max=- q_growth=-; fi
        queued=- drain=- b_cores=- retried=-
        if [[ $mode == backlog ]]; then
            # The whole run is queued; B starts now. The drain is timed from the first sample
            # with less queued (the sender's retry backoff may wait a few seconds before it
            # finds B) to the sample with nothing left.
            b_got=- got_ratio=- q_growth=-
            queued=$(metric "$a_admin" "tracelight_collector_forward_queue_spans{upstream=\"$label\"}")
            start_b
            t_first= q_first=
            while :; do
                q=$(metric "$a_admin" "tracelight_collector_forward_queue_spans{upstream=\"$label\"}")
                now=$(date +%s.%N)
                if [[ -z $t_first && $q -lt $queued ]]; then
                    t_first=$now q_first=$q a_ticks=$(cpu_ticks "$a_pid") b_ticks=$(cpu_ticks "$b_pid")
                fi
                [[ $q == 0 ]] && break
                drain_timeout "$now"
                sleep 0.05
            done
            drain=$(echo "$now - $t_first" | bc -l)
            echo "   drain: $q_first spans in ${drain}s; A $(echo "($(cpu_ticks "$a_pid") - $a_ticks) / $(getconf CLK_TCK) / $drain" | bc -l | cut -c1-4) cores, B $(echo "($(cpu_ticks "$b_pid") - $b_ticks) / $(getconf CLK_TCK) / $drain" | bc -l | cut -c1-4) cores" >&2
            # the drain rate column: the spans queued at the first sample over the time to empty
            queued=$q_first
        elif [[ -n $b_pid ]]; then
            retried=$(metric "$a_admin" "tracelight_collector_forward_retried_spans_total{upstream=\"$label\"}")
            b_after=$(cpu_ticks "$b_pid")
            b_cores=$(echo "($b_after - $b_before) / $(getconf CLK_TCK) / ($DURATION + $WARMUP)" | bc -l)
            queued=$(metric "$a_admin" "tracelight_collector_forward_queue_spans{upstream=\"$label\"}")
            t0=$(date +%s.%N)
            while [[ $(metric "$a_admin" "tracelight_collector_forward_queue_spans{upstream=\"$label\"}") != 0 ]]; do
                drain_timeout "$(date +%s.%N)"
                sleep 0.05
            done
            drain=$(echo "$(date +%s.%N) - $t0" | bc -l)
        fi
        jq -r --arg mode "$mode" --arg round "$round" --arg b "$b_cores" --arg q "$queued" --arg d "$drain" \
            --arg acc "$a_acc" --arg got "$b_got" --arg ratio "$got_ratio" --arg qmax "$q_max" --arg qg "$q_growth" --arg retried "$retried" '
            [ $mode, $round, (.accepted_spans_per_sec | floor),
              (.collector.cpu_cores * 100 | floor / 100),
              (.collector.spans_per_cpu_second | floor),
              (1e6 / .collector.spans_per_cpu_second * 10 | floor / 10),
              (.collector.hwm_kib / 1024 | floor),
              (if $b == "-" then "-" else ($b | tonumber * 100 | floor / 100) end),
              $acc, $got, $ratio, $qmax, $qg, $retried,
              $q,
              (if $d == "-" then "-" else ($d | tonumber * 100 | floor / 100) end),
              (if $d == "-" or ($q | tonumber) == 0 then "-" else ($q | tonumber) / ($d | tonumber) | floor end)
            ] | @tsv' "$work/run.json" >>"$work/table"
        for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" || true; done
        pids=()
    done
done
column -t -s $'\t' "$work/table"
