#!/usr/bin/env bash
# Regenerates crds/ from the LoadTest types (api/src/spec.rs, api/src/crd.rs).
# operator/tests/crd.rs fails while the committed file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p crds
cargo run --quiet --locked -p stampede-operator -- crd > crds/loadtests.stampede.dev.yaml
echo "wrote crds/loadtests.stampede.dev.yaml"
