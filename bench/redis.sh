#!/usr/bin/env bash
# bench/redis.sh: Stampede against redis-benchmark on one private redis-server on 127.0.0.1:
# GET and SET, 50 connections, without pipelining and with 16 commands per pipeline, requests
# per client CPU-second, median of interleaved runs; then Stampede alone at fixed rates
# (rate error and p99), which redis-benchmark cannot do. Writes the redis section of
# BENCHMARKS.md.
#
#   bench/redis.sh             10 s runs, 3 rounds, rewrites the redis-bench section of BENCHMARKS.md
#   QUICK=1 bench/redis.sh     2 s runs, 1 round, results in bench/results/ only
#
# Environment (defaults in brackets):
#   DURATION [10, QUICK: 2]  seconds per Stampede run (redis-benchmark gets a request count
#                            sized from Stampede's first run of the same test, so both run as long)
#   RUNS [3, QUICK: 1]       interleaved rounds        CONNECTIONS [50]
#   RATES ["20000 50000"]    fixed-rate tests          STAMPEDE_BIN=path  use this binary
#   SERVER_CPU [0], CLIENT_CPU [1]: redis-server and each client pinned (taskset) when >= 2 CPUs
#   WRITE_MD [1, QUICK: 0]   write the section into BENCHMARKS.md
#
# All traffic goes to 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-2}
    RUNS=${RUNS:-1}
    WRITE_MD=${WRITE_MD:-0}
fi
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WRITE_MD=${WRITE_MD:-1}
CONNECTIONS=${CONNECTIONS:-50}
RATES=${RATES:-20000 50000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "DURATION must be whole seconds, got '$DURATION'" >&2; exit 2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer, got '$RUNS'" >&2; exit 2; }
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || { echo "CONNECTIONS must be a positive integer, got '$CONNECTIONS'" >&2; exit 2; }

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for b in redis-server redis-benchmark; do
    command -v "$b" >/dev/null || bash "$ROOT/scripts/install-test-deps.sh" >&2
    command -v "$b" >/dev/null || die "$b is not installed (Debian: redis-server, redis-tools)"
done
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed for CPU seconds"

pin_server=() pin_client=()
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    pin_server=(taskset -c "$SERVER_CPU")
    pin_client=(taskset -c "$CLIENT_CPU")
fi

if [[ -n ${STAMPEDE_BIN:-} ]]; then
    BIN=$(realpath "$STAMPEDE_BIN")
else
    (cd "$ROOT" && cargo build --release --locked -p stampede-runner >&2)
    BIN=$ROOT/target/release/stampede
fi

OUT=$ROOT/bench/results/redis-$(date +%Y%m%d-%H%M%S)$([[ $QUICK == 1 ]] && echo -quick || true)
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/stampede-redis-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${pin_server[@]}" redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
    --dir "$WORK" --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
cleanup() { [[ -f $WORK/redis.pid ]] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$PORT" ping >/dev/null || die "redis-server did not start on $PORT"

# The same commands for both: redis-benchmark's default key and a 3-byte value (-d 3).
loadtest() { # $1 command  $2 pipeline  $3 rate or empty
    local cmd step
    case $1 in
        get) cmd='[GET, "key:__rand_int__"]' ;;
        set) cmd='[SET, "key:__rand_int__", "xxx"]' ;;
    esac
    step="      - { name: $1, command: $cmd$([[ $2 -gt 1 ]] && echo ", pipeline: $2" || true) }"
    cat <<YAML
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: { name: redis-bench }
spec:
  connections: $CONNECTIONS
$([[ -n $3 ]] && echo "  rate: $3" || true)
  duration: ${DURATION}s
  scenario:
    connection: { redis: { url: "redis://127.0.0.1:$PORT" } }
    steps:
$step
YAML
}

cpu_of() { python3 -c 'import sys; t=open(sys.argv[1]).read().split(); print(float(t[0])+float(t[1]))' "$1"; }

# Runs Stampede; prints "requests cpu_s p99_ms rate".
run_stampede() { # $1 dir $2 cmd $3 pipeline $4 rate
    mkdir -p "$1"
    loadtest "$2" "$3" "${4:-}" > "$1/loadtest.yaml"
    /usr/bin/time -f '%U %S %M' -o "$1/time" timeout $((DURATION + 30)) \
        "${pin_client[@]}" "$BIN" run "$1/loadtest.yaml" --quiet --threads 1 --out "$1/summary.json" >/dev/null 2>"$1/stderr" || true
    python3 - "$1/summary.json" "$(cpu_of "$1/time")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["totals"]
p99 = max((st["latency"].get("p99") or 0) for st in s["steps"])
print(t["requests"], sys.argv[2], p99, t["requestRate"], t["errors"])
PY
}

