#!/usr/bin/env bash
# The Jaeger UI container's nginx config (deploy/jaeger-ui/nginx.conf.template) against a real
# nginx (Debian's, installed with apt-get if missing) and the collector binary, on loopback:
# index.html gets the UI config and capabilities injected (Monitor tab on), unknown app paths
# serve index.html, and /api/* reaches the collector's Jaeger query API (services, SPM).
# The UI bundle itself is not built here (it needs GitHub): a stand-in index.html carries the
# exact placeholder lines of jaeger-ui's index.html.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=../lib.sh
. "$repo/.ci/lib.sh"
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(OTEL_|TRACELIGHT_)' || true)

if ! command -v nginx >/dev/null; then
  echo "== nginx missing; installing Debian's nginx-light"
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light
fi

cargo build -q -p tracelight-collector --bin tracelight-collector
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d "${TMPDIR:-/tmp}/tracelight-e2e-jaeger-ui.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ "$rc" -eq 0 ] || { tail -n 20 "$work"/*.log >&2 2>/dev/null || true; }
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

read -r grpc http query admin ui < <(free_ports 5)
"$target_dir/debug/tracelight-collector" --storage memory --data-dir "$work/data" \
  --otlp-grpc-listen "127.0.0.1:$grpc" --otlp-http-listen "127.0.0.1:$http" \
  --query-listen "127.0.0.1:$query" --admin-listen "127.0.0.1:$admin" >"$work/collector.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$admin/ready" "${pids[-1]}"

# One span, so /api/services and the SPM API have something to say.
now=$(date +%s%N)
curl -fsS -H 'content-type: application/json' "http://127.0.0.1:$http/v1/traces" -d '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ui-check"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /ui","kind":2,"startTimeUnixNano":"'"$now"'","endTimeUnixNano":"'"$((now + 5000000))"'"}]}]}]}' >/dev/null

mkdir -p "$work/html" "$work/conf"
# nginx workers run as an unprivileged user: they must read the stand-in page.
chmod o+rx "$work" "$work/html"
cat >"$work/html/index.html" <<'HTML'
<script>
        const JAEGER_CONFIG = DEFAULT_CONFIG;
        const JAEGER_STORAGE_CAPABILITIES = DEFAULT_STORAGE_CAPABILITIES;
        const JAEGER_BACKEND_CAPABILITIES = DEFAULT_BACKEND_CAPABILITIES;
</script>
HTML
chmod o+r "$work/html/index.html"
# What the nginx image's envsubst does at start, plus loopback listen/root for this run.
sed -e "s|\${TRACELIGHT_QUERY_URL}|http://127.0.0.1:$query|" \
    -e "s|listen 16686;|listen 127.0.0.1:$ui;|" \
    -e "s|root /usr/share/nginx/html;|root $work/html;|" \
    deploy/jaeger-ui/nginx.conf.template >"$work/conf/site.conf"
cat >"$work/conf/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events {}
http {
  access_log off;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  include $work/conf/site.conf;
}
CONF
mkdir -p "$work/tmp"
nginx -t -c "$work/conf/nginx.conf" -p "$work" 2>&1 | tail -n 1
nginx -c "$work/conf/nginx.conf" -p "$work" -g 'daemon off;' >"$work/nginx.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$ui/api/services" "${pids[-1]}"

fail() { echo "jaeger-ui proxy: $*" >&2; exit 1; }
page=$(curl -fsS "http://127.0.0.1:$ui/search?service=ui-check")
grep -q 'JAEGER_CONFIG = {"monitor":{"menuEnabled":true}' <<<"$page" || fail "UI config not injected: $page"
grep -q '"metricsStorage":true' <<<"$page" || fail "capabilities not injected: $page"
grep -q 'DEFAULT_BACKEND_CAPABILITIES;' <<<"$page" && fail "a placeholder is left: $page"
curl -fsS "http://127.0.0.1:$ui/api/services" | grep -q '"ui-check"' || fail "/api/services not proxied"
curl -fsS "http://127.0.0.1:$ui/api/metrics/calls?service=ui-check&lookback=0&step=60000&ratePer=60000" \
  | grep -q '"service_call_rate"' || fail "/api/metrics/calls not proxied"
echo "== jaeger-ui proxy: ok (config injected, /api/* reaches the collector)"
