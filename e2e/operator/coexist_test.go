package operator

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

// vmdrain beside the real KubeVirt (docs/kubevirt.md, "vmdrain in each
// KubeVirt configuration"): for each configuration an admin may have and
// for both triggers, a drain of three VMs under the default limits (5 in
// the cluster, 2 out of a node), checked by an independent migration
// watcher: no VMI ever has two migrations in flight, each VMI moves once,
// the limits hold counting every creator, the migrations come from the
// controller docs/kubevirt.md says, the node's progress ends 3/3 Drained,
// and the taint drain ends uncordoned.

const kubevirtCR = "kubevirt/kubevirt"

type coexistCase struct {
	kubevirtKey string // KubeVirt's nodeDrainTaintKey
	strategy    string // of the three VMs
	external    bool   // evacuateExternal in vmdrain's configuration
	eviction    bool   // kubectl drain instead of the taint
	creator     string // "vmdrain" or "kubevirt": whose migrations move the VMs
	shared      bool   // vmdrain reports KubeVirt acting on its taint
}

// setKubeVirtTaintKey points the KubeVirt CR's nodeDrainTaintKey at key
// and puts the bed's back at the end of the test.
func setKubeVirtTaintKey(t *testing.T, b *bed.Bed, key string) {
	t.Helper()
	patch := func(k string) error {
		p := fmt.Sprintf(`{"spec":{"configuration":{"migrations":{"nodeDrainTaintKey":%q}}}}`, k)
		_, err := b.Dynamic.Resource(kubevirt.KubeVirtResource).Namespace("kubevirt").Patch(context.Background(),
			"kubevirt", types.MergePatchType, []byte(p), metav1.PatchOptions{})
		return err
	}
	if err := patch(key); err != nil {
		t.Fatalf("patch the KubeVirt CR: %v", err)
	}
	t.Cleanup(func() {
		if err := patch(b.Env["VMDRAIN_KUBEVIRT_DRAIN_TAINT_KEY"]); err != nil {
			t.Errorf("restore the KubeVirt CR: %v", err)
		}
	})
	// virt-controller reads its configuration from the CR through an
	// informer: give it a moment
	time.Sleep(3 * time.Second)
}

// waitShared waits until vmdrain's /metrics says whether KubeVirt acts on
// its taint key, and checks /readyz says so too.
func waitShared(t *testing.T, metrics string, shared bool) {
	t.Helper()
	want := 0.0
	if shared {
		want = 1
	}
	err := bed.Eventually(context.Background(), 30*time.Second, func(ctx context.Context) (bool, error) {
		return metricValue(t, metrics, "vmdrain_kubevirt_taint_key_shared") == want, nil
	})
	if err != nil {
		t.Fatalf("vmdrain_kubevirt_taint_key_shared never became %v", want)
	}
	out, err := exec.Command("curl", "-s", "-m", "5", "http://"+metrics+"/readyz").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Contains(string(out), "acts on vmdrain's drain taint"); got != shared {
		t.Errorf("/readyz says %q; want the shared-taint warning: %v", out, shared)
	}
}

func TestCoexistStockKubeVirtTaint(t *testing.T) {
	coexist(t, coexistCase{kubevirtKey: taint, strategy: "LiveMigrate", creator: "kubevirt", shared: true})
}

func TestCoexistStockKubeVirtEviction(t *testing.T) {
	coexist(t, coexistCase{kubevirtKey: taint, strategy: "LiveMigrate", eviction: true, creator: "kubevirt", shared: true})
}

func TestCoexistMovedKeyTaint(t *testing.T) {
	coexist(t, coexistCase{kubevirtKey: "kubevirt.io/drain-by-kubevirt", strategy: "LiveMigrate", creator: "vmdrain"})
}

func TestCoexistMovedKeyEviction(t *testing.T) {
	coexist(t, coexistCase{kubevirtKey: "kubevirt.io/drain-by-kubevirt", strategy: "LiveMigrate", eviction: true, creator: "kubevirt"})
}

func TestCoexistExternalStockTaint(t *testing.T) {
	coexist(t, coexistCase{kubevirtKey: taint, strategy: "External", external: true, creator: "vmdrain", shared: true})
}

func TestCoexistExternalEviction(t *testing.T) {
	coexist(t, coexistCase{kubevirtKey: taint, strategy: "External", external: true, eviction: true, creator: "vmdrain", shared: true})
}

