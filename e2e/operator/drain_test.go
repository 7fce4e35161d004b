package operator

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

func hasTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == taint {
			return true
		}
	}
	return false
}

// checkMonotonic fails unless every "migrated/total" numerator is at least
// the one before it.
func checkMonotonic(t *testing.T, progress []string) {
	t.Helper()
	last := -1
	for _, p := range progress {
		num, _, ok := strings.Cut(p, "/")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			t.Errorf("progress %q is not migrated/total", p)
			continue
		}
		if n < last {
			t.Errorf("progress went back: %v", progress)
		}
		last = n
	}
}

// TestTaintDrainMixedStrategies drains one of three nodes holding VMs of
// every strategy, then removes the taint.
func TestTaintDrainMixedStrategies(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	g := uniq("mix")
	ns := b.Namespace(t)
	n := nodes(t, b, g, 3)
	setConfig(t, b, "DataVolumes,LiveMigration", "")

	type spec struct {
		name, node, strategy, disk string
		bridge                     bool
		mustLeave                  bool
	}
	specs := []spec{
		{"lm-1", n[0], "LiveMigrate", sim.DiskRWX, false, true},
		{"lm-2", n[0], "LiveMigrate", sim.DiskRWX, false, true},
		{"lm-3", n[0], "LiveMigrate", sim.DiskContainer, false, true},
		{"lm-rwo", n[0], "LiveMigrate", sim.DiskRWO, false, false},
		{"ifp-bridge", n[0], "LiveMigrateIfPossible", sim.DiskRWX, true, false},
		{"none-1", n[0], "None", sim.DiskRWX, false, false},
		{"lm-x", n[1], "LiveMigrate", sim.DiskRWX, false, false},
		{"none-y", n[2], "None", sim.DiskRWX, false, false},
		{"ifp-z", n[2], "LiveMigrateIfPossible", sim.DiskRWX, false, false},
	}
	for _, s := range specs {
		vm(t, b, sim.VM{Namespace: ns, Name: s.name, Node: s.node, Memory: "2Gi",
			EvictionStrategy: s.strategy, Disk: s.disk, Bridge: s.bridge})
	}
	p := startVmdrain(t, b)
	w := watchNode(t, b, n[0])

	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	final := waitNode(t, b, n[0], 2*time.Minute, "state Blocked", stateIs("Blocked"))

	for _, s := range specs {
		where := vmiNode(t, b, ns, s.name)
		if s.mustLeave && where == n[0] {
			t.Errorf("%s is still on the drained node", s.name)
		}
		if !s.mustLeave && where != s.node {
			t.Errorf("%s moved from %s to %s; it should have stayed", s.name, s.node, where)
		}
	}
	if !final.Spec.Unschedulable {
		t.Error("the drained node is not cordoned")
	}
	a := final.Annotations
	if a["vmdrain.io/cordoned-by"] != "vmdrain" {
		t.Errorf("cordoned-by = %q", a["vmdrain.io/cordoned-by"])
	}
	if a["vmdrain.io/progress"] != "3/4" {
		t.Errorf("progress = %q, want 3/4 (3 migrated, 1 blocked)", a["vmdrain.io/progress"])
	}
	if !strings.Contains(a["vmdrain.io/blocked"], ns+"/lm-rwo:") {
		t.Errorf("blocked = %q, want %s/lm-rwo listed", a["vmdrain.io/blocked"], ns)
	}
	if final.Labels["vmdrain.io/state"] != "blocked" {
		t.Errorf("label vmdrain.io/state = %q", final.Labels["vmdrain.io/state"])
	}
	if a["vmdrain.io/started-at"] == "" {
		t.Error("started-at missing")
	}
	// the annotation writes are coalesced, so waiting a moment lets the
	// last events land before they are read
	time.Sleep(1500 * time.Millisecond)
	ev := eventReasons(t, b, "default", n[0])
	for _, r := range []string{"DrainStarted", "MigrationCreated", "MigrationSucceeded", "VMIBlocked"} {
		if ev[r] == 0 {
			t.Errorf("no %s event on the node; events: %v", r, ev)
		}
	}
	if ev["MigrationSucceeded"] < 3 {
		t.Errorf("%d MigrationSucceeded events, want 3", ev["MigrationSucceeded"])
	}
	if got := eventReasons(t, b, ns, "lm-rwo"); got["VMIBlocked"] == 0 {
		t.Errorf("no VMIBlocked event on the blocked VMI: %v", got)
	}
	// one success per VMI that had to leave; a failed attempt (the
	// simulator enforces KubeVirt's own timeouts, which a loaded machine can
	// trip) is retried under a new name, never duplicated
	succeeded := map[string]int{}
	var ours []string
	for _, m := range migrations(t, b, ns) {
		if m.Labels["vmdrain.io/managed-by"] != "vmdrain" {
			continue
		}
		ours = append(ours, m.Name+":"+m.Status.Phase)
		if m.Labels["vmdrain.io/node"] != n[0] || m.Annotations["kubevirt.io/evacuationMigration"] != n[0] {
			t.Errorf("migration %s lacks the contract labels: %v %v", m.Name, m.Labels, m.Annotations)
		}
		if m.Status.Phase == "Succeeded" {
			succeeded[m.Spec.VMIName]++
		}
	}
	for _, name := range []string{"lm-1", "lm-2", "lm-3"} {
		if succeeded[name] != 1 {
			t.Errorf("%s: %d successful migrations, want 1 (all of vmdrain's: %v)", name, succeeded[name], ours)
		}
	}
	if len(succeeded) != 3 {
		t.Errorf("successful migrations for %d VMIs, want 3: %v", len(succeeded), ours)
	}

	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	after := waitNode(t, b, n[0], time.Minute, "uncordoned", func(n *corev1.Node) bool {
		return !n.Spec.Unschedulable && n.Annotations["vmdrain.io/state"] == "Cancelled"
	})
	if _, ok := after.Annotations["vmdrain.io/cordoned-by"]; ok {
		t.Error("cordoned-by left behind after the uncordon")
	}
	time.Sleep(1500 * time.Millisecond)
	ev = eventReasons(t, b, "default", n[0])
	if ev["NodeUncordoned"] == 0 || ev["DrainCancelled"] == 0 {
		t.Errorf("missing NodeUncordoned/DrainCancelled events: %v", ev)
	}
	progress, states := w.snapshot()
	checkMonotonic(t, progress)
	t.Logf("annotation sequence on %s: states %v, progress %v", n[0], states, progress)
	if err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v (want exit 0)", err)
	}
	_ = ctx
}

