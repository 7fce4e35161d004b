#!/usr/bin/env bash
# vmdrain test bed: a real control plane (etcd, kube-apiserver, kubectl, helm,
# kwok; with VMDRAIN_KUBEVIRT=real also kube-scheduler,
# kube-controller-manager and KubeVirt's virt-controller and virt-api) built
# from Go modules, plus a KubeVirt simulator: the whole of KubeVirt in the
# fast mode (VMDRAIN_KUBEVIRT=sim, the default), only its node agent
# (virt-handler, virt-launcher) in the real one.
#
#   e2e/bed.sh build   build missing binaries into the cache, print versions
#   e2e/bed.sh up      start the bed named $VMDRAIN_BED (default "default");
#                      the last line of stdout is the kubeconfig path
#   e2e/bed.sh down    stop every process of the bed, remove its files
#   e2e/bed.sh smoke   build, up, run the Go smoke suite, down
#   e2e/bed.sh dir     print the bed directory
#
# Logs go to stderr. See docs/testbed.md.
set -euo pipefail

E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BED=${VMDRAIN_BED:-default}
BEDDIR=${TMPDIR:-/tmp}/vmdrain-bed-$BED
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vmdrain/testbed

# Candidate versions, newest first: the first that builds with this Go wins.
KUBE_VERSIONS=${VMDRAIN_KUBE_VERSIONS:-v1.37.2 v1.36.3 v1.35.4 v1.34.4}
ETCD_VERSIONS=${VMDRAIN_ETCD_VERSIONS:-v3.6.16 v3.6.15 v3.6.14 v3.6.13}
KWOK_VERSIONS=${VMDRAIN_KWOK_VERSIONS:-v0.8.0}
HELM_VERSIONS=${VMDRAIN_HELM_VERSIONS:-v3.22.0}
KUBEVIRT_VERSIONS=${VMDRAIN_KUBEVIRT_VERSIONS:-v1.8.2 v1.7.0}
# sim: the simulator plays all of KubeVirt; real: virt-controller and virt-api
# are KubeVirt's own, the simulator plays only the node agent.
KUBEVIRT_MODE=${VMDRAIN_KUBEVIRT:-sim}
# The KubeVirt CR's spec.configuration.migrations.nodeDrainTaintKey in real
# mode. The default is the configuration docs/kubevirt.md recommends beside
# vmdrain: a key nobody sets, so that only vmdrain acts on kubevirt.io/drain
# (KubeVirt's own default); kubevirt.io/drain gives a stock KubeVirt.
KUBEVIRT_DRAIN_TAINT_KEY=${VMDRAIN_KUBEVIRT_DRAIN_TAINT_KEY:-kubevirt.io/drain-by-kubevirt}
# Simulated time runs this much faster than the clock's (0.01: 100x).
SIM_TIME_SCALE=${VMDRAIN_SIM_TIME_SCALE:-0.01}
SMOKE_PKGS=(./kubevirt/ ./sim/ ./bed/ ./smoke/)

export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local

# A signal becomes an ordinary exit, so EXIT traps (cleanup) run.
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf 'bed[%s] %s\n' "$BED" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $BED =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "VMDRAIN_BED=$BED: use letters, digits, . _ -"
[[ $KUBEVIRT_MODE == sim || $KUBEVIRT_MODE == real ]] || die "VMDRAIN_KUBEVIRT=$KUBEVIRT_MODE: use sim or real"

