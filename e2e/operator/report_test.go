package operator

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

// migrationEvents counts the MigrationSucceeded and MigrationFailed Events
// in ns by "migration/object" (the migration their message names, the
// object they are about), and returns each migration's message.
func migrationEvents(t *testing.T, b *bed.Bed, ns string) (map[string]int, map[string]string) {
	t.Helper()
	count, msgs := map[string]int{}, map[string]string{}
	for _, reason := range []string{"MigrationSucceeded", "MigrationFailed"} {
		list, err := b.Kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: "reason=" + reason})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			// "Migration NAME of VMI ..."
			f := strings.Fields(e.Message)
			if len(f) > 1 {
				count[f[1]+"/"+e.InvolvedObject.Name]++
				msgs[f[1]] = e.Message
			}
		}
	}
	return count, msgs
}

// TestEventsOfMigrationsEndedWhileStopped: migrations that end while
// vmdrain is not running get their MigrationSucceeded Event (on the VMI and
// on the node) from the next vmdrain, saying when they ended, exactly once:
// a third vmdrain sends none again, and each migration records the report
// (vmdrain.io/reported).
func TestEventsOfMigrationsEndedWhileStopped(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("rep"), 3)
	setConfig(t, b, "LiveMigration", "")
	const count = 4
	for i := 0; i < count; i++ {
		vm(t, b, sim.VM{Namespace: ns, Name: "vm-" + strconv.Itoa(i), Node: n[0], Memory: "16Gi",
			EvictionStrategy: "LiveMigrate"})
	}
	p := startVmdrain(t, b)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	var unseen []string
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		unseen = unseen[:0]
		for _, m := range migrations(t, b, ns) {
			if m.Status.Phase != "Succeeded" && m.Status.Phase != "Failed" {
				unseen = append(unseen, m.Name)
			}
		}
		return len(unseen) >= 1, nil
	})
	if err != nil {
		t.Fatal("no migration in flight")
	}
	p.kill()
	// the migrations in flight at the kill end while no vmdrain runs
	err = bed.Eventually(context.Background(), 2*time.Minute, func(ctx context.Context) (bool, error) {
		for _, m := range migrations(t, b, ns) {
			if m.Status.Phase != "Succeeded" && m.Status.Phase != "Failed" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal("the migrations did not end while vmdrain was stopped")
	}
	// one may have ended in the moment between the look and the kill
	_, before := migrationEvents(t, b, ns)
	unseen = slices.DeleteFunc(unseen, func(name string) bool { return before[name] != "" })
	if len(unseen) == 0 {
		t.Fatal("every migration ended before the kill")
	}
	p = startVmdrain(t, b)
	waitNode(t, b, n[0], 3*time.Minute, "state Drained", stateIs("Drained"))
	checkReportedOnce(t, b, ns, n[0], unseen)
	// a further restart reports nothing again
	p.kill()
	startVmdrain(t, b)
	time.Sleep(5 * time.Second)
	checkReportedOnce(t, b, ns, n[0], unseen)
}

// checkReportedOnce: every migration of ours that ended has one Event on
// its VMI and one on the node, and carries vmdrain.io/reported; those in
// unseen say when they ended.
func checkReportedOnce(t *testing.T, b *bed.Bed, ns, node string, unseen []string) {
	t.Helper()
	err := bed.Eventually(context.Background(), 30*time.Second, func(ctx context.Context) (bool, error) {
		for _, m := range ours(t, b, ns) {
			if m.Annotations["vmdrain.io/reported"] != m.Status.Phase {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("a migration carries no vmdrain.io/reported equal to its phase: %v", ours(t, b, ns))
	}
	onVMI, msgs := migrationEvents(t, b, ns)
	onNode, _ := migrationEvents(t, b, "default")
	for _, m := range ours(t, b, ns) {
		if got := onVMI[m.Name+"/"+m.Spec.VMIName]; got != 1 {
			t.Errorf("%s: %d Events on VMI %s, want 1", m.Name, got, m.Spec.VMIName)
		}
		if got := onNode[m.Name+"/"+node]; got != 1 {
			t.Errorf("%s: %d Events on node %s, want 1", m.Name, got, node)
		}
	}
	for _, name := range unseen {
		if !strings.Contains(msgs[name], " at ") {
			t.Errorf("the Event of %s, which ended while vmdrain was stopped, does not say when: %q", name, msgs[name])
		}
	}
	t.Logf("%d migrations reported once each; ended while stopped: %v", len(ours(t, b, ns)), unseen)
}

// ours: the migrations of vmdrain's in ns.
func ours(t *testing.T, b *bed.Bed, ns string) []kubevirt.Migration {
	var out []kubevirt.Migration
	for _, m := range migrations(t, b, ns) {
		if m.Labels["vmdrain.io/managed-by"] == "vmdrain" {
			out = append(out, m)
		}
	}
	return out
}
