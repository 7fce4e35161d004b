package smoke

import (
	"context"
	"strings"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

// The simulator's fault annotations and policies, at the bed's time scale.

func TestFailAttempts(t *testing.T) {
	ensureNodes(t)
	ctx := ctxT(t, 2*time.Minute)
	ns := b.Namespace(t)
	if _, _, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: "flaky", Node: nodes[0], EvictionStrategy: "LiveMigrate",
		Annotations: map[string]string{sim.FailAttemptsAnnotation: "1"}}); err != nil {
		t.Fatal(err)
	}
	b.CreateMigration(ctx, ns, "try-1", "flaky")
	waitPhase(t, ns, "try-1", kubevirt.PhaseFailed, time.Minute)
	vmi, _ := b.VMI(ctx, ns, "flaky")
	if st := vmi.Status.MigrationState; st == nil || !st.Failed || !st.Completed || vmi.Status.NodeName != nodes[0] {
		t.Fatalf("after a failed attempt: node %s state %+v", vmi.Status.NodeName, st)
	}
	if pods, _ := b.LauncherPods(ctx, ns, "flaky"); len(pods) != 1 || pods[0].Spec.NodeName != nodes[0] {
		t.Fatalf("target pod not removed after failure: %d pods", len(pods))
	}
	b.CreateMigration(ctx, ns, "try-2", "flaky")
	waitPhase(t, ns, "try-2", kubevirt.PhaseSucceeded, time.Minute)
	vmi, _ = b.VMI(ctx, ns, "flaky")
	if vmi.Annotations[sim.AttemptsAnnotation] != "2" || vmi.Status.NodeName == nodes[0] {
		t.Errorf("second attempt: attempts %q node %s", vmi.Annotations[sim.AttemptsAnnotation], vmi.Status.NodeName)
	}
}

func TestDirtyRateNeverConverges(t *testing.T) {
	ensureNodes(t)
	ctx := ctxT(t, 2*time.Minute)
	ns := b.Namespace(t)
	if _, _, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: "busy", Node: nodes[2], Memory: "1Gi",
		Annotations: map[string]string{sim.DirtyRateAnnotation: "128Mi"}}); err != nil {
		t.Fatal(err)
	}
	b.CreateMigration(ctx, ns, "busy-mig", "busy")
	waitPhase(t, ns, "busy-mig", kubevirt.PhaseFailed, time.Minute)
	vmi, _ := b.VMI(ctx, ns, "busy")
	st := vmi.Status.MigrationState
	if st == nil || !st.Failed || st.AbortStatus != "Succeeded" || !strings.Contains(st.FailureReason, "no progress") {
		t.Fatalf("migrationState %+v", st)
	}
}

func TestPolicyAndAbortByDelete(t *testing.T) {
	ensureNodes(t)
	ctx := ctxT(t, 2*time.Minute)
	ns := b.Namespace(t)
	policies := b.Dynamic.Resource(kubevirt.PolicyResource)
	// A slow policy for VMs labelled smoke=slow: 64Gi at 256Mi/s lasts 256 simulated seconds.
	slow := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "migrations.kubevirt.io/v1alpha1", "kind": "MigrationPolicy",
		"metadata": map[string]any{"name": "smoke-slow"},
		"spec": map[string]any{
			"bandwidthPerMigration": "256Mi",
			"selectors":             map[string]any{"virtualMachineInstanceSelector": map[string]any{"smoke": "slow"}},
		},
	}}
	if _, err := policies.Create(ctx, slow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer policies.Delete(context.Background(), "smoke-slow", metav1.DeleteOptions{})
	if _, _, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: "big", Node: nodes[0], Memory: "64Gi",
		Labels: map[string]string{"smoke": "slow"}}); err != nil {
		t.Fatal(err)
	}
	b.CreateMigration(ctx, ns, "big-mig", "big")
	waitPhase(t, ns, "big-mig", kubevirt.PhaseRunning, time.Minute)
	vmi, _ := b.VMI(ctx, ns, "big")
	if st := vmi.Status.MigrationState; st == nil || st.MigrationPolicyName != "smoke-slow" || st.Completed {
		t.Fatalf("running migration state %+v", st)
	}
	if err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).Delete(ctx, "big-mig", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := bed.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		vmi, err := b.VMI(ctx, ns, "big")
		if err != nil || vmi.Status.MigrationState == nil {
			return false, err
		}
		st := vmi.Status.MigrationState
		pods, _ := b.LauncherPods(ctx, ns, "big")
		return st.AbortRequested && st.AbortStatus == "Succeeded" && st.Completed && st.Failed && len(pods) == 1, nil
	})
	if err != nil {
		vmi, _ := b.VMI(ctx, ns, "big")
		t.Fatalf("abort not recorded: %+v (%v)", vmi.Status.MigrationState, err)
	}
}

// An evicted launcher pod kills its VM, as in KubeVirt: the VMI fails. This
// is what vmdrain exists to prevent. (Real KubeVirt's virt-api refuses the
// eviction of a LiveMigrate VMI's pod, see real_test.go; there the VMI has
// strategy None, whose pod it lets go.)
func TestEvictedLauncherKillsVMI(t *testing.T) {
	ensureNodes(t)
	ctx := ctxT(t, time.Minute)
	ns := b.Namespace(t)
	strategy := "LiveMigrate"
	if b.Real() {
		strategy = "None"
	}
	_, pod, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: "victim", Node: nodes[2], EvictionStrategy: strategy})
	if err != nil {
		t.Fatal(err)
	}
	eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod.Name}}
	if err := b.Kube.CoreV1().Pods(ns).EvictV1(ctx, eviction); err != nil {
		t.Fatal(err)
	}
	err = bed.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		vmi, err := b.VMI(ctx, ns, "victim")
		return err == nil && vmi.Status.Phase == "Failed", nil
	})
	if err != nil {
		t.Fatalf("VMI did not fail after its launcher pod was evicted: %v", err)
	}
}
