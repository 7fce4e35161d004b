#!/usr/bin/env bash
# make bench-scale: vmdrain's sync of a large cluster against a client-go
# peer, on a bed of its own (sim mode; the benchmark stops its kwok and
# simulator), stopped however the run ends. Flags go to the benchmark:
#   make bench-scale SCALE_FLAGS="--nodes 500 --pods 10000 --vmis 5000 --reps 3"
#   make bench-scale SCALE_FLAGS=--large
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
root=$PWD
out=$root/build/bench
mkdir -p "$out"

bash e2e/bed.sh build >&2
(cd e2e && go build -buildvcs=false -o "$out/informerpeer" ./cmd/informerpeer &&
    go build -buildvcs=false -o "$out/scalebench" ./cmd/scalebench)

export VMDRAIN_KUBEVIRT=sim VMDRAIN_BED=scale-$$
trap 'bash "$root/e2e/bed.sh" down >/dev/null 2>&1 || true' EXIT
bash e2e/bed.sh up >/dev/null
# shellcheck disable=SC2086 # SCALE_FLAGS is a list of flags
"$out/scalebench" --vmdrain "$root/bin/vmdrain" --peer "$out/informerpeer" ${SCALE_FLAGS:-}
