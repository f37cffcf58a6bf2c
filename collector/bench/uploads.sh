#!/usr/bin/env bash
# Memory under many concurrent large uploads: N clients (curl) POST a body of SIZE MiB each to
# /v1/traces at RATE per client, all at once, against a fresh collector with the durable store.
# Prints the collector's peak RSS (VmHWM) and how many uploads got each HTTP status. The bodies
# are zeros (undecodable: 400 once read), so what is measured is what the receiver holds while
# bodies arrive: the decode budget (receiver/limits.rs) admits ~32 MiB of them at once and
# answers the others 503 + Retry-After after reading them through without keeping them.
#
# Environment: N=40 SIZE=16 RATE=4M BASE_PORT=47317 COLLECTOR=path (default: the release
# build; NO_BUILD=1 skips building it). Needs curl. Only loopback addresses are used.
set -euo pipefail
N=${N:-40}
SIZE=${SIZE:-16}
RATE=${RATE:-4M}
BASE_PORT=${BASE_PORT:-47317}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
collector=${COLLECTOR:-${CARGO_TARGET_DIR:-$root/target}/release/tracelight-collector}
if [[ ${NO_BUILD:-0} != 1 && -z ${COLLECTOR:-} ]]; then
    (cd "$root" && cargo build --release -p tracelight-collector)
fi
work=$(mktemp -d -t tracelight-uploads.XXXXXX)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
head -c $((SIZE << 20)) /dev/zero >"$work/body.bin"
admin=127.0.0.1:$((BASE_PORT + 3))
"$collector" --data-dir "$work/data" --otlp-grpc-listen "127.0.0.1:$BASE_PORT" \
    --otlp-http-listen "127.0.0.1:$((BASE_PORT + 1))" --query-listen "127.0.0.1:$((BASE_PORT + 2))" \
    --admin-listen "$admin" >"$work/collector.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://$admin/ready" >/dev/null && break; sleep 0.1; done
clients=()
for i in $(seq "$N"); do
    curl -s -o /dev/null -w '%{http_code}\n' --limit-rate "$RATE" \
        -H 'content-type: application/x-protobuf' --data-binary "@$work/body.bin" \
        "http://127.0.0.1:$((BASE_PORT + 1))/v1/traces" >"$work/status.$i" &
    clients+=($!)
done
wait "${clients[@]}"
rss=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
echo "$N uploads of $SIZE MiB at $RATE/s each: collector peak RSS $rss MiB; HTTP statuses:" \
    "$(cat "$work"/status.* | sort | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')"
