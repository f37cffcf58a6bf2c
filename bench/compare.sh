#!/usr/bin/env bash
# Whole-process comparison under wrk: a hello-world axum service (bench/hello) run as
#   bare       axum + tracing_subscriber::fmt().json() logs (every mode pays one log line/request)
#   full       tracelight: AlwaysOn sampler, spans exported over OTLP/HTTP to a loopback receiver,
#              RED metrics, JSON logs with trace ids
#   metrics    tracelight with layer_builder().spans(false), no traces exporter, JSON logs
#   community  init-tracing-opentelemetry + axum-tracing-opentelemetry + axum-prometheus,
#              exporting over OTLP/HTTP to the same receiver
# interleaved for R rounds (bare, full, metrics, community, bare, ...).
#
# Per run: server CPU time (utime+stime from /proc/PID/stat over the measured wrk run, all
# threads, so span export and metrics upkeep count) / requests served, req/s and p99 from wrk.
# The table shows the median over rounds and ratios to bare; it is also written as markdown to
# bench/results/compare-<date>.md (compare-<date>-2.md, -3.md, … when that exists: earlier results
# of the day are never overwritten).
#
# The machine has 2 cores: the server is pinned to CPU 0 and wrk to CPU 1 with taskset (when
# available), so the server is CPU-bound on one core and throughput ~ 1 / (CPU per request).
# The OTLP receiver (`hello --mode receiver`) is a separate process, not counted; it shares
# CPU 1 with wrk. Server stdout (the log lines) goes to /dev/null: one write(2) per line.
#
# Usage: bench/compare.sh            (R=3 rounds, DUR=10 s per run)
#        R=5 DUR=20 MODES="bare full" bench/compare.sh
set -euo pipefail

R=${R:-3}
DUR=${DUR:-10}
WARMUP=${WARMUP:-2}
MODES=${MODES:-"bare full metrics community"}
PORT=${PORT:-18080}
RECEIVER_PORT=${RECEIVER_PORT:-14318}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench-hello}
BIN=$CARGO_TARGET_DIR/release/hello
RESULTS=$ROOT/bench/results
WORK=$(mktemp -d)
SERVER_PID=
RECEIVER_PID=

cleanup() {
    for pid in $SERVER_PID $RECEIVER_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- tools --------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq
    apt-get install -y -qq wrk >/dev/null
fi
for tool in curl getconf; do
    command -v "$tool" >/dev/null || { echo "compare.sh: $tool is required" >&2; exit 1; }
done
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="server on CPU 0, wrk and receiver on CPU 1 (taskset)"
else
    PIN_SERVER=()
    PIN_LOAD=()
    PINNING="none (taskset missing or 1 CPU): server and wrk share the CPUs"
fi
CLK_TCK=$(getconf CLK_TCK)

# --- build --------------------------------------------------------------------------------------
echo "building bench/hello (release, target $CARGO_TARGET_DIR)" >&2
cargo build --release --quiet --manifest-path "$ROOT/bench/hello/Cargo.toml"

# --- helpers ------------------------------------------------------------------------------------
wait_port() { # port: wait until something accepts on 127.0.0.1:port
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "compare.sh: nothing listening on 127.0.0.1:$1" >&2
    return 1
}

cpu_ticks() { # pid: utime+stime (fields 14 and 15; the name in field 2 may contain spaces)
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }              # drop "pid (comm) "; the rest starts at field 3
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))         # fields 14, 15 -> indexes 11, 12
}

to_us() { # wrk latency like 1.23ms / 456.00us / 1.01s -> microseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000;
        else if (u == "m") m = 60000000; else m = 1;
        printf "%.0f", n * m }'
}

receiver_bytes() {
    curl -fsS "http://127.0.0.1:$RECEIVER_PORT/stats" | awk '{print $2}'
}