// TestAdminCordonStays: a node an admin cordoned stays cordoned after the
// drain, and vmdrain does not claim the cordon.
func TestAdminCordonStays(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("adm"), 2)
	setConfig(t, b, "LiveMigration", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "a", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	startVmdrain(t, b)
	kubectl(t, b, "cordon", n[0])
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	node := waitNode(t, b, n[0], time.Minute, "state Drained", stateIs("Drained"))
	if _, ok := node.Annotations["vmdrain.io/cordoned-by"]; ok {
		t.Error("vmdrain claims a cordon it did not make")
	}
	// the simulator picks the group's other node; real KubeVirt's target
	// pod may land on any node the scheduler likes
	if where := vmiNode(t, b, ns, "a"); where == n[0] || !b.Real() && where != n[1] {
		t.Errorf("the VMI did not move to %s (it is on %s)", n[1], where)
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	node = waitNode(t, b, n[0], time.Minute, "state Completed", stateIs("Completed"))
	time.Sleep(2 * time.Second)
	if node = getNode(t, b, n[0]); !node.Spec.Unschedulable {
		t.Error("vmdrain uncordoned a node an admin had cordoned")
	}
}

// TestTaintRemovedMidDrainCancels: the taint goes while a migration waits
// for a target; the waiting migration is deleted and nothing else starts.
func TestTaintRemovedMidDrainCancels(t *testing.T) {
	b := bed.OpenT(t)
	ns, n := stuckDrainBed(t, b, "cxl")
	startVmdrain(t, b)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	waitStuckScheduling(t, b, ns)
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	waitNode(t, b, n[0], time.Minute, "state Cancelled and uncordoned", func(n *corev1.Node) bool {
		return n.Annotations["vmdrain.io/state"] == "Cancelled" && !n.Spec.Unschedulable
	})
	checkCancelled(t, b, ns, n[0])
}

// stuckDrainBed: two nodes; on the first a large VM whose migration target
// never schedules and two small ones queued behind it (one migration at a
// time per node).
func stuckDrainBed(t *testing.T, b *bed.Bed, prefix string) (string, []string) {
	t.Helper()
	ns := b.Namespace(t)
	n := nodes(t, b, uniq(prefix), 2)
	setConfig(t, b, "LiveMigration", "parallelOutboundMigrationsPerNode: 1\n")
	vm(t, b, sim.VM{Namespace: ns, Name: "stuck", Node: n[0], Memory: "8Gi", EvictionStrategy: "LiveMigrate",
		Annotations: map[string]string{sim.TargetUnschedulableAnnotation: "true"}})
	vm(t, b, sim.VM{Namespace: ns, Name: "queued-1", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	vm(t, b, sim.VM{Namespace: ns, Name: "queued-2", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	return ns, n
}

// waitStuckScheduling waits until the large VM's migration waits in
// Scheduling (the small ones are queued behind it).
func waitStuckScheduling(t *testing.T, b *bed.Bed, ns string) {
	t.Helper()
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		for _, m := range migrations(t, b, ns) {
			if m.Spec.VMIName == "stuck" && m.Status.Phase == "Scheduling" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the largest VM's migration never waited in Scheduling: %v", migrations(t, b, ns))
	}
}

// checkCancelled: once the drain of a stuckDrainBed node was cancelled, its
// migrations go, none is made again and no VM moved.
func checkCancelled(t *testing.T, b *bed.Bed, ns, node string) {
	t.Helper()
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		return len(migrations(t, b, ns)) == 0, nil
	})
	if err != nil {
		t.Fatalf("queued migrations were not cancelled: %v", migrations(t, b, ns))
	}
	time.Sleep(2 * time.Second)
	if ms := migrations(t, b, ns); len(ms) != 0 {
		t.Errorf("migrations created after the drain ended: %v", ms)
	}
	for _, name := range []string{"stuck", "queued-1", "queued-2"} {
		if vmiNode(t, b, ns, name) != node {
			t.Errorf("%s moved although the drain was cancelled", name)
		}
	}
}

// TestKillAndRestart: vmdrain killed with SIGKILL mid-drain and restarted
// reaches the same end state without a duplicate migration.
func TestKillAndRestart(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("kil"), 3)
	setConfig(t, b, "LiveMigration", "")
	const count = 6
	for i := 0; i < count; i++ {
		vm(t, b, sim.VM{Namespace: ns, Name: "vm-" + strconv.Itoa(i), Node: n[0], Memory: "24Gi",
			EvictionStrategy: "LiveMigrate"})
	}
	p := startVmdrain(t, b)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		return len(migrations(t, b, ns)) >= 2, nil
	})
	if err != nil {
		t.Fatal("no migration started")
	}
	p.kill() // SIGKILL
	startVmdrain(t, b)
	waitNode(t, b, n[0], 3*time.Minute, "state Drained", stateIs("Drained"))
	perVMI := map[string][]string{}
	succeeded := map[string]int{}
	for _, m := range migrations(t, b, ns) {
		perVMI[m.Spec.VMIName] = append(perVMI[m.Spec.VMIName], m.Name+":"+m.Status.Phase)
		if m.Status.Phase == "Succeeded" {
			succeeded[m.Spec.VMIName]++
		}
	}
	for i := 0; i < count; i++ {
		name := "vm-" + strconv.Itoa(i)
		if vmiNode(t, b, ns, name) == n[0] {
			t.Errorf("%s is still on the drained node", name)
		}
		// a restart must not start a second migration of a VMI: one success
		// each, and any other attempt is a failed one retried under the next
		// attempt number (the names are unique per VMI and attempt)
		if succeeded[name] != 1 || len(perVMI[name]) > 1 && !strings.Contains(strings.Join(perVMI[name], ","), ":Failed") {
			t.Errorf("%s: migrations %v, want exactly one success and no duplicate", name, perVMI[name])
		}
	}
}

