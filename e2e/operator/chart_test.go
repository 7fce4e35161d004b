package operator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

const (
	chartRelease = "vmdrain"
	chartNS      = "vmdrain-system"
	chartSA      = "vmdrain"
	chartConfig  = "vmdrain-config"
	chartSecret  = "vmdrain-tls"
	chartPolicy  = "vmdrain-evacuation"
)

// chartDir is charts/vmdrain of this checkout.
func chartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "vmdrain")
}

func helm(t *testing.T, b *bed.Bed, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := b.Run(ctx, "helm", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forbiddenLines returns the log lines that report a request the API server
// refused for want of permission.
func forbiddenLines(t *testing.T, logPath string) []string {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// 403 as a status, not as a number in a URL (a watch's timeoutSeconds=403)
	re := regexp.MustCompile(`(?i)forbidden|(?:^|[^=\w])403\b`)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits until a line of the log holds every one of want.
func waitLog(t *testing.T, logPath string, timeout time.Duration, want ...string) string {
	t.Helper()
	var found string
	err := bed.Eventually(context.Background(), timeout, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(logPath)
		for _, l := range strings.Split(string(data), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				found = l
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no log line with %q within %s", want, timeout)
	}
	return found
}

// chartWebhooks lists the ValidatingWebhookConfigurations of the release.
func chartWebhooks(t *testing.T, b *bed.Bed) []string {
	t.Helper()
	list, err := b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range list.Items {
		if w.Name == chartRelease || w.Labels["app.kubernetes.io/instance"] == chartRelease {
			out = append(out, w.Name)
		}
	}
	return out
}

// chartInstall installs the chart with its webhook at url, the serving
// certificate naming san as well, and no Deployment replica (vmdrain runs
// outside the cluster here). It checks the webhook configuration and
// returns the chart's TLS Secret and the --set flags an upgrade repeats.
// The release is uninstalled when the test ends, pass or fail.
func chartInstall(t *testing.T, b *bed.Bed, url, san string, more ...string) (*corev1.Secret, []string) {
	t.Helper()
	ctx := context.Background()
	// Other tests keep a hand-made ConfigMap of the same name, which helm
	// would refuse to adopt; and the MigrationPolicy goes, so vmdrain must
	// create it with the chart's rights.
	_ = b.Kube.CoreV1().ConfigMaps(chartNS).Delete(ctx, chartConfig, metav1.DeleteOptions{})
	// vmdrain creates its Lease (helm does not); one left held by an
	// earlier run would delay the lead by a lease duration
	_ = b.Kube.CoordinationV1().Leases(chartNS).Delete(ctx, chartRelease, metav1.DeleteOptions{})
	err := b.Dynamic.Resource(kubevirt.PolicyResource).Delete(ctx, chartPolicy, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	// the bed applied the NodeDrain CRD, which helm would refuse to adopt:
	// the chart installs it (and keeps it at uninstall)
	if out, err := b.Run(ctx, "kubectl", "delete", "crd", ndCRD, "--ignore-not-found", "--wait=true", "--timeout=60s"); err != nil {
		t.Fatalf("delete the CRD: %v\n%s", err, out)
	}
	sets := []string{"--set", "webhook.url=" + url, "--set", "webhook.extraSANs={" + san + "}", "--set", "replicas=0"}
	sets = append(sets, more...)
	t.Cleanup(func() {
		// the webhook must not outlive the test, pass or fail
		uctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := b.Run(uctx, "helm", "uninstall", chartRelease, "-n", chartNS, "--ignore-not-found", "--wait"); err != nil {
			t.Errorf("cleanup: %v\n%s", err, out)
		}
	})
	helm(t, b, append([]string{"install", chartRelease, chartDir(), "-n", chartNS, "--create-namespace"}, sets...)...)

	secret, err := b.Kube.CoreV1().Secrets(chartNS).Get(ctx, chartSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vwc, err := b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, chartRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc := vwc.Webhooks[0].ClientConfig
	if cc.URL == nil || *cc.URL != url || cc.Service != nil {
		t.Errorf("webhook clientConfig %+v, want url %s", cc, url)
	}
	if string(cc.CABundle) != string(secret.Data["ca.crt"]) || len(cc.CABundle) == 0 {
		t.Error("the webhook's caBundle is not the Secret's ca.crt")
	}
	return secret, sets
}

// chartToken returns a fresh token of the chart's service account.
func chartToken(t *testing.T, b *bed.Bed) string {
	t.Helper()
	return tokenOf(t, b, chartNS, chartSA, 7200)
}

// tokenOf returns a token of service account ns/name, valid for seconds.
func tokenOf(t *testing.T, b *bed.Bed, ns, name string, seconds int64) string {
	t.Helper()
	tr, err := b.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// writeFiles writes name → content into dir with the given mode.
func writeFiles(t *testing.T, dir string, mode os.FileMode, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReady waits for vmdrain's /readyz at metrics (host:port).
func waitReady(t *testing.T, metrics string, timeout time.Duration) {
	t.Helper()
	err := bed.Eventually(context.Background(), timeout, func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, "curl", "-s", "-m", "2", "http://"+metrics+"/readyz").Output()
		return err == nil && strings.HasPrefix(string(out), "ok\n"), nil
	})
	if err != nil {
		t.Fatalf("vmdrain at %s never became ready", metrics)
	}
}

// chartDrains does, on three fresh nodes, a taint drain of two VMs from
// node 0 and a kubectl drain of two others from node 1 through the chart's
// webhook configuration; node 2 and any other schedulable node take them.
// Node 1 is cordoned once its VMs run (a cordoned node takes no new pod
// from a real scheduler), before the taint drain, so no VMI is drained twice.
func chartDrains(t *testing.T, b *bed.Bed, prefix, metrics string) {
	t.Helper()
	ctx := context.Background()
	ns := b.Namespace(t)
	n := nodes(t, b, uniq(prefix), 3)
	for i := 0; i < 2; i++ {
		vm(t, b, sim.VM{Namespace: ns, Name: fmt.Sprintf("lm-%d", i), Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
		vm(t, b, sim.VM{Namespace: ns, Name: fmt.Sprintf("kd-%d", i), Node: n[1], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	}
	kubectl(t, b, "cordon", n[1])
	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	waitNode(t, b, n[0], 2*time.Minute, "state Drained", stateIs("Drained"))
	for i := 0; i < 2; i++ {
		if where := vmiNode(t, b, ns, fmt.Sprintf("lm-%d", i)); where == n[0] || where == n[1] {
			t.Errorf("lm-%d runs on %s after the taint drain of %s", i, where, n[0])
		}
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	final := waitNode(t, b, n[0], time.Minute, "state Completed", stateIs("Completed"))
	if final.Spec.Unschedulable {
		t.Error("vmdrain did not uncordon the node after the taint drain")
	}
	for series, least := range map[string]float64{`vmdrain_drain_nodes{state="completed"}`: 1,
		"vmdrain_drain_duration_seconds_count": 1, "vmdrain_migration_duration_seconds_count": 2,
		`vmdrain_migrations_total{result="succeeded"}`: 2} {
		if v := metricValue(t, metrics, series); v < least {
			t.Errorf("%s is %v after a drain of 2 VMs, want at least %v", series, v, least)
		}
	}

	out, err := drainCmd(t, b, n[1], "--timeout=180s")
	if err != nil {
		t.Fatalf("kubectl drain through the chart's webhook failed: %v\n%s", err, out)
	}
	// by source node, whoever made them: beside the real KubeVirt its
	// evacuation controller moves the evicted LiveMigrate VMIs itself
	byNode := map[string]int{}
	for _, m := range migrations(t, b, ns) {
		from := m.Labels["vmdrain.io/node"]
		if from == "" {
			from = m.Annotations[evacuationAnnotation]
		}
		byNode[from]++
	}
	if byNode[n[0]] != 2 || byNode[n[1]] != 2 {
		t.Errorf("migrations by source node %v, want 2 from %s and 2 from %s", byNode, n[0], n[1])
	}
	for i := 0; i < 2; i++ {
		if where := vmiNode(t, b, ns, fmt.Sprintf("kd-%d", i)); where == n[1] {
			t.Errorf("kd-%d is still on %s after kubectl drain", i, n[1])
		}
	}
	// vmdrain reports the ends of its own migrations only
	if ev := eventReasons(t, b, ns, "kd-0"); ev["EvictionIntercepted"] == 0 || (!b.Real() && ev["MigrationSucceeded"] == 0) {
		t.Errorf("events on kd-0: %v, want EvictionIntercepted and MigrationSucceeded", ev)
	}
	if _, err := b.Dynamic.Resource(kubevirt.PolicyResource).Get(ctx, chartPolicy, metav1.GetOptions{}); err != nil {
		t.Errorf("MigrationPolicy %s was not created with the chart's rights: %v", chartPolicy, err)
	}
}

// metricValue returns the value of one series at metrics (host:port), or
// -1 when vmdrain does not export it.
func metricValue(t *testing.T, metrics, series string) float64 {
	t.Helper()
	out, err := exec.Command("curl", "-s", "-m", "5", "http://"+metrics+"/metrics").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %q is not a number", series, v)
			}
			return f
		}
	}
	return -1
}

// checkNotRefused fails the test for every request the API server refused
// vmdrain for want of permission: 403 lines in its log, and
// vmdrain_api_requests_total with code 403 at metrics (host:port).
func checkNotRefused(t *testing.T, logPath, metrics string) {
	t.Helper()
	time.Sleep(1500 * time.Millisecond) // coalesced writes and events land
	if lines := forbiddenLines(t, logPath); len(lines) > 0 {
		t.Errorf("vmdrain was refused requests with the chart's service account:\n%s", strings.Join(lines, "\n"))
	}
	out, err := exec.Command("curl", "-s", "-m", "5", "http://"+metrics+"/metrics").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "vmdrain_api_requests_total{") {
		t.Error("no vmdrain_api_requests_total in /metrics")
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "vmdrain_api_requests_total{") && strings.Contains(l, `code="403"`) {
			t.Errorf("refused API requests: %s", l)
		}
	}
}

// chartUninstall uninstalls the release and checks nothing cluster-wide
// stays behind: a stale failing webhook would block every eviction.
func chartUninstall(t *testing.T, b *bed.Bed) {
	t.Helper()
	helm(t, b, "uninstall", chartRelease, "-n", chartNS, "--wait")
	if left := chartWebhooks(t, b); len(left) > 0 {
		t.Errorf("uninstall left webhook configurations: %v", left)
	}
	_, err := b.Kube.RbacV1().ClusterRoles().Get(context.Background(), chartRelease, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("uninstall left the ClusterRole (err %v)", err)
	}
}

// TestChartInstallAndRBAC: the chart lints and the API server accepts what
// it renders; vmdrain running with the chart's service account, serving
// pair and ConfigMap, behind the chart's webhook configuration, does a taint
// drain and a kubectl drain without one refused request; an upgrade changes
// the configuration of the running vmdrain; uninstall leaves no webhook.
func TestChartInstallAndRBAC(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	chart := chartDir()

	// 1. lint, and a server-side dry run of what the chart renders
	helm(t, b, "lint", "--strict", chart)
	helm(t, b, "lint", "--strict", chart, "--set", "certManager.enabled=true",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true")
	mon := helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--set", "certManager.enabled=true",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true")
	for _, kind := range []string{"kind: ServiceMonitor", "kind: PrometheusRule", "kind: Certificate", "kind: Issuer",
		"cert-manager.io/inject-ca-from: " + chartNS + "/", `vmdrain_drain_nodes{state="blocked"}`, `vmdrain_drain_nodes{state="failed"}`,
		`result="failed"`, "vmdrain_drains_in_progress > 0"} {
		if !strings.Contains(mon, kind) {
			t.Errorf("the rendering with cert-manager and monitoring lacks %q", kind)
		}
	}
	if strings.Contains(mon, "caBundle:") || strings.Contains(mon, "kind: Secret") {
		t.Error("with cert-manager the chart still renders its own Secret or caBundle")
	}
	if _, err := b.Kubectl(ctx, "create", "namespace", chartNS); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	// the NetworkPolicy, as the API server validates it (kwok has no network
	// plugin to enforce it)
	np := helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--show-only", "templates/networkpolicy.yaml",
		"--set", "networkPolicy.enabled=true",
		"--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`)
	npFile := filepath.Join(t.TempDir(), "np.yaml")
	if err := os.WriteFile(npFile, []byte(np), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := kubectl(t, b, "apply", "--dry-run=server", "-f", npFile); !strings.Contains(out, "networkpolicy.networking.k8s.io/vmdrain") {
		t.Errorf("server dry run of the NetworkPolicy: %s", out)
	}
	if !strings.Contains(np, "port: webhook") || !strings.Contains(np, "kubernetes.io/metadata.name: monitoring") {
		t.Errorf("the NetworkPolicy lacks the webhook port or the metrics peers:\n%s", np)
	}
	// a client CA: the flag and its ConfigMap mounted; a bad name refused
	withCA := helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--show-only", "templates/deployment.yaml",
		"--set", "webhook.clientCAConfigMap=apiserver-webhook-ca")
	if !strings.Contains(withCA, "- --client-ca\n            - /client-ca/ca.crt") ||
		!strings.Contains(withCA, "name: apiserver-webhook-ca") {
		t.Errorf("webhook.clientCAConfigMap is not passed as --client-ca with its ConfigMap mounted:\n%s", withCA)
	}
	hctx, hcancel := context.WithTimeout(ctx, time.Minute)
	defer hcancel()
	if out, err := b.Run(hctx, "helm", "template", chartRelease, chart, "--set", "webhook.clientCAConfigMap=Bad_Name"); err == nil ||
		!strings.Contains(out, "clientCAConfigMap") {
		t.Errorf("a bad webhook.clientCAConfigMap was not refused by name: %v\n%s", err, out)
	}
	// the test hook (helm test) apart: its pod needs its account, which a
	// dry run does not make
	rendered := helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--skip-tests")
	if strings.Contains(rendered, "kind: NetworkPolicy") {
		t.Error("the NetworkPolicy is rendered by default; it is opt-in")
	}
	manifest := filepath.Join(t.TempDir(), "chart.yaml")
	if err := os.WriteFile(manifest, []byte(rendered), 0o600); err != nil {
		t.Fatal(err)
	}
	out := kubectl(t, b, "apply", "--dry-run=server", "-f", manifest)
	for _, want := range []string{"deployment.apps/vmdrain", "validatingwebhookconfiguration.admissionregistration.k8s.io/vmdrain",
		"clusterrole.rbac.authorization.k8s.io/vmdrain", "configmap/vmdrain-config", "secret/vmdrain-tls",
		"service/vmdrain", "poddisruptionbudget.policy/vmdrain", "role.rbac.authorization.k8s.io/vmdrain-lease",
		"rolebinding.rbac.authorization.k8s.io/vmdrain-lease"} {
		if !strings.Contains(out, want) {
			t.Errorf("server dry run did not accept %s:\n%s", want, out)
		}
	}

	// 2. install, and (a) vmdrain as a host process with the chart's
	// service account token and serving pair, and nothing else
	port, mport := freePort(t), freePort(t)
	secret, sets := chartInstall(t, b, fmt.Sprintf("https://127.0.0.1:%d/validate-eviction", port), "127.0.0.1")
	dir := t.TempDir()
	writeFiles(t, dir, 0o600, map[string][]byte{"tls.crt": secret.Data["tls.crt"], "tls.key": secret.Data["tls.key"],
		"token": []byte(chartToken(t, b))})
	metrics := fmt.Sprintf("127.0.0.1:%d", mport)
	p := startVmdrainAs(t, tokenKubeconfig(t, b, filepath.Join(dir, "token")), chartNS+"/"+chartConfig,
		"--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", filepath.Join(dir, "tls.key"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--metrics-listen", metrics,
		"--kubevirt", "kubevirt/kubevirt", // as the chart's pods run it: its RBAC must allow the read
		"--leader-elect-lease", chartNS+"/"+chartRelease) // and the Lease's
	waitReady(t, metrics, 30*time.Second)
	waitLog(t, p.log, 30*time.Second, "configuration applied", "parallelMigrationsPerCluster=5")
	chartDrains(t, b, "chart", metrics)
	checkNotRefused(t, p.log, metrics)

	// 3. upgrade: the ConfigMap changes, vmdrain applies it without a restart
	helm(t, b, append([]string{"upgrade", chartRelease, chart, "-n", chartNS,
		"--set", "config.migrations.parallelMigrationsPerCluster=3"}, sets...)...)
	cm, err := b.Kube.CoreV1().ConfigMaps(chartNS).Get(ctx, chartConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["migrations"], "parallelMigrationsPerCluster: 3\n") {
		t.Errorf("the upgrade did not change the ConfigMap:\n%s", cm.Data["migrations"])
	}
	waitLog(t, p.log, 30*time.Second, "configuration applied", "parallelMigrationsPerCluster=3")
	select {
	case err := <-p.done:
		t.Fatalf("vmdrain exited during the upgrade: %v", err)
	default:
	}
	secret2, err := b.Kube.CoreV1().Secrets(chartNS).Get(ctx, chartSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(secret2.Data["tls.crt"]) != string(secret.Data["tls.crt"]) || string(secret2.Data["ca.crt"]) != string(secret.Data["ca.crt"]) {
		t.Error("the upgrade replaced the serving pair; it should be kept")
	}
	vwc2, err := b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, chartRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(vwc2.Webhooks[0].ClientConfig.CABundle) != string(secret.Data["ca.crt"]) {
		t.Error("after the upgrade the caBundle is not the kept CA")
	}
	if lines := forbiddenLines(t, p.log); len(lines) > 0 {
		t.Errorf("vmdrain was refused requests after the upgrade:\n%s", strings.Join(lines, "\n"))
	}

	// 4. uninstall: no webhook configuration stays behind, and the README's
	// command removes what vmdrain wrote
	if err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	chartUninstall(t, b)
	uninstallCleanup(t, b)
}