run_mode() { # mode round
    local mode=$1 round=$2 out=$WORK/wrk-$1-$2.txt
    "${PIN_SERVER[@]}" "$BIN" --mode "$mode" --port "$PORT" \
        --otlp "http://127.0.0.1:$RECEIVER_PORT/v1/traces" >/dev/null 2>"$WORK/server-$mode.err" &
    SERVER_PID=$!
    wait_port "$PORT"
    curl -fsS "http://127.0.0.1:$PORT/hello/1" >/dev/null
    "${PIN_LOAD[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$PORT/hello/42" >/dev/null
    local bytes0 t0 t1 bytes1
    bytes0=$(receiver_bytes)
    t0=$(cpu_ticks "$SERVER_PID")
    "${PIN_LOAD[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$PORT/hello/42" >"$out"
    t1=$(cpu_ticks "$SERVER_PID")
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    bytes1=$(receiver_bytes)

    local requests rps p99 errors
    requests=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$out")
    if [ -n "$errors" ]; then
        echo "compare.sh: $mode round $round: $errors" >&2
    fi
    # cpu_us_per_req = ticks / CLK_TCK * 1e6 / requests
    local cpu_us
    cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    printf '%s %s %s %s %s %s %s\n' "$mode" "$round" "$cpu_us" "$rps" "$p99" "$requests" \
        $((bytes1 - bytes0)) >>"$WORK/runs.txt"
    printf '  %-10s round %s: %8s us CPU/req  %10s req/s  p99 %7s us  (%s requests, %s B exported)\n' \
        "$mode" "$round" "$cpu_us" "$rps" "$p99" "$requests" $((bytes1 - bytes0)) >&2
}

# --- run ----------------------------------------------------------------------------------------
"${PIN_LOAD[@]}" "$BIN" --mode receiver --port "$RECEIVER_PORT" >/dev/null 2>"$WORK/receiver.err" &
RECEIVER_PID=$!
wait_port "$RECEIVER_PORT"

echo "$R rounds x ($MODES), wrk -t$THREADS -c$CONNS -d${DUR}s after ${WARMUP}s warm-up; pinning: $PINNING" >&2
: >"$WORK/runs.txt"
for round in $(seq "$R"); do
    for mode in $MODES; do
        run_mode "$mode" "$round"
    done
done

# --- report -------------------------------------------------------------------------------------
DATE=$(date +%Y-%m-%d)
mkdir -p "$RESULTS"
REPORT=$RESULTS/compare-$DATE.md
n=1
while [[ -e $REPORT ]]; do
    n=$((n + 1))
    REPORT=$RESULTS/compare-$DATE-$n.md
done
table() { # medians per mode, ratios to bare; $1 = markdown (1) or text (0)
    awk -v md="$1" -v modes="$MODES" '
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { cpu[$1] = cpu[$1] " " $3; rps[$1] = rps[$1] " " $4; p99[$1] = p99[$1] " " $5; exp_[$1] = exp_[$1] " " $7 }
    END {
        nm = split(modes, m, " ")
        bc = median(cpu["bare"]); br = median(rps["bare"]); bp = median(p99["bare"])
        if (md) {
            print "| mode | CPU µs/request | req/s | p99 µs | CPU/req ÷ bare | +µs CPU/req | throughput ÷ bare | p99 ÷ bare | exported B/s |"
            print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        } else {
            printf "%-10s %12s %10s %9s %10s %10s %10s %9s %12s\n", "mode", "CPU us/req", "req/s", "p99 us", "CPU/bare", "+us CPU", "rps/bare", "p99/bare", "exported B/s"
        }
        for (i = 1; i <= nm; i++) {
            k = m[i]; c = median(cpu[k]); r = median(rps[k]); p = median(p99[k]); e = median(exp_[k])
            rc = bc > 0 ? c / bc : 0; rr = br > 0 ? r / br : 0; rp = bp > 0 ? p / bp : 0
            if (md) printf "| %s | %.2f | %.0f | %.0f | %.2f× | %+.2f | %.2f× | %.2f× | %.0f |\n", k, c, r, p, rc, c - bc, rr, rp, e / DUR
            else printf "%-10s %12.2f %10.0f %9.0f %9.2fx %+10.2f %9.2fx %8.2fx %12.0f\n", k, c, r, p, rc, c - bc, rr, rp, e / DUR
        }
    }' DUR="$DUR" "$WORK/runs.txt"
}

{
    echo "# Whole-process comparison, $DATE"
    echo
    echo "\`bench/compare.sh\`: $R rounds, modes interleaved; \`wrk -t$THREADS -c$CONNS -d${DUR}s --latency\`"
    echo "after a ${WARMUP} s warm-up; \`GET /hello/{id}\` with one \`info!\` (one JSON log line to"
    echo "/dev/null in every mode). Pinning: $PINNING. $(nproc) CPUs, $(uname -r)."
    echo "Medians over rounds; CPU = server utime+stime over the measured run ÷ requests served."
    echo
    table 1
    echo
    echo "Targets (issue 2): full ≤ 2× bare CPU/request, metrics ≤ 1.15×."
    echo
    echo "<details><summary>All runs (mode round cpu_us_per_req req/s p99_us requests exported_bytes)</summary>"
    echo
    echo '```'
    cat "$WORK/runs.txt"
    echo '```'
    echo "</details>"
} >"$REPORT"

echo
table 0
echo
echo "written $REPORT"
