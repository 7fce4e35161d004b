#!/usr/bin/env bash
# make bench: vmdrain's decode benchmark and client-go's decoding of the
# same JSON (e2e/cmd/decodepeer), with the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
out=$PWD/build/bench
(cd e2e && go build -buildvcs=false -o "$out/decodepeer" ./cmd/decodepeer)
"$out/decodepeer" --bench "$out/decode_bench" "$@"
