package operator

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// webhookCert makes a self-signed serving certificate for 127.0.0.1 and
// localhost.
func webhookCert(t *testing.T) (certFile, keyFile string, pem []byte) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=vmdrain-webhook", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
		"-keyout", keyFile, "-out", certFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	pem, err = os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pem
}

// registerWebhook points pods/eviction of namespace ns at url, the way the
// chart does for launcher pods: failurePolicy Fail, sideEffects
// NoneOnDryRun, a matchCondition on the pod name.
func registerWebhook(t *testing.T, b *bed.Bed, ns, url string, ca []byte) {
	t.Helper()
	fail := admv1.Fail
	side := admv1.SideEffectClassNoneOnDryRun
	scope := admv1.NamespacedScope
	timeout := int32(5)
	name := "vmdrain-e2e-" + ns
	cfg := &admv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admv1.ValidatingWebhook{{
			Name:                    "eviction.vmdrain.io",
			ClientConfig:            admv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules:                   []admv1.RuleWithOperations{{Operations: []admv1.OperationType{admv1.Create}, Rule: admv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/eviction"}, Scope: &scope}}},
			FailurePolicy:           &fail,
			SideEffects:             &side,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			MatchConditions:         []admv1.MatchCondition{{Name: "virt-launcher-pods", Expression: "request.name.startsWith('virt-launcher-')"}},
		}},
	}
	ctx := context.Background()
	if _, err := b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// the apiserver picks new webhook configurations up asynchronously
	time.Sleep(2 * time.Second)
}

func ordinaryPod(t *testing.T, b *bed.Bed, ns, name, node string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "none"}}},
	}
	if _, err := b.Kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func drainCmd(t *testing.T, b *bed.Bed, node string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"drain", node, "--pod-selector=kubevirt.io=virt-launcher", "--delete-emptydir-data",
		"--ignore-daemonsets", "--force"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	return b.Kubectl(ctx, args...)
}

