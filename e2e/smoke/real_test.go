package smoke

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

// The tests in this file check KubeVirt's real virt-controller and virt-api
// in a real bed (VMDRAIN_KUBEVIRT=real), with the node agent simulated.

var kubevirtCR = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "kubevirts"}

func needReal(t *testing.T) {
	t.Helper()
	if !b.Real() {
		t.Skip("needs real KubeVirt (VMDRAIN_KUBEVIRT=real)")
	}
}

// evacuationNode is a node of the evacuation tests' own: its taint must
// not move the other tests' VMs.
const evacuationNode = "smoke-evacuate"

func ensureEvacuationNode(t *testing.T) {
	t.Helper()
	ensureNodes(t)
	ctx := ctxT(t, 2*time.Minute)
	if err := b.CreateNode(ctx, evacuationNode, nil); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := b.WaitNodesReady(ctx, time.Minute, evacuationNode); err != nil {
		t.Fatal(err)
	}
}

func TestRealKubeVirtInstalled(t *testing.T) {
	needReal(t)
	ctx := ctxT(t, time.Minute)
	kv, err := b.Dynamic.Resource(kubevirtCR).Namespace("kubevirt").Get(ctx, "kubevirt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	phase, _, _ := unstructuredString(kv.Object, "status", "phase")
	if phase != "Deployed" {
		t.Errorf("KubeVirt CR phase %q, want Deployed", phase)
	}
	crds, err := b.Kubectl(ctx, "get", "crd", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(crds, "kubevirt.io"); n < 17 {
		t.Errorf("%d KubeVirt CRDs, want at least 17:\n%s", n, crds)
	}
	hooks, err := b.Kubectl(ctx, "get", "validatingwebhookconfigurations", "virt-api-validator", "-o", "jsonpath={.webhooks[*].name}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hooks, "virt-launcher-eviction-interceptor.kubevirt.io") {
		t.Errorf("virt-api's eviction interceptor is not registered: %s", hooks)
	}
	t.Logf("KubeVirt %s: %d CRDs; virt-api webhooks: %s", b.Env["VMDRAIN_KUBEVIRT_VERSION"], strings.Count(crds, "\n"), hooks)
}

// TestRealMigrationFails: the node agent fails the first attempt
// (sim.vmdrain.io/fail-attempts); the real virt-controller ends the
// migration Failed; a second one succeeds.
func TestRealMigrationFails(t *testing.T) {
	needReal(t)
	ensureNodes(t)
	ctx := ctxT(t, 3*time.Minute)
	ns := b.Namespace(t)
	if _, _, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: "real-flaky", Node: nodes[0], EvictionStrategy: "LiveMigrate",
		Annotations: map[string]string{sim.FailAttemptsAnnotation: "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateMigration(ctx, ns, "real-flaky-1", "real-flaky"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "real-flaky-1", kubevirt.PhaseFailed, time.Minute)
	vmi, err := b.VMI(ctx, ns, "real-flaky")
	if err != nil {
		t.Fatal(err)
	}
	if st := vmi.Status.MigrationState; st == nil || !st.Failed || vmi.Status.NodeName != nodes[0] || vmi.Status.Phase != "Running" {
		t.Fatalf("after the failed attempt: phase %s node %s migrationState %+v", vmi.Status.Phase, vmi.Status.NodeName, vmi.Status.MigrationState)
	}
	// The failed target's launcher is gone before the next attempt.
	if err := bed.Eventually(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := b.LauncherPods(ctx, ns, "real-flaky")
		return err == nil && len(pods) == 1, err
	}); err != nil {
		t.Fatalf("target pod of the failed attempt still there: %v", err)
	}
	if _, err := b.CreateMigration(ctx, ns, "real-flaky-2", "real-flaky"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "real-flaky-2", kubevirt.PhaseSucceeded, time.Minute)
	if vmi, err = b.VMI(ctx, ns, "real-flaky"); err != nil {
		t.Fatal(err)
	}
	if vmi.Status.NodeName == nodes[0] || vmi.Annotations[sim.AttemptsAnnotation] != "2" {
		t.Errorf("second attempt: node %s attempts %q", vmi.Status.NodeName, vmi.Annotations[sim.AttemptsAnnotation])
	}
}

// drainTaintKey is the taint KubeVirt's evacuation controller acts on.
func drainTaintKey(t *testing.T, ctx context.Context) string {
	t.Helper()
	kv, err := b.Dynamic.Resource(kubevirtCR).Namespace("kubevirt").Get(ctx, "kubevirt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if key, ok, _ := unstructuredString(kv.Object, "spec", "configuration", "migrations", "nodeDrainTaintKey"); ok && key != "" {
		return key
	}
	return "kubevirt.io/drain" // KubeVirt's default
}

// evacuations lists the migrations KubeVirt's evacuation controller created
// for VMIs of ns leaving node.
func evacuations(ctx context.Context, ns, node string) ([]kubevirt.Migration, error) {
	list, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []kubevirt.Migration
	for _, o := range list.Items {
		var m kubevirt.Migration
		if kubevirt.FromUnstructured(&o, &m) == nil && m.Annotations["kubevirt.io/evacuationMigration"] == node {
			out = append(out, m)
		}
	}
	return out, nil
}

// TestRealEvacuationOnTaint: KubeVirt's evacuation controller migrates the
// VMIs off a node that carries its drain taint, by itself.
func TestRealEvacuationOnTaint(t *testing.T) {
	needReal(t)
	ensureEvacuationNode(t)
	ctx := ctxT(t, 3*time.Minute)
	ns := b.Namespace(t)
	key := drainTaintKey(t, ctx)
	if _, _, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: "evac-1", Node: evacuationNode, EvictionStrategy: "LiveMigrate"}); err != nil {
		t.Fatal(err)
	}
	taint := []corev1.Taint{{Key: key, Effect: corev1.TaintEffectNoSchedule}}
	setTaints(t, ctx, evacuationNode, taint)
	t.Cleanup(func() { setTaints(t, context.Background(), evacuationNode, []corev1.Taint{}) })

	var ms []kubevirt.Migration
	if err := bed.Eventually(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		ms, err = evacuations(ctx, ns, evacuationNode)
		return err == nil && len(ms) > 0, err
	}); err != nil {
		t.Fatalf("no evacuation migration after tainting %s with %s: %v", evacuationNode, key, err)
	}
	if !strings.HasPrefix(ms[0].Name, "kubevirt-evacuation-") {
		t.Errorf("evacuation migration named %s", ms[0].Name)
	}
	waitPhase(t, ns, ms[0].Name, kubevirt.PhaseSucceeded, time.Minute)
	vmi, err := b.VMI(ctx, ns, "evac-1")
	if err != nil {
		t.Fatal(err)
	}
	if vmi.Status.NodeName == evacuationNode {
		t.Errorf("VMI still on %s", evacuationNode)
	}
	t.Logf("taint %s:NoSchedule: KubeVirt created %s, VMI moved to %s", key, ms[0].Name, vmi.Status.NodeName)
}

