#!/usr/bin/env bash
# make demo: a local control plane (the test bed), vmdrain installed with its
# Helm chart and running against it, 4 nodes and 12 simulated VMs, then one
# node drained by taint and another by kubectl drain, live.
#
#   scripts/demo.sh up     run the demo; leaves the cluster and vmdrain running
#   scripts/demo.sh down   stop vmdrain and the bed
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
export VMDRAIN_BED=${VMDRAIN_BED:-demo}
# slower simulated time than the tests, so the drain can be watched
export VMDRAIN_SIM_TIME_SCALE=${VMDRAIN_SIM_TIME_SCALE:-0.1}
root=$PWD
dir=$(bash e2e/bed.sh dir)
# vmdrain's webhook and metrics listeners on this host
wport=${VMDRAIN_DEMO_WEBHOOK_PORT:-18443}
mport=${VMDRAIN_DEMO_METRICS_PORT:-18080}

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
    make -s deps bin/vmdrain
    bash e2e/bed.sh build >/dev/null
    [[ -f $dir/env ]] || bash e2e/bed.sh up >/dev/null
    # shellcheck disable=SC1091
    . "$dir/env"
    kubectl version 2>/dev/null | sed 's/^/  /'

    say "helm install vmdrain charts/vmdrain"
    # No pod of vmdrain can run on kwok's simulated nodes, so replicas is 0
    # and vmdrain runs here as a host process, with the chart's service
    # account token and serving pair, behind the chart's webhook
    # configuration, which calls it at webhook.url. The bed installed the
    # NodeDrain CRD already (crds/), so the chart leaves it alone.
    helm upgrade --install vmdrain charts/vmdrain -n vmdrain-system --create-namespace \
        --set replicas=0 --set crds.install=false --set webhook.url="https://127.0.0.1:$wport/validate-eviction" \
        --set 'webhook.extraSANs={127.0.0.1}' --set-string 'config.featureGates=DataVolumes\,LiveMigration' |
        sed -n '1,/^NOTES/p' | grep -v '^NOTES' | sed 's/^/  /'
    kubectl -n vmdrain-system get configmap vmdrain-config -o jsonpath='{.data.migrations}' | sed 's/^/  /'
    echo

    say "starting vmdrain as system:serviceaccount:vmdrain-system:vmdrain"
    mkdir -p "$dir/vmdrain"
    kubectl -n vmdrain-system create token vmdrain --duration=24h >"$dir/vmdrain/token"
    kubectl -n vmdrain-system get secret vmdrain-tls -o 'jsonpath={.data.tls\.crt}' | base64 -d >"$dir/vmdrain/tls.crt"
    kubectl -n vmdrain-system get secret vmdrain-tls -o 'jsonpath={.data.tls\.key}' | base64 -d >"$dir/vmdrain/tls.key"
    chmod 600 "$dir/vmdrain/"*
    cat >"$dir/vmdrain/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: vmdrain
clusters:
- name: demo
  cluster:
    server: $(kubectl config view --minify -o 'jsonpath={.clusters[0].cluster.server}')
    certificate-authority-data: $(kubectl config view --raw --minify -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}')
users:
- name: vmdrain
  user:
    tokenFile: $dir/vmdrain/token
contexts:
- name: vmdrain
  context: {cluster: demo, user: vmdrain}
EOF
    if [[ ! -f $dir/vmdrain.pid ]] || ! kill -0 "$(cat "$dir/vmdrain.pid")" 2>/dev/null; then
        setsid "$root/bin/vmdrain" --kubeconfig "$dir/vmdrain/kubeconfig" run --config vmdrain-system/vmdrain-config \
            --tls-cert "$dir/vmdrain/tls.crt" --tls-key "$dir/vmdrain/tls.key" \
            --listen "127.0.0.1:$wport" --metrics-listen "127.0.0.1:$mport" \
            >"$dir/logs/vmdrain.log" 2>&1 </dev/null &
        echo $! >"$dir/vmdrain.pid"
    fi
    local i
    for ((i = 0; i < 30; i++)); do
        [[ $(curl -s -m 2 "http://127.0.0.1:$mport/readyz") == ok ]] && break
        kill -0 "$(cat "$dir/vmdrain.pid")" 2>/dev/null || {
            tail -n 20 "$dir/logs/vmdrain.log" >&2
            echo "demo: vmdrain exited (log $dir/logs/vmdrain.log)" >&2
            exit 1
        }
        sleep 1
    done
    echo "  pid $(cat "$dir/vmdrain.pid"), ready; webhook https://127.0.0.1:$wport, metrics http://127.0.0.1:$mport/metrics"
    echo "  log $dir/logs/vmdrain.log"

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
    local state=""
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

    say "kubectl drain worker-2   (the eviction webhook turns each eviction into a migration)"
    kubectl drain worker-2 --pod-selector=kubevirt.io=virt-launcher --delete-emptydir-data \
        --ignore-daemonsets --force --timeout=180s 2>&1 | sed 's/^/  /'
    show worker-2
    kubectl get vmi -n demo -o wide
    say "kubectl uncordon worker-2   (kubectl cordoned it; vmdrain leaves that cordon to the admin)"
    kubectl uncordon worker-2 | sed 's/^/  /'

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
