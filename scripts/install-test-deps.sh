#!/usr/bin/env bash
# Installs the real programs some tests drive, from Debian's packages, when they are missing:
#   prometheus  scrapes `stampede-operator local --metrics-addr` and answers the dashboard's
#               queries (operator/tests/prometheus.rs)
#   chromium    renders `stampede report --html` headless for the screenshot test
#               (tests/tests/report_html.rs)
#   redis-server, redis-cli  a private Redis per test of the redis kind (tests/tests/redis.rs,
#               tests/tests/examples.rs); redis-benchmark for bench/redis.sh (redis-tools)
# Needs root (or passwordless sudo) on a machine without them; does nothing when all exist.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v redis-cli && command -v redis-benchmark; } >/dev/null 2>&1 || missing+=(redis-tools)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "install-test-deps: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-test-deps: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends keeps chromium's footprint small; prometheus' recommends (node
# exporter etc.) are not needed either.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's prometheus package starts nothing here (no systemd); tests start their own.
