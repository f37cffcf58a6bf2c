#!/usr/bin/env bash
# Every panel query of every dashboard in dashboards/ must return data from a real Prometheus
# (dashboards.md R20.3; issue 5).
#
# Starts on loopback: two collectors (A receives the shop's spans and forwards them to B, so the
# forwarding panels have series), the six shop services with injected faults (so error,
# compensation and breaker panels have data), Debian's `prometheus` (installed with apt-get if
# missing) scraping all of them every second, and a traffic generator; then evaluates each
# dashboard query through Prometheus's HTTP API and each trace query through A's Jaeger API
# (dashboards/e2e/check_queries.py) and fails listing every query that returned nothing.
#
# Needs cargo and python3 (stdlib only; no curl). About 2 minutes once built.
# Env: DASHBOARDS_E2E_WARMUP (seconds of traffic before the queries run, default 50),
#      DASHBOARDS_E2E_VERBOSE=1 lists the queries that passed too.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

# The machine's OTLP / collector / shop settings must not leak into the run.
while IFS= read -r name; do unset "$name"; done \
  < <(compgen -e | grep -E '^(OTEL_|TRACELIGHT_|SHOP_)' || true)
warmup=${DASHBOARDS_E2E_WARMUP:-50}

if ! command -v prometheus >/dev/null; then
  echo "== prometheus missing; installing Debian's prometheus package"
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus
fi
prometheus --version 2>&1 | head -n 1

echo "== cargo build -p tracelight-collector -p shop"
cargo build -q -p tracelight-collector -p shop
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
collector_bin="$target_dir/debug/tracelight-collector"
shop_bin="$target_dir/debug/shop"

