#!/usr/bin/env bash
# vmdrain test bed: a real control plane (etcd, kube-apiserver, kubectl, helm,
# kwok) built from Go modules, plus a KubeVirt migration simulator.
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
# HELM_DIR (cache directories named <tool>-<version>).
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
	flock -u "$lock"
	exec {lock}>&-
	KUBE_VERSION=${KUBE_DIR##*/kube-}
	ETCD_VERSION=${ETCD_DIR##*/etcd-}
	KWOK_VERSION=${KWOK_DIR##*/kwok-}
	HELM_VERSION=${HELM_DIR##*/helm-}
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
		issue admin "/O=system:masters/CN=vmdrain-bed-admin" \
			"extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
	)
}

kubeconfig() { # server
	local d=$BEDDIR/certs
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
    client-certificate-data: $(base64 -w0 "$d/admin.crt")
    client-key-data: $(base64 -w0 "$d/admin.key")
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
	for b in "$KUBE_DIR/kube-apiserver" "$KUBE_DIR/kubectl" "$ETCD_DIR/etcd" "$KWOK_DIR/kwok" "$HELM_DIR/helm"; do
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
	local ports etcd_port peer_port api_port kwok_port sim_port
	ports=$("$BEDDIR/bin/sim" free-ports 5)
	read -r etcd_port peer_port api_port kwok_port sim_port <<<"$(echo $ports)"

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
		--service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --profiling=false
	wait_for kube-apiserver kube-apiserver 180 \
		curl -sf --cacert "$c/ca.crt" --cert "$c/admin.crt" --key "$c/admin.key" "https://127.0.0.1:$api_port/readyz"
	flock -u "$plock"
	exec {plock}>&-

	kubeconfig "https://127.0.0.1:$api_port" >"$BEDDIR/kubeconfig"
	kubeconfig "https://$gw:$api_port" >"$BEDDIR/kubeconfig.docker"
	export KUBECONFIG=$BEDDIR/kubeconfig

	"$kubectl" apply -f "$E2E/fixtures/kubevirt-crds.yaml" >&2
	"$kubectl" wait --for condition=Established --timeout 60s \
		crd/virtualmachineinstances.kubevirt.io crd/virtualmachineinstancemigrations.kubevirt.io \
		crd/migrationpolicies.migrations.kubevirt.io >&2

	start kwok "$BEDDIR/bin/kwok" --kubeconfig "$BEDDIR/kubeconfig" --config "$KWOK_DIR/stages.yaml" \
		--manage-all-nodes=true --server-address "127.0.0.1:$kwok_port" --node-lease-duration-seconds 0
	wait_for kwok kwok 60 curl -sf "http://127.0.0.1:$kwok_port/healthz"

	# shellcheck disable=SC2086 # VMDRAIN_SIM_ARGS is a list of flags
	start sim "$BEDDIR/bin/sim" run --kubeconfig "$BEDDIR/kubeconfig" --time-scale "$SIM_TIME_SCALE" \
		--health-addr "127.0.0.1:$sim_port" ${VMDRAIN_SIM_ARGS:-}
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
export VMDRAIN_SIM_TIME_SCALE="$SIM_TIME_SCALE"
export VMDRAIN_BED_BIN="$BEDDIR/bin"
export PATH="$BEDDIR/bin:\$PATH"
EOF
	trap - EXIT
	log "bed $BED is up: kube-apiserver $KUBE_VERSION on https://127.0.0.1:$api_port (containers: https://$gw:$api_port)"
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
	for name in sim kwok kube-apiserver etcd; do
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