// TestWebhookKubectlDrain: kubectl drain of launcher pods becomes paced
// live migration; dry-run changes nothing; a blocked VMI makes kubectl time
// out with the reason; an ordinary pod is evicted; with vmdrain stopped no
// launcher pod can be evicted.
func TestWebhookKubectlDrain(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("whk"), 5)
	setConfig(t, b, "LiveMigration", "")
	certFile, keyFile, ca := webhookCert(t)
	port, mport := freePort(t), freePort(t)
	p := startVmdrain(t, b, "--tls-cert", certFile, "--tls-key", keyFile,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport))
	registerWebhook(t, b, ns, fmt.Sprintf("https://127.0.0.1:%d/validate-eviction", port), ca)
	err := bed.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, "curl", "-s", fmt.Sprintf("http://127.0.0.1:%d/readyz", mport)).Output()
		return err == nil && strings.HasPrefix(string(out), "ok\n"), nil
	})
	if err != nil {
		t.Fatal("vmdrain never became ready")
	}

	// node 0: three VMs to migrate and an ordinary pod
	for i := 0; i < 3; i++ {
		vm(t, b, sim.VM{Namespace: ns, Name: fmt.Sprintf("lm-%d", i), Node: n[0], Memory: "4Gi", EvictionStrategy: "LiveMigrate"})
	}
	ordinaryPod(t, b, ns, "plain", n[0])
	// node 1: for the dry run; node 2: a blocked VMI; node 3: vmdrain stopped
	vm(t, b, sim.VM{Namespace: ns, Name: "dry", Node: n[1], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	vm(t, b, sim.VM{Namespace: ns, Name: "rwo", Node: n[2], Memory: "1Gi", EvictionStrategy: "LiveMigrate", Disk: sim.DiskRWO})
	vm(t, b, sim.VM{Namespace: ns, Name: "keep", Node: n[3], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})

	w := watchMigrations(t, b, ns)
	out, err := drainCmd(t, b, n[0], "--timeout=180s")
	if err != nil {
		t.Fatalf("kubectl drain failed: %v", err)
	}
	t.Logf("kubectl drain output:\n%s", out)
	// an independent watcher: the pacing limits held at every event
	maxTotal, maxNode := w.checkLimits(t, 2, 5)
	if maxNode != 2 {
		t.Errorf("out of the drained node at most %d were in flight, want the limit 2 reached", maxNode)
	}
	t.Logf("max in flight during kubectl drain: cluster %d, per node %d", maxTotal, maxNode)
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("lm-%d", i)
		v, err := b.VMI(ctx, ns, name)
		if err != nil {
			t.Fatalf("%s lost: %v", name, err)
		}
		if v.Status.NodeName == n[0] || v.Status.Phase != "Running" {
			t.Errorf("%s: on %s, phase %s", name, v.Status.NodeName, v.Status.Phase)
		}
	}
	// vmdrain's migrations; beside the real KubeVirt, virt-api's
	// interceptor marks LiveMigrate VMIs and KubeVirt's evacuation
	// controller moves them, vmdrain only tracks them (docs/kubevirt.md)
	from := map[string]int{}
	for _, m := range migrations(t, b, ns) {
		if m.Labels["vmdrain.io/node"] == n[0] {
			from["vmdrain"]++
		} else if m.Annotations[evacuationAnnotation] == n[0] {
			from["kubevirt"]++
		}
	}
	want := map[string]int{"vmdrain": 3}
	if b.Real() {
		want = map[string]int{"kubevirt": 3}
	}
	if !maps.Equal(from, want) {
		t.Errorf("migrations from %s by creator %v, want %v", n[0], from, want)
	}
	if _, err := b.Kube.CoreV1().Pods(ns).Get(ctx, "plain", metav1.GetOptions{}); err != nil {
		t.Errorf("the ordinary pod was evicted by the launcher-only drain: %v", err)
	}
	// an ordinary pod is evicted normally
	if out, err := b.Kubectl(ctx, "drain", n[0], "--ignore-daemonsets", "--force", "--timeout=60s"); err != nil {
		t.Errorf("drain of the ordinary pod: %v\n%s", err, out)
	}
	if ev := eventReasons(t, b, ns, "lm-0"); ev["EvictionIntercepted"] == 0 {
		t.Errorf("no EvictionIntercepted event on lm-0: %v", ev)
	}
	// the drain by evictions has its NodeDrain record
	nd := waitNodeDrain(t, b, n[0], 30*time.Second, "a record of the eviction drain, Drained", func(nd *unstructured.Unstructured) bool {
		return ndString(nd, "status", "trigger") == "eviction" && ndString(nd, "status", "phase") == "Drained"
	})
	if nd.GetLabels()["vmdrain.io/managed-by"] != "vmdrain" || ndString(nd, "status", "progress") != "3/3" {
		t.Errorf("record: labels %v, status %v", nd.GetLabels(), nd.Object["status"])
	}
	checkColumns(t, b, n[0], "eviction")

	// dry run: nothing changes
	// (kubectl keeps retrying the denied dry-run evictions until its timeout)
	_, _ = drainCmd(t, b, n[1], "--dry-run=server", "--timeout=12s")
	time.Sleep(3 * time.Second)
	if v, _ := b.VMI(ctx, ns, "dry"); v == nil || v.Status.NodeName != n[1] || v.Annotations["vmdrain.io/evacuate-from"] != "" {
		t.Errorf("the dry run changed the VMI: %+v", v)
	}
	for _, m := range migrations(t, b, ns) {
		if m.Spec.VMIName == "dry" {
			t.Errorf("the dry run created migration %s", m.Name)
		}
	}

	// blocked: kubectl times out and says why
	out, err = drainCmd(t, b, n[2], "--timeout=15s")
	if err == nil {
		t.Error("kubectl drain of a node with a non-migratable LiveMigrate VMI succeeded")
	}
	// vmdrain's reason, or virt-api's when its webhook answered first
	if !strings.Contains(out, "cannot be live-migrated") && !(b.Real() && strings.Contains(out, "not live-migratable")) {
		t.Errorf("kubectl's output does not give the reason:\n%s", out)
	}
	if v, err := b.VMI(ctx, ns, "rwo"); err != nil || v.Status.NodeName != n[2] {
		t.Errorf("the blocked VMI moved or vanished: %v", err)
	}
	waitNode(t, b, n[2], 30*time.Second, "state Blocked", stateIs("Blocked"))

	// vmdrain stopped: the failure policy refuses every launcher eviction
	if err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	out, err = drainCmd(t, b, n[3], "--timeout=12s")
	if err == nil {
		t.Error("kubectl drain succeeded with vmdrain stopped")
	}
	pods, _ := b.LauncherPods(ctx, ns, "keep")
	if v, err := b.VMI(ctx, ns, "keep"); err != nil || v.Status.NodeName != n[3] || len(pods) == 0 {
		t.Errorf("a VM was lost while vmdrain was down: err %v, launcher pods %d", err, len(pods))
	}
	t.Logf("kubectl drain with vmdrain stopped:\n%s", out)
}
