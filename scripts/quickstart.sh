#!/usr/bin/env bash
# The quickstart: build Stampede, start the built-in demo target on 127.0.0.1, run
# examples/quickstart.yaml against it (live table, then the summary), stop the target.
# Extra arguments go to `stampede run` (e.g. --out summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p stampede-runner
bin=target/release/stampede
listen=${STAMPEDE_TARGET_LISTEN:-127.0.0.1:8080}

"$bin" target --listen "$listen" &
target_pid=$!
trap 'kill "$target_pid" 2>/dev/null || true' EXIT

# Wait for the target to accept connections (bounded: 5 s).
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; then break; fi
  sleep 0.1
done

file=examples/quickstart.yaml
if [ "$listen" != "127.0.0.1:8080" ]; then
  file=$(mktemp --suffix=.yaml)
  sed "s#http://127.0.0.1:8080#http://$listen#" examples/quickstart.yaml > "$file"
fi
"$bin" run "$file" "$@"
