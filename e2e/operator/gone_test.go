package operator

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// TestNodeDeletedMidDrain: a node deleted while two of its VMIs migrate
// (their migrations transfer) and two wait. The two migrations finish; each waiting VMI gets one
// NodeDeleted Event, no migration is made for it, the log says what
// happened, node_deleted_vmis_total counts 2, and vmdrain keeps no drain
// state of the node (drains_in_progress 0, its NodeDrain record deleted).
func TestNodeDeletedMidDrain(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("del"), 3)
	setConfig(t, b, "LiveMigration", "parallelOutboundMigrationsPerNode: 2\n")
	const count = 4
	for i := 0; i < count; i++ {
		vm(t, b, sim.VM{Namespace: ns, Name: "vm-" + strconv.Itoa(i), Node: n[0], Memory: "16Gi",
			EvictionStrategy: "LiveMigrate"})
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startVmdrain(t, b, "--metrics-listen", addr)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	w := watchMigrations(t, b, ns)
	// deleted once both migrations transfer (seen Running): a migration
	// still being scheduled when its source node goes is not one in flight
	w.waitUntil(t, 90*time.Second, "two migrations transferring", func() bool {
		running := 0
		for _, m := range migrations(t, b, ns) {
			if _, ok := w.seenAt(m.Name, "Running"); ok {
				running++
			}
		}
		return running >= 2
	})
	kubectl(t, b, "delete", "node", n[0], "--wait=false")

	// the two in flight finish; the two waiting are left, each said once
	moved := 0
	err := bed.Eventually(context.Background(), 2*time.Minute, func(ctx context.Context) (bool, error) {
		moved = 0
		for _, m := range migrations(t, b, ns) {
			if m.Status.Phase == "Succeeded" {
				moved++
			}
		}
		return moved == 2 && w.inFlightFrom(n[0]) == 0, nil
	})
	if err != nil {
		t.Fatalf("the migrations in flight at the deletion did not finish: %d succeeded", moved)
	}
	left := 0
	err = bed.Eventually(context.Background(), 30*time.Second, func(ctx context.Context) (bool, error) {
		left = 0
		for i := 0; i < count; i++ {
			left += eventReasons(t, b, ns, "vm-"+strconv.Itoa(i))["NodeDeleted"]
		}
		return left >= 2, nil
	})
	if err != nil || left != 2 {
		t.Errorf("%d NodeDeleted Events on the VMIs, want 2 (one per VMI left)", left)
	}
	time.Sleep(3 * time.Second) // time for a second report, were there one
	total := 0
	for i := 0; i < count; i++ {
		name := "vm-" + strconv.Itoa(i)
		got := eventReasons(t, b, ns, name)["NodeDeleted"]
		total += got
		if got > 1 {
			t.Errorf("%s: %d NodeDeleted Events, want at most 1", name, got)
		}
	}
	if total != 2 {
		t.Errorf("%d NodeDeleted Events, want 2", total)
	}
	if got := len(migrations(t, b, ns)); got != 2 {
		t.Errorf("%d migrations, want the 2 in flight at the deletion", got)
	}
	s, err := scrapeMetrics(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := s["vmdrain_node_deleted_vmis_total"]; got != 2 {
		t.Errorf("vmdrain_node_deleted_vmis_total = %v, want 2", got)
	}
	if got := s["vmdrain_drains_in_progress"]; got != 0 {
		t.Errorf("vmdrain_drains_in_progress = %v after the node was deleted, want 0", got)
	}
	if _, err := b.Dynamic.Resource(ndResource).Get(context.Background(), n[0], metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the NodeDrain record of the deleted node: %v, want NotFound", err)
	}
	data, _ := os.ReadFile(p.log)
	if !strings.Contains(string(data), "the node was deleted during its drain") {
		t.Error("the log does not say that the node was deleted during its drain")
	}
	t.Logf("deleted mid-drain: %d migrations finished, %d VMIs left and reported", moved, total)
}
