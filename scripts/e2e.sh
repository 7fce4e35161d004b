#!/usr/bin/env bash
# make e2e: the test bed's smoke suite on a bed of its own, then vmdrain's
# end-to-end tests on a fresh bed (with the real KubeVirt by default). Each
# bed is stopped however the tests end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
root=$PWD

bash e2e/bed.sh build >&2
# VMDRAIN_E2E_RUN=REGEX runs only those end-to-end tests (no smoke suite);
# VMDRAIN_BIN=PATH tests that vmdrain binary instead of bin/vmdrain
run=${VMDRAIN_E2E_RUN:-}

# the image TestChartImageInCluster and the HA tests run with docker, built
# from this checkout
needs_image=false
for t in TestChartImageInCluster TestChartHelmTest TestLeaderFailoverPartition TestLeaderKilledRepeatedly \
    TestLeaderRollingUpdate; do
    [[ $t =~ $run ]] && needs_image=true
done
if [[ -n $run ]] && ! $needs_image; then
    : # not needed
elif docker info >/dev/null 2>&1; then
    VMDRAIN_IMAGE=$(bash scripts/image.sh | tail -1)
    export VMDRAIN_IMAGE
else
    echo "e2e: no usable docker engine: the image is not built and its test is skipped" >&2
fi
# the smoke suite in the fast mode (the simulator plays KubeVirt); vmdrain's
# own tests beside KubeVirt's real virt-controller and virt-api unless
# VMDRAIN_KUBEVIRT says otherwise
[[ -n $run ]] || VMDRAIN_KUBEVIRT=sim VMDRAIN_BED=smoke-$$ bash e2e/bed.sh smoke

export VMDRAIN_KUBEVIRT=${VMDRAIN_KUBEVIRT:-real}
echo "e2e: vmdrain's end-to-end tests with VMDRAIN_KUBEVIRT=$VMDRAIN_KUBEVIRT" >&2
export VMDRAIN_BED=operator-$$
trap 'bash "$root/e2e/bed.sh" down >/dev/null 2>&1 || true' EXIT
bash e2e/bed.sh up >/dev/null
cd e2e
VMDRAIN_BIN=${VMDRAIN_BIN:-$root/bin/vmdrain} go test -count=1 -timeout "${VMDRAIN_E2E_TIMEOUT:-45m}" -v -run "${run:-.}" ./operator/ 2>&1 |
    grep -v 'msg="api request done"'