// TestConfigEditTakesEffect: without the LiveMigration gate nothing moves
// and the node says why; adding the gate to the ConfigMap starts the drain
// without a restart.
func TestConfigEditTakesEffect(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("cfg"), 2)
	setConfig(t, b, "DataVolumes", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "a", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	p := startVmdrain(t, b)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	node := waitNode(t, b, n[0], time.Minute, "state Blocked", stateIs("Blocked"))
	if !strings.Contains(node.Annotations["vmdrain.io/message"], "LiveMigration feature gate") {
		t.Errorf("message = %q, want it to name the feature gate", node.Annotations["vmdrain.io/message"])
	}
	if ms := migrations(t, b, ns); len(ms) != 0 {
		t.Errorf("migrations created without the gate: %v", ms)
	}
	setConfig(t, b, "DataVolumes,LiveMigration", "parallelMigrationsPerCluster: 3\n")
	waitNode(t, b, n[0], time.Minute, "state Drained", stateIs("Drained"))
	if where := vmiNode(t, b, ns, "a"); where == n[0] || !b.Real() && where != n[1] {
		t.Errorf("the VMI did not move after the gate was enabled (it is on %s)", where)
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	if err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v (want exit 0)", err)
	}
}

// TestSecondDrainOfTheSameVM: a VM vmdrain migrated once (its migration is
// kept) is drained again from its new node with the next attempt number.
func TestSecondDrainOfTheSameVM(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("two"), 3)
	setConfig(t, b, "LiveMigration", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "a", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	startVmdrain(t, b)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	waitNode(t, b, n[0], time.Minute, "state Drained", stateIs("Drained"))
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	waitNode(t, b, n[0], time.Minute, "state Completed", stateIs("Completed"))
	second := vmiNode(t, b, ns, "a")
	kubectl(t, b, "taint", "nodes", second, taint+"=x:NoSchedule")
	waitNode(t, b, second, time.Minute, "state Drained", stateIs("Drained"))
	if where := vmiNode(t, b, ns, "a"); where == second {
		t.Errorf("the VM did not leave %s on the second drain", second)
	}
	var names []string
	for _, m := range migrations(t, b, ns) {
		names = append(names, m.Name+":"+m.Status.Phase)
	}
	if len(names) != 2 || !strings.HasSuffix(strings.SplitN(names[0], ":", 2)[0], "-1") && !strings.HasSuffix(strings.SplitN(names[1], ":", 2)[0], "-1") {
		t.Errorf("migrations %v, want attempts -1 and -2", names)
	}
	kubectl(t, b, "taint", "nodes", second, taint+"-")
}
