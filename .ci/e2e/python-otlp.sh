#!/usr/bin/env bash
# End to end with an outside client: OpenTelemetry Python (opentelemetry-sdk +
# opentelemetry-exporter-otlp from PyPI, pinned in collector/tests/python/requirements.txt) sends
# spans to the collector binary over OTLP/gRPC and OTLP/HTTP-protobuf; every span must then be
# queryable through the Jaeger v1 and api_v3 APIs with its parent links, event logs and error
# tags; SIGTERM must stop the collector with exit code 0.
#
# Needs python3 (python3-venv is installed with apt-get if `python3 -m venv` fails), cargo and
# network access to PyPI. Listens on loopback only. The venv is kept in the target directory and
# reused while the requirements file is unchanged.
# Env: TRACELIGHT_E2E_STORAGE (default: memory) is passed to --storage.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
py_dir="$repo/collector/tests/python"

# The machine's OTLP / collector settings must not leak into the run.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(OTEL_|TRACELIGHT_)' | grep -vx TRACELIGHT_E2E_STORAGE || true)
storage=${TRACELIGHT_E2E_STORAGE:-memory}

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
venv="$target_dir/e2e/python-otlp-venv"
work=$(mktemp -d "${TMPDIR:-/tmp}/tracelight-e2e-python.XXXXXX")
collector_pid=
cleanup() {
  local rc=$?
  if [ -n "$collector_pid" ] && kill -0 "$collector_pid" 2>/dev/null; then
    kill -KILL "$collector_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$work/collector.log" ]; then
    echo "--- collector log (last 50 lines)" >&2
    tail -n 50 "$work/collector.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# --- Python client in a venv -------------------------------------------------------------------
make_venv() { rm -rf "$venv" && python3 -m venv "$venv"; }
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$py_dir/requirements.txt" "$venv/requirements.txt"; then
  echo "== python venv: $venv"
  mkdir -p "$(dirname "$venv")"
  if ! make_venv; then
    echo "python3 -m venv failed; installing python3-venv" >&2
    sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    make_venv
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$py_dir/requirements.txt"
  cp "$py_dir/requirements.txt" "$venv/requirements.txt"
fi

# --- collector binary ---------------------------------------------------------------------------
echo "== cargo build -p tracelight-collector"
cargo build -q -p tracelight-collector --bin tracelight-collector
bin="$target_dir/debug/tracelight-collector"

# shellcheck source=../lib.sh
. "$repo/.ci/lib.sh"

# Ports are picked free, then bound by the collector: retry on the rare lost race.
for attempt in 1 2 3; do
  read -r grpc_port http_port query_port admin_port < <(free_ports 4)
  "$bin" --storage "$storage" --data-dir "$work/data" \
    --otlp-grpc-listen "127.0.0.1:$grpc_port" --otlp-http-listen "127.0.0.1:$http_port" \
    --query-listen "127.0.0.1:$query_port" --admin-listen "127.0.0.1:$admin_port" \
    >"$work/collector.log" 2>&1 &
  collector_pid=$!
  if wait_ready "http://127.0.0.1:$admin_port/ready" "$collector_pid"; then
    break
  fi
  kill -KILL "$collector_pid" 2>/dev/null || true
  wait "$collector_pid" 2>/dev/null || true
  collector_pid=
  echo "collector did not start (attempt $attempt):" >&2
  tail -n 20 "$work/collector.log" >&2
  [ "$attempt" -lt 3 ] || exit 1
done
echo "== collector pid $collector_pid: grpc :$grpc_port, http :$http_port, query :$query_port (storage $storage)"

# --- send, then read back ------------------------------------------------------------------------
echo "== send_spans.py (gRPC and HTTP/protobuf)"
"$venv/bin/python" "$py_dir/send_spans.py" \
  --grpc-endpoint "http://127.0.0.1:$grpc_port" \
  --http-endpoint "http://127.0.0.1:$http_port/v1/traces" \
  >"$work/traces.jsonl"
echo "== check_traces.py"
"$venv/bin/python" "$py_dir/check_traces.py" --query-url "http://127.0.0.1:$query_port" \
  "$work/traces.jsonl"

# --- the admin exposition, span metrics included, passes promtool --------------------------------
if ! command -v promtool >/dev/null; then
  echo "promtool missing; installing Debian's prometheus package" >&2
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus
fi
echo "== promtool check metrics"
curl -fsS "http://127.0.0.1:$admin_port/metrics" >"$work/metrics.txt"
grep -q '^traces_span_metrics_calls_total{service_name="' "$work/metrics.txt" \
  || { echo "no span metrics in the exposition" >&2; exit 1; }
# promtool exits 3 on lint findings; the only accepted one is the connector-compatible
# millisecond unit of traces_span_metrics_duration_milliseconds (metric-names.md §B.1).
promtool check metrics <"$work/metrics.txt" >"$work/promtool.txt" 2>&1 || true
if grep -v 'traces_span_metrics_duration_milliseconds use base unit "seconds" instead of "milliseconds"' \
    "$work/promtool.txt" | grep -q .; then
  echo "promtool check metrics found problems:" >&2
  cat "$work/promtool.txt" >&2
  exit 1
fi

# --- SIGTERM: clean stop, exit code 0 -----------------------------------------------------------
echo "== SIGTERM"
kill -TERM "$collector_pid"
for _ in $(seq 300); do
  kill -0 "$collector_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$collector_pid" 2>/dev/null; then
  echo "collector still running 30 s after SIGTERM" >&2
  exit 1
fi
rc=0
wait "$collector_pid" || rc=$?
collector_pid=
if [ "$rc" -ne 0 ]; then
  echo "collector exited with $rc after SIGTERM (want 0)" >&2
  exit 1
fi
echo "== python-otlp: ok (collector exited 0 on SIGTERM)"
