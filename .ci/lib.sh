# Shell helpers shared by the end-to-end scripts in .ci/e2e/ (sourced, not run).

# free_ports N: prints N free loopback TCP ports, bound here then released (a lost race shows up
# as a failed readiness wait).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# wait_ready URL PID [SECONDS]: succeeds once URL answers 200; fails when PID exits or after
# SECONDS (default 30).
wait_ready() {
  python3 - "$1" "$2" "${3:-30}" <<'PY'
import os, sys, time, urllib.request
url, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}
