package operator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

// TestAdoptsKubeVirtsEvacuationMigration: a migration made by someone else
// (here shaped like one of KubeVirt's own evacuation controller) is in
// flight when the node is tainted. vmdrain adopts it: never a second
// migration for that VMI, the adopted one counted against the per-node
// limit, left alone to finish; the rest of the node is drained around it.
func TestAdoptsKubeVirtsEvacuationMigration(t *testing.T) {
	const nodeLimit = 2
	b := bed.OpenT(t)
	ctx := context.Background()
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("adopt"), 2)
	setConfig(t, b, "LiveMigration", fmt.Sprintf("parallelOutboundMigrationsPerNode: %d\n", nodeLimit))
	specs := []sim.VM{{Namespace: ns, Name: "big", Node: n[0], Memory: "64Gi", EvictionStrategy: "LiveMigrate"}}
	for i := 0; i < 3; i++ {
		specs = append(specs, sim.VM{Namespace: ns, Name: fmt.Sprintf("small-%d", i), Node: n[0], Memory: "1Gi",
			EvictionStrategy: "LiveMigrate"})
	}
	made := vms(t, b, specs)
	if f := foreignInFlight(t, b, ns); len(f) > 0 {
		t.Fatalf("the bed has migrations in flight from elsewhere: %v", f)
	}
	w := watchMigrations(t, b, ns)
	resetAfter(t, b, ns, n[0])
	diagnose(t, b, ns, w, n...)

	// KubeVirt's evacuation controller names its migrations
	// kubevirt-evacuation-<random> and marks them with the source node.
	const foreign = "kubevirt-evacuation-x7k2q"
	if _, err := b.CreateMigration(ctx, ns, foreign, "big"); err != nil {
		t.Fatal(err)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"kubevirt.io/evacuationMigration":%q}}}`, n[0])
	if _, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).Patch(ctx, foreign,
		types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	w.waitUntil(t, time.Minute, foreign+" Running", func() bool {
		_, ok := w.seenAt(foreign, kubevirt.PhaseRunning)
		return ok
	})

	startVmdrain(t, b)
	nw := watchNode(t, b, n[0])
	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	final := waitNode(t, b, n[0], 3*time.Minute, "state Drained", stateIs("Drained"))
	// the adopted migration is part of the drain's progress: 4 VMs, from
	// the first report to the last, none dropped, none counted twice
	if got := final.Annotations["vmdrain.io/progress"]; got != "4/4" {
		t.Errorf("final progress %q, want 4/4 (the adopted migration counted)", got)
	}
	progress, states := nw.snapshot()
	t.Logf("annotation sequence on %s: states %v, progress %v", n[0], states, progress)
	checkMonotonic(t, progress)
	for _, p := range progress {
		if !strings.HasSuffix(p, "/4") {
			t.Errorf("progress %q: the total is not 4 (seen: %v)", p, progress)
		}
	}
	if err := w.error(); err != nil {
		t.Fatalf("migration watch: %v", err)
	}

	// never a migration of vmdrain's for the VMI whose migration was in flight
	bigUID := string(made["big"].UID)
	for _, m := range migrations(t, b, ns) {
		if m.Name != foreign && (m.Spec.VMIName == "big" || strings.Contains(m.Name, bigUID[:8])) {
			t.Errorf("a second migration %s (%s) for the VMI whose migration was adopted", m.Name, m.Status.Phase)
		}
	}
	// the VMI's move ends the drain; the migration's own Succeeded may
	// land a moment later
	w.waitUntil(t, time.Minute, foreign+" Succeeded", func() bool {
		_, ok := w.seenAt(foreign, kubevirt.PhaseSucceeded)
		return ok
	})
	fm, err := b.Migration(ctx, ns, foreign)
	if err != nil {
		t.Fatalf("the adopted migration is gone: %v", err)
	}
	// its end wakes the node's reconcile (the source node is in its
	// annotation): the drain completes then, not at some later resync
	done, err := time.Parse(time.RFC3339, final.Annotations["vmdrain.io/completed-at"])
	if err != nil {
		t.Fatalf("completed-at: %v", err)
	}
	if end := lastTransition(fm); done.Sub(end) > 5*time.Second {
		t.Errorf("the drain completed at %s, %s after the adopted migration ended at %s",
			done.Format(time.TimeOnly), done.Sub(end), end.Format(time.TimeOnly))
	}
	if _, deleted := w.seenAt(foreign, phaseDeleting); deleted {
		t.Error("vmdrain deleted the adopted migration")
	}
	// the adopted migration counted against the node's limit: everything
	// in flight in this namespace leaves node 0
	var overlapped bool
	foreignEnd, _ := w.seenAt(foreign, kubevirt.PhaseSucceeded)
	for _, s := range w.snapshot() {
		if s.total > nodeLimit {
			t.Errorf("%d migrations in flight from %s (adopted one included) after %s, limit %d", s.total, n[0], s.what, nodeLimit)
		}
		if s.total == nodeLimit && s.at.Before(foreignEnd) {
			overlapped = true
		}
	}
	for i := 0; i < 3; i++ {
		if where := vmiNode(t, b, ns, fmt.Sprintf("small-%d", i)); where == n[0] {
			t.Errorf("small-%d is still on %s", i, n[0])
		}
	}
	if where := vmiNode(t, b, ns, "big"); where == n[0] {
		t.Errorf("big is still on %s", n[0])
	}
	if !overlapped {
		t.Logf("note: no migration of vmdrain's ran beside the adopted one (it ended first)\n%s", w.history())
	}
}
