#!/usr/bin/env bash
# The operator's scenario on a real cluster (kind), for users who have Docker and kind; the
# build machines have no cluster, so CI runs the same flow against the in-process fake API
# server instead (operator/tests/controller.rs).
#
#   tests/e2e/kind.sh            # creates (or reuses) cluster "stampede-e2e"
#   KEEP=1 tests/e2e/kind.sh     # leave the cluster and namespaces for a look around
#
# It builds the image, installs the CRD and the operator (deploy/), runs the built-in target as
# a Deployment, then: apply examples/flash-sale.yaml (pointed at the target) → Running with
# 3/3 runners → patch the rate → achieved rate follows → delete a runner pod → it is replaced
# → an invalid LoadTest gets Invalid and no pods → delete → pods and token gone.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-stampede-e2e}
IMAGE=${IMAGE:-stampede:e2e}
NS=stampede-e2e
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind.sh needs $tool on PATH" >&2; exit 1; }
done
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; kubectl -n "$NS" get lt,pods -o wide >&2 || true; exit 1; }
# Polls `cmd` (a string) until it prints `want`, for at most `secs` seconds.
wait_for() {
  local what=$1 want=$2 secs=$3 cmd=$4 got=""
  for _ in $(seq "$secs"); do
    got=$(eval "$cmd" 2>/dev/null || true)
    [[ "$got" == "$want" ]] && { echo "ok: $what"; return 0; }
    sleep 1
  done
  fail "$what: wanted '$want', last saw '$got'"
}

step "cluster and image"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
kubectl config use-context "kind-$CLUSTER"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "CRD and operator"
kubectl apply -f crds/
sed "s#ghcr.io/stampede-dev/stampede:0.1.0#$IMAGE#g" deploy/operator.yaml | kubectl apply -f -
kubectl -n stampede-system rollout status deploy/stampede-operator --timeout=180s
kubectl explain loadtest.spec.rate | grep -q "iterations per second" || fail "kubectl explain shows no field docs"

step "demo target"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: { name: target }
spec:
  selector: { matchLabels: { app: target } }
  template:
    metadata: { labels: { app: target } }
    spec:
      containers:
        - name: target
          image: $IMAGE
          args: ["target", "--listen", "0.0.0.0:8080"]
          ports: [ { containerPort: 8080 } ]
---
apiVersion: v1
kind: Service
metadata: { name: target }
spec:
  selector: { app: target }
  ports: [ { port: 8080 } ]
YAML
kubectl -n "$NS" rollout status deploy/target --timeout=120s

step "apply flash-sale"
sed -e "s#http://127.0.0.1:8080#http://target.$NS.svc:8080#" -e 's#duration: 30s#duration: 5m#' \
  -e 's#rate: 3000#rate: 300#' -e 's#"rate > 2900"#"rate > 1"#' examples/flash-sale.yaml \
  | kubectl -n "$NS" apply -f -
wait_for "phase Running" Running 180 "kubectl -n $NS get lt flash-sale -o jsonpath='{.status.phase}'"
wait_for "3/3 runners" 3/3 60 "kubectl -n $NS get lt flash-sale -o jsonpath='{.status.runners.summary}'"
kubectl -n "$NS" get lt

step "patch the rate live"
kubectl -n "$NS" patch lt flash-sale --type merge -p '{"spec":{"rate":600}}'
wait_for "achieved rate near 600" yes 30 \
  "kubectl -n $NS get lt flash-sale -o jsonpath='{.status.current.rate}' | awk '{print (\$1 > 570 && \$1 < 630) ? \"yes\" : \$1}'"

step "lose a runner"
victim=$(kubectl -n "$NS" get pods -l stampede.dev/runner-index=1 -o name | head -1)
kubectl -n "$NS" delete "$victim" --wait=false
wait_for "runner 1 replaced" 1 60 \
  "kubectl -n $NS get pods -l stampede.dev/runner-index=1 --field-selector=status.phase=Running -o name | grep -v ${victim#pod/} | wc -l | tr -d ' '"
wait_for "3/3 runners again" 3/3 60 "kubectl -n $NS get lt flash-sale -o jsonpath='{.status.runners.summary}'"

step "an invalid LoadTest"
kubectl -n "$NS" apply -f - <<YAML
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: { name: broken }
spec:
  connections: 5
  duration: 10s
  thresholds: ["p99(nope) < 1s"]
  scenario:
    connection: { http: { url: "http://target.$NS.svc:8080" } }
    steps: [ { name: home, request: { path: / } } ]
YAML
wait_for "phase Invalid" Invalid 30 "kubectl -n $NS get lt broken -o jsonpath='{.status.phase}'"
[[ $(kubectl -n "$NS" get pods -l stampede.dev/loadtest=broken -o name | wc -l) == 0 ]] || fail "pods for an invalid test"

step "admission: the API server refuses what the CRD's rules can tell"
CEL_ERR=$(mktemp)
if kubectl -n "$NS" apply -f - 2>"$CEL_ERR" <<YAML
apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: { name: both }
spec:
  connections: 5
  duration: 10s
  stages: [ { duration: 5s, connections: 10 } ]
  scenario:
    connection: { http: { url: "http://target.$NS.svc:8080" } }
    steps: [ { name: home, request: { path: / } } ]
YAML
then
    fail "a LoadTest with both duration and stages was admitted"
fi
grep -q "spec.duration or spec.stages" "$CEL_ERR" || fail "the refusal does not name the field: $(cat "$CEL_ERR")"

step "delete"
kubectl -n "$NS" delete lt flash-sale broken --timeout=60s
wait_for "no runner pods" 0 60 "kubectl -n $NS get pods -l app.kubernetes.io/managed-by=stampede-operator -o name | wc -l | tr -d ' '"
wait_for "no token Secret" 0 60 "kubectl -n $NS get secret flash-sale-runner-token -o name 2>/dev/null | wc -l | tr -d ' '"
kubectl -n stampede-system logs -l app.kubernetes.io/name=stampede-operator --tail=-1 | grep -q "final results flushed" || fail "no flushed results in the operator log"

echo "PASS: kind e2e"
[[ -n "${KEEP:-}" ]] || kind delete cluster --name "$CLUSTER"