# deps installs the few Debian packages the script uses when missing.
deps() {
	local missing=()
	command -v openssl >/dev/null || missing+=(openssl)
	command -v curl >/dev/null || missing+=(curl ca-certificates)
	command -v flock >/dev/null || missing+=(util-linux)
	command -v setsid >/dev/null || missing+=(util-linux)
	command -v go >/dev/null || die "go not found (expected /usr/local/go/bin/go)"
	((${#missing[@]} == 0)) && return
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
}

# ---------------------------------------------------------------- build

# build_tools builds what is missing and sets KUBE_DIR ETCD_DIR KWOK_DIR
# HELM_DIR KUBEVIRT_DIR (cache directories named <tool>-<version>).
build_tools() {
	mkdir -p "$CACHE"
	exec {lock}>"$CACHE/.lock"
	flock "$lock"
	local builder=$CACHE/.controlplane-builder
	(cd "$E2E/controlplane" && go build -buildvcs=false -trimpath -o "$builder.tmp" . && mv -f "$builder.tmp" "$builder")
	KUBE_DIR=$("$builder" -cache "$CACHE" -tool kube -versions "$KUBE_VERSIONS")
	ETCD_DIR=$("$builder" -cache "$CACHE" -tool etcd -versions "$ETCD_VERSIONS")
	KWOK_DIR=$("$builder" -cache "$CACHE" -tool kwok -versions "$KWOK_VERSIONS")
	HELM_DIR=$("$builder" -cache "$CACHE" -tool helm -versions "$HELM_VERSIONS")
	KUBEVIRT_DIR=$("$builder" -cache "$CACHE" -tool kubevirt -versions "$KUBEVIRT_VERSIONS")
	flock -u "$lock"
	exec {lock}>&-
	KUBE_VERSION=${KUBE_DIR##*/kube-}
	ETCD_VERSION=${ETCD_DIR##*/etcd-}
	KWOK_VERSION=${KWOK_DIR##*/kwok-}
	HELM_VERSION=${HELM_DIR##*/helm-}
	KUBEVIRT_VERSION=${KUBEVIRT_DIR##*/kubevirt-}
}

# build_sim builds the simulator into $1.
build_sim() {
	(cd "$E2E" && go build -buildvcs=false -o "$1.tmp" ./cmd/sim && mv -f "$1.tmp" "$1")
}

cmd_build() {
	deps
	build_tools
	build_sim "$CACHE/.sim-check"
	rm -f "$CACHE/.sim-check"
	echo "kubernetes $KUBE_VERSION: $("$KUBE_DIR/kube-apiserver" --version) / kubectl $("$KUBE_DIR/kubectl" version --client -o json | grep -m1 gitVersion | tr -d ' ",' | cut -d: -f2)"
	echo "etcd       $ETCD_VERSION: $("$ETCD_DIR/etcd" --version | head -1)"
	echo "kwok       $KWOK_VERSION: $("$KWOK_DIR/kwok" --version 2>&1 | head -1)"
	echo "helm       $HELM_VERSION: $("$HELM_DIR/helm" version --short)"
	echo "kubevirt   $KUBEVIRT_VERSION: virt-controller, virt-api; $(grep -c '^kind: CustomResourceDefinition' "$KUBEVIRT_DIR/crds.yaml") CRDs, webhooks and RBAC generated by its own code"
	echo "kube       $KUBE_VERSION: also kube-scheduler, kube-controller-manager"
	echo "cache      $CACHE"
}

# ---------------------------------------------------------------- up

pidfile() { echo "$BEDDIR/pids/$1.pid"; }

# start NAME CMD... runs a daemon in its own session, logs in logs/NAME.log.
start() {
	local name=$1
	shift
	setsid "$@" >"$BEDDIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$(pidfile "$name")"
	log "started $name (pid $!)"
}

# alive NAME fails (with the daemon's log tail) if it exited.
alive() {
	local pid
	pid=$(cat "$(pidfile "$1")")
	if ! running "$pid"; then
		log "$1 exited; last lines of $BEDDIR/logs/$1.log:"
		tail -n 30 "$BEDDIR/logs/$1.log" >&2 || true
		return 1
	fi
}

# wait_for WHAT DAEMON SECONDS CMD... polls CMD until it succeeds.
wait_for() {
	local what=$1 daemon=$2 timeout=$3
	shift 3
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		alive "$daemon" || die "$what: $daemon died"
		((SECONDS < deadline)) || die "$what not ready after ${timeout}s (see $BEDDIR/logs/$daemon.log)"
		sleep 0.2
	done
	log "$what ready"
}

# docker_gateway prints the address containers reach the host on.
docker_gateway() {
	local gw=""
	if command -v docker >/dev/null; then
		gw=$(timeout 10 docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null || true)
	fi
	if [[ -z $gw ]] && command -v ip >/dev/null; then
		gw=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
	fi
	echo "${gw:-172.17.0.1}"
}

is_local_ip() { command -v ip >/dev/null && ip -4 -o addr show | grep -qw "inet $1/"; }

certs() {
	local d=$BEDDIR/certs gw=$1
	(
		cd "$d"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
			-subj "/CN=vmdrain-bed-$BED-ca" 2>/dev/null
		issue() { # name subject extensions
			openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
			printf '%b' "$3" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
				-days 365 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
			rm -f "$1.csr" "$1.ext"
		}
		issue apiserver "/CN=kube-apiserver" \
			"subjectAltName=IP:127.0.0.1,IP:$gw,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
		local client="extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
		issue admin "/O=system:masters/CN=vmdrain-bed-admin" "$client"
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		# The front proxy (request header) CA: the API server publishes it in
		# kube-system/extension-apiserver-authentication, where virt-api
		# reads it to authenticate requests the API server forwards.
		openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 \
			-subj "/CN=vmdrain-bed-$BED-front-proxy-ca" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -subj "/CN=front-proxy-client" \
			-out front-proxy-client.csr 2>/dev/null
		printf '%b' "$client" >front-proxy-client.ext
		openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
			-set_serial "0x$(openssl rand -hex 8)" -days 365 -extfile front-proxy-client.ext \
			-out front-proxy-client.crt 2>/dev/null
		rm -f front-proxy-client.csr front-proxy-client.ext
		# The certificate the API server shows to admission webhooks that ask
		# for one (vmdrain's --client-ca); admission.yaml says where.
		issue webhook-client "/CN=kube-apiserver-webhook-client" "$client"
		[[ $KUBEVIRT_MODE == real ]] || exit 0
		issue kube-scheduler "/CN=system:kube-scheduler" "$client"
		issue kube-controller-manager "/CN=system:kube-controller-manager" "$client"
		# KubeVirt's components as the service accounts KubeVirt's RBAC and
		# virt-api's VMI mutator know (it drops VMI status changes from
		# anyone else).
		local sa="/O=system:serviceaccounts/O=system:serviceaccounts:kubevirt/CN=system:serviceaccount:kubevirt"
		issue virt-controller "$sa:kubevirt-controller" "$client"
		issue virt-api "$sa:kubevirt-apiserver" "$client"
		issue virt-handler "$sa:kubevirt-handler" "$client"
		issue virt-api-serving "/CN=virt-api.kubevirt.svc" \
			"subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:virt-api.kubevirt.svc\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
		issue virt-api-handler-client "/CN=virt-api" "$client"
		# virt-controller's certificate manager watches its whole directory
		# and reloads on every write there: a directory of its own.
		mkdir -p virt-controller-prom
		issue virt-controller-prom/tls "/CN=virt-controller.kubevirt.svc" \
			"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
	)
}

# admission_config PORT: the API server shows certs/webhook-client.crt to a
# webhook served at localhost:PORT, and no certificate to any other.
# (virt-api checks the certificates it is shown against the front-proxy CA,
# so the user is named for one address, not "*".)
admission_config() {
	local c=$BEDDIR/certs
	cat >"$BEDDIR/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $BEDDIR/webhook-kubeconfig
EOF
	cat >"$BEDDIR/webhook-kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
- name: "localhost:$1"
  user:
    client-certificate: $c/webhook-client.crt
    client-key: $c/webhook-client.key
EOF
}

kubeconfig() { # server [certificate name, default admin]
	local d=$BEDDIR/certs user=${2:-admin}
	cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vmdrain-bed-$BED
  cluster:
    server: $1
    certificate-authority-data: $(base64 -w0 "$d/ca.crt")
users:
- name: vmdrain-bed-admin
  user:
    client-certificate-data: $(base64 -w0 "$d/$user.crt")
    client-key-data: $(base64 -w0 "$d/$user.key")
contexts:
- name: vmdrain-bed-$BED
  context:
    cluster: vmdrain-bed-$BED
    user: vmdrain-bed-admin
current-context: vmdrain-bed-$BED
EOF
}

# pids_of_bed lists processes whose command line names the bed directory.
pids_of_bed() {
	local p
	for p in /proc/[0-9]*; do
		[[ ${p#/proc/} == "$$" || ${p#/proc/} == "$BASHPID" ]] && continue
		if tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -q -e "^$BEDDIR/" -e "=$BEDDIR/" -e "^$BEDDIR\$"; then
			echo "${p#/proc/}"
		fi
	done
}

# up_exit cleans up after a failed `up` (any exit before the bed is ready).
up_exit() {
	local rc=$?
	trap - EXIT
	((rc != 0)) || return 0
	log "up failed (exit $rc); stopping what was started"
	cmd_down || true
	exit "$rc"
}

# up_kube_controllers API_PORT SCHED_PORT KCM_PORT starts kube-scheduler and
# kube-controller-manager (real mode): target pods are scheduled by the real
# scheduler; garbage collection, namespaces, service accounts, node
# lifecycle and volume binding are the real controllers'.
up_kube_controllers() {
	local api=$1 sched=$2 kcm=$3 c=$BEDDIR/certs
	kubeconfig "https://127.0.0.1:$api" kube-scheduler >"$BEDDIR/kubeconfig.kube-scheduler"
	kubeconfig "https://127.0.0.1:$api" kube-controller-manager >"$BEDDIR/kubeconfig.kube-controller-manager"
	mkdir -p "$c/kube-scheduler-serving" "$c/kube-controller-manager-serving"
	local k=$BEDDIR/kubeconfig.kube-scheduler
	start kube-scheduler "$BEDDIR/bin/kube-scheduler" --kubeconfig "$k" \
		--authentication-kubeconfig "$k" --authorization-kubeconfig "$k" \
		--bind-address 127.0.0.1 --secure-port "$sched" --cert-dir "$c/kube-scheduler-serving" --profiling=false
	k=$BEDDIR/kubeconfig.kube-controller-manager
	start kube-controller-manager "$BEDDIR/bin/kube-controller-manager" --kubeconfig "$k" \
		--authentication-kubeconfig "$k" --authorization-kubeconfig "$k" \
		--bind-address 127.0.0.1 --secure-port "$kcm" --cert-dir "$c/kube-controller-manager-serving" \
		--service-account-private-key-file "$c/sa.key" --root-ca-file "$c/ca.crt" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file "$c/ca.crt" --cluster-signing-key-file "$c/ca.key" \
		--service-cluster-ip-range 10.0.0.0/24 --profiling=false
	wait_for kube-scheduler kube-scheduler 120 curl -skf "https://127.0.0.1:$sched/healthz"
	wait_for kube-controller-manager kube-controller-manager 120 curl -skf "https://127.0.0.1:$kcm/healthz"
}

# up_kubevirt API_PORT VC_PORT VA_PORT installs what virt-operator would
# (KubeVirt's own CRDs, RBAC, webhooks, the KubeVirt CR, kubevirt-ca) and
# runs virt-controller and virt-api out of cluster against the API server.
up_kubevirt() {
	local api=$1 vc=$2 va=$3 c=$BEDDIR/certs kubectl=$BEDDIR/bin/kubectl who
	for who in virt-controller virt-api virt-handler; do
		kubeconfig "https://127.0.0.1:$api" "$who" >"$BEDDIR/kubeconfig.$who"
	done
	"$kubectl" create namespace kubevirt >&2
	# The CRDs are about 4 MB: too large for client-side apply's annotation.
	"$kubectl" apply --server-side -f "$KUBEVIRT_DIR/crds.yaml" >/dev/null
	"$kubectl" wait --for condition=Established --timeout 120s crd --all >&2
	"$kubectl" apply --server-side -f "$KUBEVIRT_DIR/rbac.yaml" >/dev/null
	"$kubectl" -n kubevirt create configmap kubevirt-ca --from-file "ca-bundle=$c/ca.crt" >&2

	# bandwidthPerMigration: KubeVirt's default is 0 (unlimited); 64Mi makes
	# the node agent's transfers take as long as in the fast mode.
	local migrations="{\"bandwidthPerMigration\": \"64Mi\", \"nodeDrainTaintKey\": \"$KUBEVIRT_DRAIN_TAINT_KEY\"}"
	"$kubectl" apply -f - >&2 <<EOF
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata:
  name: kubevirt
  namespace: kubevirt
spec:
  configuration:
    migrations: $migrations
EOF
	# What virt-operator reports once KubeVirt is deployed: without a phase
	# the components ignore the CR's configuration; virt-api defaults a
	# VMI's architecture from status.defaultArchitecture.
	"$kubectl" -n kubevirt patch kubevirt kubevirt --subresource status --type merge -p \
		"{\"status\": {\"phase\": \"Deployed\", \"defaultArchitecture\": \"amd64\", \"observedKubeVirtVersion\": \"$KUBEVIRT_VERSION\", \"targetKubeVirtVersion\": \"$KUBEVIRT_VERSION\"}}" >&2

	start virt-controller "$BEDDIR/bin/virt-controller" --kubeconfig "$BEDDIR/kubeconfig.virt-controller" \
		--launcher-image "quay.io/kubevirt/virt-launcher:$KUBEVIRT_VERSION" --listen 127.0.0.1 --port "$vc" \
		--prom-cert-file "$c/virt-controller-prom/tls.crt" --prom-key-file "$c/virt-controller-prom/tls.key"
	start virt-api "$BEDDIR/bin/virt-api" --kubeconfig "$BEDDIR/kubeconfig.virt-api" \
		--listen 127.0.0.1 --port "$va" --ca-configmap-name kubevirt-ca \
		--tls-cert-file "$c/virt-api-serving.crt" --tls-key-file "$c/virt-api-serving.key" \
		--handler-cert-file "$c/virt-api-handler-client.crt" --handler-key-file "$c/virt-api-handler-client.key"
	wait_for virt-api virt-api 120 curl -sf --cacert "$c/ca.crt" "https://127.0.0.1:$va/healthz"
	# virt-api's webhooks as virt-operator registers them, the service
	# reference replaced by the bed's URL of virt-api.
	"$BEDDIR/bin/sim" webhooks --in "$KUBEVIRT_DIR/webhooks.yaml" --url "https://127.0.0.1:$va" --ca "$c/ca.crt" |
		"$kubectl" apply --server-side -f - >&2
	wait_for virt-controller virt-controller 120 curl -sf --cacert "$c/ca.crt" "https://127.0.0.1:$vc/leader"
}

cmd_up() {
	deps
	if [[ -d $BEDDIR ]]; then
		if [[ -n $(pids_of_bed) ]]; then
			die "bed $BED is already up in $BEDDIR (run: VMDRAIN_BED=$BED e2e/bed.sh down)"
		fi
		log "removing stale $BEDDIR"
		rm -rf "$BEDDIR"
	fi
	build_tools
	mkdir -p "$BEDDIR"/{bin,certs,logs,pids}
	mkdir -m 700 "$BEDDIR/etcd"
	trap up_exit EXIT

	local b
	local bins=("$KUBE_DIR/kube-apiserver" "$KUBE_DIR/kubectl" "$ETCD_DIR/etcd" "$KWOK_DIR/kwok" "$HELM_DIR/helm")
	if [[ $KUBEVIRT_MODE == real ]]; then
		bins+=("$KUBE_DIR/kube-scheduler" "$KUBE_DIR/kube-controller-manager" "$KUBEVIRT_DIR/virt-controller" "$KUBEVIRT_DIR/virt-api")
	fi
	for b in "${bins[@]}"; do
		ln -s "$b" "$BEDDIR/bin/"
	done
	build_sim "$BEDDIR/bin/sim"
	local kubectl=$BEDDIR/bin/kubectl

	local gw advertise reconciler=lease
	gw=$(docker_gateway)
	advertise=$gw
	if ! is_local_ip "$gw"; then
		advertise=127.0.0.1
		reconciler=none # a loopback address cannot be an endpoint
	fi
	certs "$gw"

	# Ports are picked free and bound right away; the lock keeps two beds
	# starting at once from picking the same ones.
	exec {plock}>"${TMPDIR:-/tmp}/vmdrain-bed-ports.lock"
	flock "$plock"
	local ports etcd_port peer_port api_port kwok_port sim_port sched_port kcm_port vc_port va_port wh_port
	ports=$("$BEDDIR/bin/sim" free-ports 10)
	read -r etcd_port peer_port api_port kwok_port sim_port sched_port kcm_port vc_port va_port wh_port <<<"$(echo $ports)"
	admission_config "$wh_port"

	start etcd "$BEDDIR/bin/etcd" --name "bed-$BED" --data-dir "$BEDDIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "bed-$BED=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
	wait_for etcd etcd 60 curl -sf "http://127.0.0.1:$etcd_port/health"

	local c=$BEDDIR/certs
	start kube-apiserver "$BEDDIR/bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 0.0.0.0 --secure-port "$api_port" --advertise-address "$advertise" \
		--endpoint-reconciler-type "$reconciler" \
		--cert-dir "$c" --tls-cert-file "$c/apiserver.crt" --tls-private-key-file "$c/apiserver.key" \
		--client-ca-file "$c/ca.crt" \
		--authorization-mode Node,RBAC \
		--service-account-key-file "$c/sa.pub" --service-account-signing-key-file "$c/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --profiling=false \
		--requestheader-client-ca-file "$c/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
		--requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
		--requestheader-extra-headers-prefix X-Remote-Extra- \
		--proxy-client-cert-file "$c/front-proxy-client.crt" --proxy-client-key-file "$c/front-proxy-client.key" \
		--admission-control-config-file "$BEDDIR/admission.yaml"
	wait_for kube-apiserver kube-apiserver 180 \
		curl -sf --cacert "$c/ca.crt" --cert "$c/admin.crt" --key "$c/admin.key" "https://127.0.0.1:$api_port/readyz"

	kubeconfig "https://127.0.0.1:$api_port" >"$BEDDIR/kubeconfig"
	kubeconfig "https://$gw:$api_port" >"$BEDDIR/kubeconfig.docker"
	export KUBECONFIG=$BEDDIR/kubeconfig

	if [[ $KUBEVIRT_MODE == real ]]; then
		up_kube_controllers "$api_port" "$sched_port" "$kcm_port"
		up_kubevirt "$api_port" "$vc_port" "$va_port"
	else
		"$kubectl" apply -f "$E2E/fixtures/kubevirt-crds.yaml" >&2
		"$kubectl" wait --for condition=Established --timeout 60s \
			crd/virtualmachineinstances.kubevirt.io crd/virtualmachineinstancemigrations.kubevirt.io \
			crd/migrationpolicies.migrations.kubevirt.io crd/kubevirts.kubevirt.io >&2
	fi
	# vmdrain's own CustomResourceDefinitions (the chart installs the same)
	"$kubectl" apply -f "$E2E/../crds/" >&2
	"$kubectl" wait --for condition=Established --timeout 60s crd/nodedrains.vmdrain.io >&2
	flock -u "$plock"
	exec {plock}>&-

	start kwok "$BEDDIR/bin/kwok" --kubeconfig "$BEDDIR/kubeconfig" --config "$KWOK_DIR/stages.yaml" \
		--manage-all-nodes=true --server-address "127.0.0.1:$kwok_port" --node-lease-duration-seconds 0
	wait_for kwok kwok 60 curl -sf "http://127.0.0.1:$kwok_port/healthz"

	local mode=()
	if [[ $KUBEVIRT_MODE == real ]]; then
		mode=(--mode node --handler-kubeconfig "$BEDDIR/kubeconfig.virt-handler")
	fi
	# shellcheck disable=SC2086 # VMDRAIN_SIM_ARGS is a list of flags
	start sim "$BEDDIR/bin/sim" run --kubeconfig "$BEDDIR/kubeconfig" --time-scale "$SIM_TIME_SCALE" \
		--health-addr "127.0.0.1:$sim_port" "${mode[@]}" ${VMDRAIN_SIM_ARGS:-}
	wait_for simulator sim 60 curl -sf "http://127.0.0.1:$sim_port/healthz"

	cat >"$BEDDIR/env" <<EOF
# vmdrain test bed "$BED"; source this file to use it.
export VMDRAIN_BED="$BED"
export VMDRAIN_BED_DIR="$BEDDIR"
export KUBECONFIG="$BEDDIR/kubeconfig"
export VMDRAIN_KUBECONFIG_DOCKER="$BEDDIR/kubeconfig.docker"
export VMDRAIN_APISERVER="https://127.0.0.1:$api_port"
export VMDRAIN_APISERVER_DOCKER="https://$gw:$api_port"
export VMDRAIN_KUBE_VERSION="$KUBE_VERSION"
export VMDRAIN_ETCD_VERSION="$ETCD_VERSION"
export VMDRAIN_KWOK_VERSION="$KWOK_VERSION"
export VMDRAIN_HELM_VERSION="$HELM_VERSION"
export VMDRAIN_KUBEVIRT="$KUBEVIRT_MODE"
export VMDRAIN_KUBEVIRT_VERSION="$KUBEVIRT_VERSION"
export VMDRAIN_KUBEVIRT_DRAIN_TAINT_KEY="$KUBEVIRT_DRAIN_TAINT_KEY"
export VMDRAIN_SIM_TIME_SCALE="$SIM_TIME_SCALE"
export VMDRAIN_BED_BIN="$BEDDIR/bin"
export VMDRAIN_WEBHOOK_AUTH_ADDR="localhost:$wh_port"
export PATH="$BEDDIR/bin:\$PATH"
EOF
	trap - EXIT
	log "bed $BED is up: kube-apiserver $KUBE_VERSION on https://127.0.0.1:$api_port (containers: https://$gw:$api_port), KubeVirt: $KUBEVIRT_MODE"
	log "use it with: . $BEDDIR/env"
	echo "$BEDDIR/kubeconfig"
}

# ---------------------------------------------------------------- down

# running PID: the process exists and is not a zombie.
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# stop_pid PID: TERM, wait up to 15 s, then KILL. Only a process that still
# names the bed directory is signalled (the pid may have been reused).
stop_pid() {
	local pid=$1 i
	tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "$BEDDIR" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 75; i++)); do
		running "$pid" || return 0
		sleep 0.2
	done
	log "pid $pid ignored SIGTERM; killing"
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
	local name pid
	for name in sim virt-api virt-controller kube-scheduler kube-controller-manager kwok kube-apiserver etcd; do
		[[ -f $(pidfile "$name") ]] || continue
		pid=$(cat "$(pidfile "$name")")
		stop_pid "$pid"
		# Reap it if it is our own child (up failed in this shell).
		wait "$pid" 2>/dev/null || true
	done
	for pid in $(pids_of_bed); do # anything else that names the bed
		log "stray process $pid: $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")"
		stop_pid "$pid"
	done
	sleep 0.2
	local left
	left=$(pids_of_bed)
	[[ -z $left ]] || die "processes of bed $BED still running: $left"
	rm -rf "$BEDDIR"
	log "bed $BED is down"
}

# ---------------------------------------------------------------- smoke

cmd_smoke() {
	cmd_build >&2
	cmd_up >/dev/null
	trap 'cmd_down' EXIT
	local rc=0
	(
		# shellcheck disable=SC1091
		. "$BEDDIR/env"
		export VMDRAIN_BED_SH="$E2E/bed.sh"
		cd "$E2E/controlplane"
		go test -count=1 ./...
		cd "$E2E"
		go test -count=1 -v -timeout 20m "${SMOKE_PKGS[@]}"
	) || rc=$?
	trap - EXIT
	cmd_down
	if ((rc == 0)); then log "smoke: PASS"; else log "smoke: FAIL (exit $rc)"; fi
	return "$rc"
}

case ${1:-} in
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
smoke) cmd_smoke ;;
dir) echo "$BEDDIR" ;;
*)
	echo "usage: VMDRAIN_BED=name $0 build|up|down|smoke|dir" >&2
	exit 2
	;;
esac
