#!/usr/bin/env bash
# bench/redis-clients.sh: Stampede's own RESP codec against the `redis` crate (1.x) and `fred`
# (10.x), driven alike by bench/redis-clients/ (a standalone program, not in the workspace):
# one private redis-server on 127.0.0.1, 50 connections each owned by one task on one
# current-thread runtime (Stampede: --threads 1), a closed loop of GET or SET with a 100-byte
# value, without pipelining and with 16 commands per round trip, every latency into an HDR
# histogram. Requests per client CPU-second (user + system of the client process, GNU time),
# median of interleaved rounds. Issue 11: the figures that chose the Redis client.
#
#   bench/redis-clients.sh             10 s runs, 3 rounds, rewrites the redis-clients block of BENCHMARKS.md
#   QUICK=1 bench/redis-clients.sh     2 s runs, 1 round, results in bench/results/ only
#
# Environment (defaults in brackets):
#   DURATION [10, QUICK: 2]  seconds per run      RUNS [3, QUICK: 1]  interleaved rounds
#   CONNECTIONS [50]  PIPELINES ["1 16"]  VALUE_SIZE [100]  STAMPEDE_BIN=path  use this binary
#   SERVER_CPU [0], CLIENT_CPU [1]: redis-server and each client pinned (taskset) when >= 2 CPUs
#   WRITE_MD [1, QUICK: 0]   write the table into BENCHMARKS.md (between redis-clients markers)
#
# All traffic goes to 127.0.0.1 only. Each run is bounded: DURATION seconds, at most
# 500,000,000 requests (bench program), and a `timeout` of DURATION + 30 s around every client.
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
PIPELINES=${PIPELINES:-1 16}
VALUE_SIZE=${VALUE_SIZE:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEY=key:bench

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "DURATION must be whole seconds, got '$DURATION'" >&2; exit 2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer, got '$RUNS'" >&2; exit 2; }
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || { echo "CONNECTIONS must be a positive integer, got '$CONNECTIONS'" >&2; exit 2; }
[[ $VALUE_SIZE =~ ^[1-9][0-9]*$ ]] || { echo "VALUE_SIZE must be a positive integer, got '$VALUE_SIZE'" >&2; exit 2; }

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for b in redis-server redis-cli; do
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
# The comparison program: its own lock file and target directory, outside the workspace.
CLIENTS_DIR=$ROOT/bench/redis-clients
CARGO_TARGET_DIR=$CLIENTS_DIR/target cargo build --release --locked \
    --manifest-path "$CLIENTS_DIR/Cargo.toml" >&2
CLIENTS=$CLIENTS_DIR/target/release/redis-clients-bench

OUT=$ROOT/bench/results/redis-clients-$(date +%Y%m%d-%H%M%S)$([[ $QUICK == 1 ]] && echo -quick || true)
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/stampede-redis-clients.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${pin_server[@]}" redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
    --dir "$WORK" --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
cleanup() {
    if [[ -f $WORK/redis.pid ]]; then
        kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
        sleep 0.2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$PORT" ping >/dev/null || die "redis-server did not start on $PORT"

VALUE=$(head -c "$VALUE_SIZE" /dev/zero | tr '\0' x)
preload() { redis-cli -p "$PORT" set "$KEY" "$VALUE" >/dev/null; }

loadtest() { # $1 command  $2 pipeline
    local cmd
    case $1 in
        get) cmd="[GET, \"$KEY\"]" ;;
        set) cmd="[SET, \"$KEY\", \"$VALUE\"]" ;;
    esac
    cat <<YAML
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: { name: redis-clients }
spec:
  connections: $CONNECTIONS
  duration: ${DURATION}s
  scenario:
    connection: { redis: { url: "redis://127.0.0.1:$PORT" } }
    steps:
      - { name: $1, command: $cmd$([[ $2 -gt 1 ]] && echo ", pipeline: $2" || true) }
YAML
}

# "user_s sys_s" of a run, from GNU time's output.
cpu_of() { awk 'NR==1 {print $1, $2}' "$1"; }

# Each prints "requests user_s sys_s p99_ms requests_per_s errors".
run_stampede() { # $1 dir $2 cmd $3 pipeline
    mkdir -p "$1"
    loadtest "$2" "$3" > "$1/loadtest.yaml"
    /usr/bin/time -f '%U %S %M' -o "$1/time" timeout $((DURATION + 30)) \
        "${pin_client[@]}" "$BIN" run "$1/loadtest.yaml" --quiet --threads 1 --out "$1/summary.json" >/dev/null 2>"$1/stderr" || true
    python3 - "$1/summary.json" $(cpu_of "$1/time") <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["totals"]
p99 = max((st["latency"].get("p99") or 0) for st in s["steps"])
print(t["requests"], sys.argv[2], sys.argv[3], p99, t["requestRate"], t["errors"])
PY
}

run_client() { # $1 dir $2 crate $3 cmd $4 pipeline
    mkdir -p "$1"
    /usr/bin/time -f '%U %S %M' -o "$1/time" timeout $((DURATION + 30)) \
        "${pin_client[@]}" "$CLIENTS" --client "$2" --host 127.0.0.1 --port "$PORT" \
        --connections "$CONNECTIONS" --duration "$DURATION" --command "$3" --pipeline "$4" \
        --value-size "$VALUE_SIZE" --key "$KEY" > "$1/out" 2>"$1/stderr" || true
    # out: requests errors elapsed_s requests_per_s p50_ms p99_ms max_ms window_cpu_s
    read -r req err _ rps _ p99 _ _ < "$1/out" || die "$2 $3 pipeline $4 printed nothing (see $1/stderr)"
    echo "$req $(cpu_of "$1/time") $p99 $rps $err"
}