// TestRealEvictionInterceptor: virt-api answers the eviction of a launcher
// pod with 429 and marks the VMI for evacuation; for LiveMigrate the
// evacuation controller migrates it; for External nothing migrates it.
func TestRealEvictionInterceptor(t *testing.T) {
	needReal(t)
	ensureNodes(t)
	ctx := ctxT(t, 3*time.Minute)
	ns := b.Namespace(t)
	for _, strategy := range []string{"LiveMigrate", "External"} {
		name := "evict-" + strings.ToLower(strategy)
		_, pod, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: name, Node: nodes[1], EvictionStrategy: strategy})
		if err != nil {
			t.Fatal(err)
		}
		err = b.Kube.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod.Name}})
		if !apierrors.IsTooManyRequests(err) {
			t.Fatalf("%s: eviction of %s: %v, want 429 from virt-api", strategy, pod.Name, err)
		}
		t.Logf("%s: eviction answered: %v", strategy, err)
		vmi, err := b.VMI(ctx, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if vmi.Status.EvacuationNodeName != nodes[1] {
			t.Errorf("%s: evacuationNodeName %q, want %s", strategy, vmi.Status.EvacuationNodeName, nodes[1])
		}
	}
	// LiveMigrate: KubeVirt migrates it; the node agent clears evacuationNodeName.
	var ms []kubevirt.Migration
	if err := bed.Eventually(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		ms, err = evacuations(ctx, ns, nodes[1])
		return err == nil && len(ms) > 0, err
	}); err != nil {
		t.Fatalf("no evacuation migration after the eviction: %v", err)
	}
	for _, m := range ms {
		if m.Spec.VMIName != "evict-livemigrate" {
			t.Errorf("KubeVirt migrates %s (strategy External must be left alone)", m.Spec.VMIName)
		}
	}
	waitPhase(t, ns, ms[0].Name, kubevirt.PhaseSucceeded, time.Minute)
	vmi, err := b.VMI(ctx, ns, "evict-livemigrate")
	if err != nil {
		t.Fatal(err)
	}
	if vmi.Status.NodeName == nodes[1] || vmi.Status.EvacuationNodeName != "" {
		t.Errorf("LiveMigrate: node %s evacuationNodeName %q after the evacuation", vmi.Status.NodeName, vmi.Status.EvacuationNodeName)
	}
	// External: still marked, still there, no migration.
	time.Sleep(2 * time.Second)
	if ms, _ = evacuations(ctx, ns, nodes[1]); len(ms) != 1 {
		t.Errorf("%d evacuation migrations, want only the LiveMigrate VMI's", len(ms))
	}
	if vmi, err = b.VMI(ctx, ns, "evict-external"); err != nil {
		t.Fatal(err)
	}
	if vmi.Status.NodeName != nodes[1] || vmi.Status.EvacuationNodeName != nodes[1] {
		t.Errorf("External: node %s evacuationNodeName %q", vmi.Status.NodeName, vmi.Status.EvacuationNodeName)
	}
}

func setTaints(t *testing.T, ctx context.Context, node string, taints []corev1.Taint) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"taints": taints}})
	if _, err := b.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		if cur, ok = m[p]; !ok {
			return "", false, nil
		}
	}
	s, ok := cur.(string)
	return s, ok, nil
}