# Runs redis-benchmark for `n` requests; prints "requests cpu_s p99_ms rate".
run_benchmark() { # $1 dir $2 cmd $3 pipeline $4 n
    mkdir -p "$1"
    /usr/bin/time -f '%U %S %M' -o "$1/time" timeout $((DURATION * 4 + 30)) \
        "${pin_client[@]}" redis-benchmark -h 127.0.0.1 -p "$PORT" -c "$CONNECTIONS" -n "$4" \
        -t "$2" -P "$3" -d 3 --csv > "$1/out.csv" 2>"$1/stderr" || true
    python3 - "$1/out.csv" "$(cpu_of "$1/time")" "$4" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head, row = rows[0], rows[1]
rps = float(row[head.index("rps")])
p99 = float(row[head.index("p99_latency_ms")])
print(sys.argv[3], sys.argv[2], p99, rps, 0)
PY
}

declare -A N
RESULTS=$OUT/results.txt
: > "$RESULTS"
for round in $(seq "$RUNS"); do
    for test in get set; do
        for p in 1 16; do
            log "round $round: $test, pipeline $p: stampede"
            r=$(run_stampede "$OUT/r$round-$test-p$p-stampede" "$test" "$p" "")
            echo "throughput $test $p stampede $r" >> "$RESULTS"
            # redis-benchmark counts requests, not seconds: as many as Stampede's first run made.
            N[$test$p]=${N[$test$p]:-$(echo "$r" | awk '{print $1}')}
            log "round $round: $test, pipeline $p: redis-benchmark -n ${N[$test$p]}"
            r=$(run_benchmark "$OUT/r$round-$test-p$p-benchmark" "$test" "$p" "${N[$test$p]}")
            echo "throughput $test $p redis-benchmark $r" >> "$RESULTS"
        done
    done
    for rate in $RATES; do
        log "round $round: get at $rate/s: stampede"
        r=$(run_stampede "$OUT/r$round-rate$rate" get 1 "$rate")
        echo "rate get $rate stampede $r" >> "$RESULTS"
    done
done

TABLE=$(python3 - "$RESULTS" "$DURATION" "$RUNS" "$CONNECTIONS" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
dur, runs, conns = sys.argv[2], sys.argv[3], sys.argv[4]
med = statistics.median
out = []
out.append(f"{conns} connections, one client thread each, pinned to one CPU; redis-server on the other. "
           f"Median of {runs} interleaved runs of {dur} s (redis-benchmark: the same request count).\n")
out.append("| Test | Pipeline | Tool | Requests per client CPU-s | Requests/s | p99 ms | Stampede ÷ redis-benchmark |")
out.append("|---|--:|---|--:|--:|--:|--:|")
for test in ["get", "set"]:
    for p in ["1", "16"]:
        per = {}
        for tool in ["stampede", "redis-benchmark"]:
            rs = [r for r in rows if r[0] == "throughput" and r[1] == test and r[2] == p and r[3] == tool]
            eff = med([float(r[4]) / max(float(r[5]), 1e-9) for r in rs])
            per[tool] = eff
            rps = med([float(r[7]) for r in rs])
            p99 = med([float(r[6]) for r in rs])
            ratio = f"{per['stampede'] / eff:.2f}×" if tool == "redis-benchmark" else ""
            out.append(f"| {test.upper()} | {p} | {tool} | {eff:,.0f} | {rps:,.0f} | {p99:.3f} | {ratio} |")
out.append("\nFixed rate (Stampede only: redis-benchmark has no rate option), GET, latency from the intended start:\n")
out.append("| Target/s | Achieved/s | Rate error | p99 ms | Errors |")
out.append("|--:|--:|--:|--:|--:|")
for rate in sorted({r[2] for r in rows if r[0] == "rate"}, key=int):
    rs = [r for r in rows if r[0] == "rate" and r[2] == rate]
    ach = med([float(r[7]) for r in rs])
    out.append(f"| {int(rate):,} | {ach:,.0f} | {100 * (ach / int(rate) - 1):+.2f}% | {med([float(r[6]) for r in rs]):.3f} | {med([float(r[8]) for r in rs]):.0f} |")
print("\n".join(out))
PY
)
echo "$TABLE"
echo "Raw results: $OUT"
if [[ $WRITE_MD == 1 ]]; then
    python3 - "$ROOT/BENCHMARKS.md" "$TABLE" "$(date +%Y-%m-%d)" "$(redis-server --version | awk '{print $3}')" <<'PY'
import sys, re
path, table, day, ver = sys.argv[1:]
body = (f"<!-- redis-bench:start -->\n## Redis: Stampede vs redis-benchmark ({day})\n\n"
        f"`bench/redis.sh` (redis-server {ver}). Reproduce: `bench/redis.sh`.\n\n{table}\n<!-- redis-bench:end -->")
text = open(path).read()
if "<!-- redis-bench:start -->" in text:
    text = re.sub(r"<!-- redis-bench:start -->.*?<!-- redis-bench:end -->", lambda m: body, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + body + "\n"
open(path, "w").write(text)
PY
fi