TOOLS=(stampede redis fred)
RESULTS=$OUT/results.txt
: > "$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$RUNS"); do
    # A different tool goes first each round.
    shift_by=$(( (round - 1) % ${#TOOLS[@]} ))
    order=("${TOOLS[@]:shift_by}" "${TOOLS[@]:0:shift_by}")
    for test in get set; do
        for p in $PIPELINES; do
            for tool in "${order[@]}"; do
                log "round $round: $test, pipeline $p: $tool"
                preload
                dir=$OUT/r$round-$test-p$p-$tool
                if [[ $tool == stampede ]]; then
                    r=$(run_stampede "$dir" "$test" "$p")
                else
                    r=$(run_client "$dir" "$tool" "$test" "$p")
                fi
                echo "$test $p $tool $r" >> "$RESULTS"
            done
        done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

TABLE=$(python3 - "$RESULTS" "$DURATION" "$RUNS" "$CONNECTIONS" "$VALUE_SIZE" <<'PY'
import sys, statistics
# test pipeline tool requests user_s sys_s p99_ms requests_per_s errors
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
dur, runs, conns, size = sys.argv[2:6]
med = statistics.median
names = {"stampede": "Stampede (own RESP codec)", "redis": "`redis` 1.8 (MultiplexedConnection per task)",
         "fred": "`fred` 10.1 (one Client per task)"}
out = [f"{conns} connections, one task each on one current-thread runtime, client pinned to one CPU, "
       f"redis-server on the other; GET and SET of a {size}-byte value. Median of {runs} interleaved "
       f"runs of {dur} s. Requests per client CPU-s: requests ÷ the client process's user + system CPU "
       f"seconds (GNU time); the two µs columns split that CPU per request.\n",
       "| Test | Pipeline | Client | Requests per client CPU-s | Stampede ÷ client | User µs / request | System µs / request | Requests/s | p99 ms | Errors |",
       "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
tests = []
for r in rows:
    if (r[0], r[1]) not in tests:
        tests.append((r[0], r[1]))
for test, p in tests:
    eff = {}
    for tool in ["stampede", "redis", "fred"]:
        rs = [r for r in rows if r[0] == test and r[1] == p and r[2] == tool]
        if rs:
            eff[tool] = med([float(r[3]) / max(float(r[4]) + float(r[5]), 1e-9) for r in rs])
    for tool in ["stampede", "redis", "fred"]:
        rs = [r for r in rows if r[0] == test and r[1] == p and r[2] == tool]
        if not rs:
            continue
        ratio = "" if tool == "stampede" or "stampede" not in eff else f"{eff['stampede'] / eff[tool]:.2f}×"
        user = med([1e6 * float(r[4]) / max(float(r[3]), 1) for r in rs])
        system = med([1e6 * float(r[5]) / max(float(r[3]), 1) for r in rs])
        rps = med([float(r[7]) for r in rs])
        p99 = med([float(r[6]) for r in rs])
        errs = sum(int(float(r[8])) for r in rs)
        out.append(f"| {test.upper()} | {p} | {names[tool]} | {eff[tool]:,.0f} | {ratio} | {user:.2f} | {system:.2f} | {rps:,.0f} | {p99:.3f} | {errs} |")
print("\n".join(out))
PY
)
MACHINE="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/{print $2}') GiB, Linux $(uname -r), redis-server $(redis-server --version | awk '{print $3}' | sed 's/v=//'); load average $LOAD_START at the start, $LOAD_END at the end"
echo "$TABLE"
echo "Machine: $MACHINE"
echo "Raw results: $OUT"
printf '%s\n\nMachine: %s\n' "$TABLE" "$MACHINE" > "$OUT/table.md"
if [[ $WRITE_MD == 1 ]]; then
    python3 - "$ROOT/BENCHMARKS.md" "$TABLE" "$(date +%Y-%m-%d)" "$MACHINE" "$DURATION" "$RUNS" "${STAMPEDE_BIN:-}" <<'PY'
import sys, re
path, table, day, machine, dur, runs, given = sys.argv[1:]
cmd = "bench/redis-clients.sh" if (dur, runs) == ("10", "3") else f"DURATION={dur} RUNS={runs} bench/redis-clients.sh"
if given:
    cmd = f"STAMPEDE_BIN={given} {cmd}"
body = (f"<!-- redis-clients-bench:start -->\n"
        f"Measured {day} with `{cmd}` ({machine}).\n\n{table}\n<!-- redis-clients-bench:end -->")
text = open(path).read()
if "<!-- redis-clients-bench:start -->" not in text:
    sys.exit("BENCHMARKS.md has no redis-clients-bench markers: add the subsection first")
text = re.sub(r"<!-- redis-clients-bench:start -->.*?<!-- redis-clients-bench:end -->", lambda m: body, text, flags=re.S)
open(path, "w").write(text)
PY
fi
