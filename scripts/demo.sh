#!/usr/bin/env bash
# make demo: a local control plane (the test bed), vmdrain running against
# it, 4 nodes and 12 simulated VMs, then one node drained live.
#
#   scripts/demo.sh up     run the demo; leaves the cluster and vmdrain running
#   scripts/demo.sh down   stop vmdrain and the bed
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
export VMDRAIN_BED=${VMDRAIN_BED:-demo}
# slower simulated time than the tests, so the drain can be watched
export VMDRAIN_SIM_TIME_SCALE=${VMDRAIN_SIM_TIME_SCALE:-0.05}
root=$PWD
dir=$(bash e2e/bed.sh dir)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

down() {
    if [[ -f $dir/vmdrain.pid ]]; then
        kill -TERM "$(cat "$dir/vmdrain.pid")" 2>/dev/null || true
        sleep 1
    fi
    bash e2e/bed.sh down
}

# bar DONE TOTAL: a 30-column progress bar
bar() {
    local done=$1 total=$2 width=30 fill=0
    ((total > 0)) && fill=$((done * width / total))
    printf '[%s%s]' "$(printf '#%.0s' $(seq 1 $fill) 2>/dev/null | head -c $fill)" \
        "$(printf '.%.0s' $(seq 1 $((width - fill))) 2>/dev/null | head -c $((width - fill)))"
}

ann() { kubectl get node "$1" -o "jsonpath={.metadata.annotations.vmdrain\.io/$2}"; }

show() {
    local node=$1 state progress
    state=$(ann "$node" state)
    progress=$(ann "$node" progress)
    local done=${progress%/*} total=${progress#*/}
    printf '%-8s %-10s %s %-6s migrating=%s pending=%s blocked=%s\n' "$node" "${state:--}" \
        "$(bar "${done:-0}" "${total:-0}")" "${progress:-0/0}" "$(ann "$node" migrating)" \
        "$(ann "$node" pending)" "$(ann "$node" blocked)"
}

up() {
    say "building vmdrain and the test bed (cached after the first run)"
    make -s bin/vmdrain
    bash e2e/bed.sh build >/dev/null
    [[ -f $dir/env ]] || bash e2e/bed.sh up >/dev/null
    # shellcheck disable=SC1091
    . "$dir/env"
    kubectl version 2>/dev/null | sed 's/^/  /'

    say "configuration: the seed's kubevirt-config format"
    kubectl create namespace vmdrain-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    kubectl apply -f - <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: vmdrain-config
  namespace: vmdrain-system
data:
  feature-gates: "DataVolumes,LiveMigration"
  migrations: |-
    parallelMigrationsPerCluster: 5
    parallelOutboundMigrationsPerNode: 2
    bandwidthPerMigration: 64Mi
    completionTimeoutPerGiB: 800
    progressTimeout: 150
YAML

    say "starting vmdrain"
    if [[ ! -f $dir/vmdrain.pid ]] || ! kill -0 "$(cat "$dir/vmdrain.pid")" 2>/dev/null; then
        setsid "$root/bin/vmdrain" --kubeconfig "$KUBECONFIG" run --config vmdrain-system/vmdrain-config \
            >"$dir/logs/vmdrain.log" 2>&1 </dev/null &
        echo $! >"$dir/vmdrain.pid"
    fi
    echo "  pid $(cat "$dir/vmdrain.pid"), log $dir/logs/vmdrain.log"

    say "4 nodes (kwok) and 12 VMs (KubeVirt simulator)"
    for i in 1 2 3 4; do
        kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: worker-$i
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {type: kwok, kubernetes.io/hostname: worker-$i}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
YAML
    done
    kubectl wait --for=condition=Ready node/worker-1 node/worker-2 node/worker-3 node/worker-4 --timeout=60s >/dev/null
    vm() { sim vm create --namespace demo "$@" | sed 's/^/  /'; }
    if ! kubectl get vmi -n demo db-1 >/dev/null 2>&1; then
        vm --name db-1 --node worker-1 --memory 8Gi --strategy LiveMigrate
        vm --name web-1 --node worker-1 --memory 2Gi --strategy LiveMigrate
        vm --name web-2 --node worker-1 --memory 2Gi --strategy LiveMigrate
        vm --name cache-1 --node worker-1 --memory 4Gi --strategy LiveMigrate --disk container
        vm --name build-1 --node worker-1 --memory 1Gi --strategy LiveMigrate
        vm --name legacy-1 --node worker-1 --memory 2Gi --strategy LiveMigrate --pvc-rwo
        vm --name batch-1 --node worker-1 --memory 1Gi --strategy None
        vm --name web-3 --node worker-2 --memory 2Gi --strategy LiveMigrate
        vm --name db-2 --node worker-2 --memory 8Gi --strategy LiveMigrate
        vm --name tmp-1 --node worker-3 --memory 1Gi --strategy LiveMigrateIfPossible --bridge
        vm --name web-4 --node worker-3 --memory 2Gi --strategy LiveMigrate
        vm --name ci-1 --node worker-4 --memory 4Gi --strategy LiveMigrate
    fi
    kubectl get vmi -n demo -o wide

    say "kubectl taint nodes worker-1 kubevirt.io/drain=draining:NoSchedule"
    kubectl taint nodes worker-1 kubevirt.io/drain=draining:NoSchedule --overwrite >/dev/null
    local state="" i
    for ((i = 0; i < 240; i++)); do
        show worker-1
        kubectl get vmim -n demo -l vmdrain.io/node=worker-1 --no-headers 2>/dev/null \
            -o custom-columns=N:.metadata.name,P:.status.phase,V:.spec.vmiName |
            awk '$2 != "Succeeded" {printf "           migration %-22s %-16s vmi %s\n", $1, $2, $3}'
        state=$(ann worker-1 state)
        [[ $state == Drained || $state == Blocked || $state == Failed ]] && break
        sleep 1
    done
    say "result: state $state"
    echo "  message: $(ann worker-1 message)"
    echo "  blocked: $(ann worker-1 blocked)"
    kubectl get nodes
    kubectl get vmi -n demo -o wide
    kubectl get events --field-selector involvedObject.name=worker-1 --sort-by=.lastTimestamp |
        tail -n 12 | sed 's/^/  /'

    say "kubectl taint nodes worker-1 kubevirt.io/drain-   (the drain ends)"
    kubectl taint nodes worker-1 kubevirt.io/drain- >/dev/null
    for ((i = 0; i < 30; i++)); do
        [[ $(kubectl get node worker-1 -o 'jsonpath={.spec.unschedulable}') != true ]] && break
        sleep 1
    done
    show worker-1
    kubectl get nodes

    say "the cluster keeps running"
    echo "  export KUBECONFIG=$KUBECONFIG"
    echo "  vmdrain log: $dir/logs/vmdrain.log"
    echo "  stop everything: make demo-down"
}

case ${1:-up} in
up) up ;;
down) down ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