func coexist(t *testing.T, c coexistCase) {
	b := bed.OpenT(t)
	if !b.Real() {
		t.Skip("needs the real KubeVirt (VMDRAIN_KUBEVIRT=real)")
	}
	ctx := context.Background()
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("co"), 3)
	setKubeVirtTaintKey(t, b, c.kubevirtKey)
	setConfig(t, b, "LiveMigration", fmt.Sprintf("evacuateExternal: %v\n", c.external))
	var specs []sim.VM
	for i := 0; i < 3; i++ {
		specs = append(specs, sim.VM{Namespace: ns, Name: fmt.Sprintf("vm-%d", i), Node: n[0], Memory: "1Gi",
			EvictionStrategy: c.strategy})
	}
	vms(t, b, specs)
	if f := foreignInFlight(t, b, ns); len(f) > 0 {
		t.Fatalf("the bed has migrations in flight from elsewhere: %v", f)
	}
	w := watchMigrations(t, b, ns)
	resetAfter(t, b, ns, n[0])
	diagnose(t, b, ns, w, n...)

	mport := freePort(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", mport)
	extra := []string{"--metrics-listen", metrics}
	if c.eviction {
		certFile, keyFile, ca := webhookCert(t)
		port := freePort(t)
		extra = append(extra, "--tls-cert", certFile, "--tls-key", keyFile, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
		registerWebhook(t, b, ns, fmt.Sprintf("https://127.0.0.1:%d/validate-eviction", port), ca)
	}
	p := startVmdrain(t, b, append(extra, "--kubevirt", kubevirtCR)...)
	waitReady(t, metrics, 30*time.Second)
	waitShared(t, metrics, c.shared)
	nw := watchNode(t, b, n[0])

	var final *corev1.Node
	if c.eviction {
		if out, err := drainCmd(t, b, n[0], "--timeout=240s"); err != nil {
			t.Fatalf("kubectl drain failed: %v\n%s", err, out)
		}
		final = waitNode(t, b, n[0], time.Minute, "state Drained", stateIs("Drained"))
	} else {
		kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
		final = waitNode(t, b, n[0], 4*time.Minute, "state Drained", stateIs("Drained"))
	}
	if got := final.Annotations["vmdrain.io/progress"]; got != "3/3" {
		t.Errorf("progress %q, want 3/3", got)
	}
	progress, states := nw.snapshot()
	checkMonotonic(t, progress)
	t.Logf("annotation sequence on %s: states %v, progress %v", n[0], states, progress)
	checkCoexistence(t, b, ns, w, n[0], c)

	if !c.eviction {
		kubectl(t, b, "taint", "nodes", n[0], taint+"-")
		after := waitNode(t, b, n[0], time.Minute, "state Completed", stateIs("Completed"))
		if after.Spec.Unschedulable {
			t.Error("vmdrain did not uncordon the node it cordoned")
		}
	}
	if err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v (want exit 0)", err)
	}
	_ = ctx
}

// checkCoexistence reads the independent watcher's record of the drain.
func checkCoexistence(t *testing.T, b *bed.Bed, ns string, w *migWatcher, node string, c coexistCase) {
	t.Helper()
	if err := w.error(); err != nil {
		t.Fatalf("migration watch: %v", err)
	}
	maxTotal, maxNode := w.checkLimits(t, 2, 5)
	t.Logf("max in flight (every creator): cluster %d, out of one node %d\n%s", maxTotal, maxNode, w.history())
	if maxNode == 0 {
		t.Error("the watcher saw no migration in flight")
	}
	// per VMI: one success, never two unfinished at once, the expected creator
	succeeded := map[string]int{}
	byCreator := map[string]int{}
	list := migrations(t, b, ns)
	for _, m := range list {
		creator := "kubevirt"
		if m.Labels["vmdrain.io/managed-by"] == "vmdrain" {
			creator = "vmdrain"
		}
		byCreator[creator]++
		if m.Status.Phase == kubevirt.PhaseSucceeded {
			succeeded[m.Spec.VMIName]++
			if creator != c.creator {
				t.Errorf("%s (%s's) moved %s; want %s's migrations", m.Name, creator, m.Spec.VMIName, c.creator)
			}
		}
	}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("vm-%d", i)
		if succeeded[name] != 1 {
			t.Errorf("%s: %d successful migrations, want exactly 1", name, succeeded[name])
		}
		if where := vmiNode(t, b, ns, name); where == node {
			t.Errorf("%s is still on %s", name, node)
		}
	}
	t.Logf("migrations by creator: %v", byCreator)
	checkOneInFlightPerVMI(t, w)
}

// checkOneInFlightPerVMI: at no watch event did a VMI have two unfinished
// migrations (Pending included).
func checkOneInFlightPerVMI(t *testing.T, w *migWatcher) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.vmiPeaks() {
		t.Errorf("VMI %s had %d unfinished migrations at once (%s)", at.vmi, at.n, at.what)
	}
}

