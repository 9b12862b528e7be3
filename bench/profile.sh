#!/usr/bin/env bash
# Where Stampede's client CPU goes at full speed: a flat `perf` profile (software clock —
# these VMs expose no hardware counters) of `stampede run` in the closed model, 50 users,
# against nginx with one worker on 127.0.0.1, nginx on CPU 0 and the client on CPU 1.
# Prints the top symbols and the user/kernel split. Usage: bench/profile.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need nginx nginx-light
need perf linux-perf
cargo build --release --locked -p stampede-runner

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy; fastcgi_temp_path $work/fcgi;
  uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:$port; keepalive_requests 1000000000; location = / { return 200 "hello\n"; } }
}
CONF
taskset -c 0 nginx -c "$work/nginx.conf"
trap 'nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/closed.yaml" <<YAML
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: { name: profile }
spec:
  connections: 50
  duration: ${secs}s
  scenario:
    connection: { http: { url: "http://127.0.0.1:$port" } }
    steps:
      - request: { path: / }
YAML

taskset -c 1 perf record -q -e cpu-clock -F 1999 -o "$work/perf.data" \
  target/release/stampede run "$work/closed.yaml" --threads 1 --quiet | grep -E "iterations"
echo
echo "samples by binary ([kernel.kallsyms] = system calls and the network stack):"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -4
echo
echo "top symbols:"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
  | grep -E '^ +[0-9]' | head -${TOP:-25}