work=$(mktemp -d "${TMPDIR:-/tmp}/tracelight-e2e-dashboards.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] || continue
      echo "--- $(basename "$log") (last 15 lines)" >&2
      tail -n 15 "$log" >&2 || true
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# shellcheck source=../lib.sh
. "$repo/.ci/lib.sh"
read -r a_grpc a_http a_query a_admin b_grpc b_http b_query b_admin \
  p_gateway p_users p_products p_orders p_payments p_shipping p_prom < <(free_ports 15)

wait_ok() { # url what pid
  wait_ready "$1" "$3" 60 || { echo "$2 did not become ready at $1" >&2; return 1; }
}

# --- collectors: A (what the dashboards look at; the default durable store) forwards to B -------
"$collector_bin" --storage memory --data-dir "$work/b-data" \
  --otlp-grpc-listen "127.0.0.1:$b_grpc" --otlp-http-listen "127.0.0.1:$b_http" \
  --query-listen "127.0.0.1:$b_query" --admin-listen "127.0.0.1:$b_admin" \
  >"$work/collector-b.log" 2>&1 &
pids+=($!); b_pid=$!
"$collector_bin" --data-dir "$work/a-data" \
  --otlp-grpc-listen "127.0.0.1:$a_grpc" --otlp-http-listen "127.0.0.1:$a_http" \
  --query-listen "127.0.0.1:$a_query" --admin-listen "127.0.0.1:$a_admin" \
  --forward "http://127.0.0.1:$b_grpc" \
  >"$work/collector-a.log" 2>&1 &
pids+=($!); a_pid=$!
wait_ok "http://127.0.0.1:$b_admin/ready" "collector B" "$b_pid"
wait_ok "http://127.0.0.1:$a_admin/ready" "collector A" "$a_pid"
echo "== collector A: otlp http :$a_http, query :$a_query, admin :$a_admin (forwarding to B :$b_grpc)"

# --- the shop, with faults injected ----------------------------------------------------------------
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$a_http"
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_BSP_SCHEDULE_DELAY=500
export TRACELIGHT_LOG_FORMAT=json
export SHOP_GATEWAY_ADDR="127.0.0.1:$p_gateway" SHOP_USERS_ADDR="127.0.0.1:$p_users"
export SHOP_PRODUCTS_ADDR="127.0.0.1:$p_products" SHOP_ORDERS_ADDR="127.0.0.1:$p_orders"
export SHOP_PAYMENTS_ADDR="127.0.0.1:$p_payments" SHOP_SHIPPING_ADDR="127.0.0.1:$p_shipping"
export SHOP_PAYMENTS_FAILURE_RATE=0.4 SHOP_PAYMENTS_SLOW_RATE=0.1 SHOP_PAYMENTS_SLOW_MS=300
export SHOP_PRODUCTS_FAILURE_RATE=0.05 SHOP_PRODUCTS_SLOW_RATE=0.1 SHOP_PRODUCTS_SLOW_MS=400
export SHOP_SHIPPING_FAILURE_RATE=0.2
export SHOP_BREAKER_FAILURE_THRESHOLD=2 SHOP_BREAKER_OPEN_MS=1000
export SHOP_RETRY_BASE_MS=10 SHOP_RETRY_MAX_MS=100
declare -A shop_port=([users]=$p_users [products]=$p_products [payments]=$p_payments
  [shipping]=$p_shipping [orders]=$p_orders [gateway]=$p_gateway)
for service in users products payments shipping orders gateway; do
  "$shop_bin" "$service" </dev/null >"$work/shop-$service.log" 2>&1 &
  pids+=($!)
  wait_ok "http://127.0.0.1:${shop_port[$service]}/ready" "shop $service" "$!"
done
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL OTEL_BSP_SCHEDULE_DELAY
echo "== shop: gateway :$p_gateway"

# --- prometheus -----------------------------------------------------------------------------------
shop_targets=$(printf '"127.0.0.1:%s",' "$p_gateway" "$p_users" "$p_products" "$p_orders" \
  "$p_payments" "$p_shipping")
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tracelight-collector
    static_configs:
      - targets: ["127.0.0.1:$a_admin", "127.0.0.1:$b_admin"]
  - job_name: shop
    static_configs:
      - targets: [${shop_targets%,}]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" \
  --web.listen-address="127.0.0.1:$p_prom" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_ok "http://127.0.0.1:$p_prom/-/ready" "prometheus" "$!"
echo "== prometheus :$p_prom scraping every 1s"

# --- traffic (in the background until the queries are done) ---------------------------------------
python3 - "http://127.0.0.1:$p_gateway" "http://127.0.0.1:$a_query" >"$work/traffic.log" 2>&1 <<'PY' &
import json, random, sys, threading, time, urllib.error, urllib.request
gateway, query = sys.argv[1], sys.argv[2]
def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
    except urllib.error.HTTPError as e:
        e.read()
    except OSError:
        pass
def worker():
    while True:
        user, product = random.randint(1, 6), random.randint(1, 6)
        roll = random.random()
        if roll < 0.4:
            call("POST", f"{gateway}/orders", {"user_id": user, "product_id": product, "quantity": 1})
        elif roll < 0.6:
            call("GET", f"{gateway}/dashboard/{user}")
        elif roll < 0.75:
            call("GET", f"{gateway}/products")
        elif roll < 0.85:
            call("GET", f"{gateway}/users/{user}")
        elif roll < 0.9:
            call("GET", f"{gateway}/orders")
        elif roll < 0.95:
            call("GET", f"{gateway}/no/such/route")
        else:
            call("GET", f"{query}/api/services")
        time.sleep(0.05)
for _ in range(4):
    threading.Thread(target=worker, daemon=True).start()
while True:
    time.sleep(60)
PY
pids+=($!)
echo "== traffic for ${warmup}s"
sleep "$warmup"

# --- every query -----------------------------------------------------------------------------------
echo "== evaluating every dashboard query"
verbose=(); [ "${DASHBOARDS_E2E_VERBOSE:-}" != 1 ] || verbose=(--verbose)
python3 "$repo/dashboards/e2e/check_queries.py" "${verbose[@]}" \
  --prometheus "http://127.0.0.1:$p_prom" --jaeger "http://127.0.0.1:$a_query" \
  --rate-interval 20s --interval 5s --range-seconds "$warmup" \
  "$repo"/dashboards/*.json
echo "== dashboards: ok"