// TestKubeVirtCRIsASource: vmdrain reads a KubeVirt CR (--kubevirt), in
// either mode: its limits and timeouts apply where the ConfigMap sets none,
// a ConfigMap key wins, an invalid CR is refused with a Warning Event and
// the last good one stays, and KubeVirt's nodeDrainTaintKey equal to
// vmdrain's is reported (metric, /readyz, Event) and cleared on change.
func TestKubeVirtCRIsASource(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	ns := b.Namespace(t)
	// KubeVirt's own components refuse to work beside a second KubeVirt
	// CR: beside the real KubeVirt the test edits the bed's and puts it
	// back; in the fast mode it makes its own
	crNS, crName := ns, "kv"
	if b.Real() {
		crNS, crName = "kubevirt", "kubevirt"
	}
	res := b.Dynamic.Resource(kubevirt.KubeVirtResource).Namespace(crNS)
	if b.Real() {
		t.Cleanup(func() {
			p := fmt.Sprintf(`{"spec":{"configuration":{"evictionStrategy":null,"migrations":{"nodeDrainTaintKey":%q,`+
				`"parallelOutboundMigrationsPerNode":null,"progressTimeout":null}}}}`, b.Env["VMDRAIN_KUBEVIRT_DRAIN_TAINT_KEY"])
			if _, err := res.Patch(context.Background(), crName, types.MergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
				t.Errorf("restore the KubeVirt CR: %v", err)
			}
		})
		p := fmt.Sprintf(`{"spec":{"configuration":{"evictionStrategy":"LiveMigrate","migrations":{"nodeDrainTaintKey":%q,`+
			`"parallelOutboundMigrationsPerNode":1,"progressTimeout":77}}}}`, taint)
		if _, err := res.Patch(ctx, crName, types.MergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	} else {
		cr := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
			"metadata": map[string]any{"name": crName, "namespace": crNS},
			"spec": map[string]any{"configuration": map[string]any{
				"evictionStrategy": "LiveMigrate",
				"migrations": map[string]any{"nodeDrainTaintKey": taint, "parallelOutboundMigrationsPerNode": int64(1),
					"progressTimeout": int64(77)}}}}}
		if _, err := res.Create(ctx, cr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	patch := func(migrations string) {
		t.Helper()
		p := `{"spec":{"configuration":{"migrations":` + migrations + `}}}`
		if _, err := res.Patch(ctx, crName, types.MergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Events already on the CR (beside the real KubeVirt, earlier tests')
	// do not count
	seen := eventReasons(t, b, crNS, crName)
	setConfig(t, b, "LiveMigration", "retryBackoffSeconds: 9\n")
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startVmdrain(t, b, "--kubevirt", crNS+"/"+crName, "--metrics-listen", metrics)
	waitReady(t, metrics, 30*time.Second)
	waitShared(t, metrics, true)
	waitLog(t, p.log, 10*time.Second, "configuration applied", "parallelOutboundMigrationsPerNode=1 ",
		"progressTimeout=77 ", "evictionStrategy=LiveMigrate", "retryBackoffSeconds=9 ")
	waitLog(t, p.log, 10*time.Second, "KubeVirt acts on vmdrain's drain taint too", "kubevirt="+crName)
	waitEvent(t, b, crNS, crName, "DrainTaintShared", seen)

	// KubeVirt's key moved: the warning goes
	patch(`{"nodeDrainTaintKey":"kubevirt.io/drain-by-kubevirt"}`)
	waitShared(t, metrics, false)
	// an invalid CR: refused whole, the last good one stays
	patch(`{"parallelOutboundMigrationsPerNode":0,"progressTimeout":66}`)
	waitEvent(t, b, crNS, crName, "InvalidConfiguration", seen)
	waitLog(t, p.log, 10*time.Second, "invalid KubeVirt configuration", "parallelOutboundMigrationsPerNode")
	if l := waitLog(t, p.log, time.Second, "configuration applied"); strings.Contains(l, "progressTimeout=66") {
		t.Errorf("the invalid CR was applied: %s", l)
	}
	// the ConfigMap's key wins over the CR's
	patch(`{"parallelOutboundMigrationsPerNode":1,"progressTimeout":66}`)
	waitLog(t, p.log, 10*time.Second, "configuration applied", "progressTimeout=66 ")
	setConfig(t, b, "LiveMigration", "parallelOutboundMigrationsPerNode: 3\n")
	waitLog(t, p.log, 10*time.Second, "configuration applied", "parallelOutboundMigrationsPerNode=3 ", "progressTimeout=66 ")
	if err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v (want exit 0)", err)
	}
}

// waitEvent waits for an Event with reason on the object named name in ns
// beyond the ones counted in before.
func waitEvent(t *testing.T, b *bed.Bed, ns, name, reason string, before map[string]int) {
	t.Helper()
	err := bed.Eventually(context.Background(), 15*time.Second, func(context.Context) (bool, error) {
		return eventReasons(t, b, ns, name)[reason] > before[reason], nil
	})
	if err != nil {
		t.Errorf("no %s Event on %s/%s: %v", reason, ns, name, eventReasons(t, b, ns, name))
	}
}
