#!/usr/bin/env bash
# make fuzz: a libFuzzer campaign for each driver named (build/fuzz/lf/NAME,
# built by make), FUZZ_JOBS at a time, each until FUZZ_RUNS executions or
# FUZZ_SECONDS, whichever comes first, with its dictionary (fuzz/*.dict).
# New inputs land in build/fuzz/new-NAME; those that add coverage are then
# merged into fuzz/corpus/NAME, which make fuzz-replay (and so make test)
# replays. Crashes are kept in build/fuzz/crash-NAME and fail the run. One
# line per driver: executions, seconds, coverage (edges, features), corpus
# before and after the merge, crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-900} runs=${FUZZ_RUNS:-10000000} jobs=${FUZZ_JOBS:-2}
out=build/fuzz

dict_of() {
	case $1 in
	http) echo fuzz/http.dict ;;
	config | kubeconfig) echo fuzz/yaml.dict ;;
	quantity | timefmt) echo "fuzz/$1.dict" ;;
	*) echo fuzz/json.dict ;;
	esac
}

campaign() {
	local n=$1 bin=$out/lf/$1 log=$out/log-$1.txt
	[[ -x $bin ]] || { echo "$bin: not built" >&2; return 1; }
	rm -rf "$out/new-$n" "$out/crash-$n"
	mkdir -p "$out/new-$n" "$out/crash-$n"
	local before start rc=0
	before=$(find "fuzz/corpus/$n" -type f | wc -l)
	start=$(date +%s)
	"$bin" -runs="$runs" -max_total_time="$secs" -print_final_stats=1 -dict="$(dict_of "$n")" \
		-artifact_prefix="$out/crash-$n/" "$out/new-$n" "fuzz/corpus/$n" >"$log" 2>&1 || rc=$?
	local took=$(($(date +%s) - start))
	"$bin" -merge=1 "fuzz/corpus/$n" "$out/new-$n" >"$out/merge-$n.txt" 2>&1
	local execs cov ft after crashes
	execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
	ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
	after=$(find "fuzz/corpus/$n" -type f | wc -l)
	crashes=$(find "$out/crash-$n" -type f | wc -l)
	printf '%-12s %10s execs %5ss  cov %5s ft %6s  corpus %4s -> %4s  crashes %s  (exit %s)\n' \
		"$n" "${execs:-?}" "$took" "${cov:-?}" "${ft:-?}" "$before" "$after" "$crashes" "$rc" >"$out/result-$n.txt"
	cat "$out/result-$n.txt"
	[[ $crashes -eq 0 && $rc -eq 0 ]]
}

for n in "$@"; do
	campaign "$n" >/dev/null &
	while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
done
wait
echo "fuzz: campaigns of ${runs} executions or ${secs}s each, ${jobs} at a time:"
fail=0
for n in "$@"; do
	if [[ -f $out/result-$n.txt ]]; then cat "$out/result-$n.txt"; else echo "$n: no result"; fi
	grep -q 'crashes 0  (exit 0)' "$out/result-$n.txt" 2>/dev/null || fail=1
done
exit $fail
