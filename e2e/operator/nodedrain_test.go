package operator

// The NodeDrain API (crds/nodedrains.vmdrain.io.yaml): a NodeDrain drains
// its node; deleting it ends the drain; vmdrain records the drains of the
// taint and of evictions as NodeDrains of its own.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

const ndCRD = "nodedrains.vmdrain.io"

var ndResource = schema.GroupVersionResource{Group: "vmdrain.io", Version: "v1alpha1", Resource: "nodedrains"}

// createNodeDrain creates the NodeDrain of node with kubectl, as a user
// would, and deletes it when the test ends.
func createNodeDrain(t *testing.T, b *bed.Bed, node, reason, uncordonPolicy string) {
	t.Helper()
	policy := ""
	if uncordonPolicy != "" {
		policy = "\n  uncordonPolicy: " + uncordonPolicy
	}
	yaml := fmt.Sprintf("apiVersion: vmdrain.io/v1alpha1\nkind: NodeDrain\nmetadata:\n  name: %s\nspec:\n  nodeName: %s\n  reason: %q%s\n",
		node, node, reason, policy)
	if out, err := b.KubectlStdin(context.Background(), yaml, "create", "-f", "-"); err != nil {
		t.Fatalf("create NodeDrain %s: %v\n%s", node, err, out)
	}
	t.Cleanup(func() {
		_ = b.Dynamic.Resource(ndResource).Delete(context.Background(), node, metav1.DeleteOptions{})
	})
}

// getNodeDrain returns the NodeDrain named name, or nil when there is none.
func getNodeDrain(t testing.TB, b *bed.Bed, name string) *unstructured.Unstructured {
	t.Helper()
	nd, err := b.Dynamic.Resource(ndResource).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// ndString reads a string field of a NodeDrain ("status", "phase").
func ndString(nd *unstructured.Unstructured, fields ...string) string {
	if nd == nil {
		return ""
	}
	s, _, _ := unstructured.NestedString(nd.Object, fields...)
	return s
}

func ndInt(nd *unstructured.Unstructured, fields ...string) int64 {
	if nd == nil {
		return -1
	}
	v, _, _ := unstructured.NestedInt64(nd.Object, fields...)
	return v
}

// ndCondition returns the status of a condition ("" when absent).
func ndCondition(nd *unstructured.Unstructured, typ string) string {
	if nd == nil {
		return ""
	}
	conds, _, _ := unstructured.NestedSlice(nd.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

// waitNodeDrain polls the NodeDrain until cond holds (nd is nil while
// there is none).
func waitNodeDrain(t testing.TB, b *bed.Bed, name string, timeout time.Duration, what string,
	cond func(nd *unstructured.Unstructured) bool) *unstructured.Unstructured {
	t.Helper()
	var last *unstructured.Unstructured
	err := bed.Eventually(context.Background(), timeout, func(ctx context.Context) (bool, error) {
		last = getNodeDrain(t, b, name)
		return cond(last), nil
	})
	if err != nil {
		var status any
		if last != nil {
			status = last.Object["status"]
		}
		t.Fatalf("NodeDrain %s: %s not reached within %s; status %v", name, what, timeout, status)
	}
	return last
}

// checkColumns checks `kubectl get nodedrains NAME` as kubectl prints it:
// the columns, and the node's row.
func checkColumns(t *testing.T, b *bed.Bed, name, trigger string) {
	t.Helper()
	out := kubectl(t, b, "get", "nodedrains", name)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get nodedrains %s:\n%s", name, out)
	}
	head := strings.Fields(lines[0])
	want := []string{"NAME", "NODE", "TRIGGER", "PHASE", "PROGRESS", "BLOCKED", "ETA", "AGE"}
	if strings.Join(head, " ") != strings.Join(want, " ") {
		t.Errorf("columns %v, want %v", head, want)
	}
	row := strings.Fields(lines[1])
	if len(row) < 4 || row[0] != name || row[1] != name || row[2] != trigger {
		t.Errorf("row %q: want name and node %s, trigger %s", lines[1], name, trigger)
	}
	t.Logf("kubectl get nodedrains:\n%s", out)
}

// TestNodeDrainDrainsTheNode: a NodeDrain drains its node as the taint
// does (cordon recorded, VMIs migrated), its status and conditions follow,
// `kubectl wait --for=condition=Drained` returns, and deleting it completes
// the drain: the node is uncordoned and the object goes only then (the
// finalizer). A second node's NodeDrain lists the VMI that cannot leave.
func TestNodeDrainDrainsTheNode(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("ndd"), 3)
	setConfig(t, b, "LiveMigration", "")
	for i := 0; i < 3; i++ {
		vm(t, b, sim.VM{Namespace: ns, Name: fmt.Sprintf("lm-%d", i), Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	}
	vm(t, b, sim.VM{Namespace: ns, Name: "rwo", Node: n[1], Memory: "1Gi", EvictionStrategy: "LiveMigrate", Disk: sim.DiskRWO})
	vm(t, b, sim.VM{Namespace: ns, Name: "lm-b", Node: n[1], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	startVmdrain(t, b)
	createNodeDrain(t, b, n[0], "kernel upgrade", "")

	waitNode(t, b, n[0], time.Minute, "cordoned by vmdrain, trigger nodedrain", func(node *corev1.Node) bool {
		return node.Spec.Unschedulable && node.Annotations["vmdrain.io/cordoned-by"] == "vmdrain" &&
			node.Annotations["vmdrain.io/trigger"] == "nodedrain"
	})
	nd := waitNodeDrain(t, b, n[0], time.Minute, "the finalizer and trigger nodedrain", func(nd *unstructured.Unstructured) bool {
		return nd != nil && len(nd.GetFinalizers()) == 1 && ndString(nd, "status", "trigger") == "nodedrain"
	})
	if nd.GetFinalizers()[0] != "vmdrain.io/drain" {
		t.Errorf("finalizers %v", nd.GetFinalizers())
	}
	checkColumns(t, b, n[0], "nodedrain")
	kubectl(t, b, "wait", "--for=condition=Drained", "nodedrain/"+n[0], "--timeout=180s")
	nd = getNodeDrain(t, b, n[0])
	if ndString(nd, "status", "phase") != "Drained" || ndString(nd, "status", "progress") != "3/3" ||
		ndInt(nd, "status", "migrated") != 3 || ndCondition(nd, "Progressing") != "False" || ndCondition(nd, "Blocked") != "False" {
		t.Errorf("after kubectl wait: status %v", nd.Object["status"])
	}
	if ndString(nd, "status", "startTime") == "" || ndString(nd, "status", "completionTime") == "" ||
		ndInt(nd, "status", "observedGeneration") != nd.GetGeneration() {
		t.Errorf("status %v", nd.Object["status"])
	}

	// the second node (where some of the first's VMIs may have gone): all
	// but one VMI leave
	createNodeDrain(t, b, n[1], "", "")
	nd = waitNodeDrain(t, b, n[1], 2*time.Minute, "phase Blocked with all but one migrated", func(nd *unstructured.Unstructured) bool {
		total := ndInt(nd, "status", "total")
		return ndString(nd, "status", "phase") == "Blocked" && total >= 2 && ndInt(nd, "status", "migrated") == total-1
	})
	blocked, _, _ := unstructured.NestedSlice(nd.Object, "status", "blockedVMIs")
	if ndInt(nd, "status", "blocked") != 1 || len(blocked) != 1 || blocked[0].(map[string]any)["name"] != "rwo" {
		t.Errorf("status.blocked %d, blockedVMIs %v, want rwo", ndInt(nd, "status", "blocked"), blocked)
	}
	if ndCondition(nd, "Blocked") != "True" || ndCondition(nd, "Drained") != "False" {
		t.Errorf("conditions %v", nd.Object["status"].(map[string]any)["conditions"])
	}
	kubectl(t, b, "delete", "nodedrain", n[1], "--wait=true", "--timeout=60s")

	// deleting the first NodeDrain completes its drain
	kubectl(t, b, "delete", "nodedrain", n[0], "--wait=true", "--timeout=60s")
	node := getNode(t, b, n[0])
	if node.Annotations["vmdrain.io/state"] != "Completed" || node.Spec.Unschedulable {
		t.Errorf("once the NodeDrain was gone: unschedulable %v, annotations %v", node.Spec.Unschedulable, node.Annotations)
	}
	if _, ok := node.Annotations["vmdrain.io/cordoned-by"]; ok {
		t.Errorf("cordoned-by left on the node: %v", node.Annotations)
	}
	if r := eventReasons(t, b, "default", n[0]); r["DrainStarted"] != 1 || r["DrainCompleted"] != 2 || r["NodeUncordoned"] != 1 {
		t.Errorf("node events %v", r)
	}
	if node = getNode(t, b, n[1]); node.Annotations["vmdrain.io/state"] != "Cancelled" || node.Spec.Unschedulable {
		t.Errorf("%s: unschedulable %v, annotations %v", n[1], node.Spec.Unschedulable, node.Annotations)
	}
}

// TestNodeDrainDeletedMidDrainCancels: deleting the NodeDrain while a
// migration waits cancels what is queued, uncordons the node and says that
// the NodeDrain ended it; the object goes once the end is written.
func TestNodeDrainDeletedMidDrainCancels(t *testing.T) {
	b := bed.OpenT(t)
	ns, n := stuckDrainBed(t, b, "ndc")
	startVmdrain(t, b)
	createNodeDrain(t, b, n[0], "", "")
	waitStuckScheduling(t, b, ns)
	kubectl(t, b, "delete", "nodedrain", n[0], "--wait=true", "--timeout=60s")
	node := getNode(t, b, n[0])
	if node.Annotations["vmdrain.io/state"] != "Cancelled" || node.Spec.Unschedulable {
		t.Errorf("once the NodeDrain was gone: unschedulable %v, annotations %v", node.Spec.Unschedulable, node.Annotations)
	}
	if msg := node.Annotations["vmdrain.io/message"]; !strings.Contains(msg, "NodeDrain") {
		t.Errorf("message %q does not name the NodeDrain", msg)
	}
	checkCancelled(t, b, ns, n[0])
	if nd := getNodeDrain(t, b, n[0]); nd != nil {
		t.Errorf("vmdrain wrote a record of a drain that was the NodeDrain's: %v", nd.Object)
	}
}

// TestNodeDrainOnCompletion: uncordonPolicy OnCompletion uncordons the node
// as soon as every VMI left; the NodeDrain stays in phase Completed.
func TestNodeDrainOnCompletion(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("ndo"), 2)
	setConfig(t, b, "LiveMigration", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "a", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	startVmdrain(t, b)
	createNodeDrain(t, b, n[0], "replace a disk", "OnCompletion")
	nd := waitNodeDrain(t, b, n[0], 2*time.Minute, "phase Completed", func(nd *unstructured.Unstructured) bool {
		return ndString(nd, "status", "phase") == "Completed"
	})
	if ndString(nd, "status", "completionTime") == "" || ndCondition(nd, "Drained") != "True" || ndCondition(nd, "Progressing") != "False" {
		t.Errorf("status %v", nd.Object["status"])
	}
	node := waitNode(t, b, n[0], 30*time.Second, "uncordoned", func(node *corev1.Node) bool { return !node.Spec.Unschedulable })
	if vmiNode(t, b, ns, "a") == n[0] {
		t.Error("the VMI did not leave")
	}
	// nothing cordons it again while the completed NodeDrain stays
	time.Sleep(3 * time.Second)
	if node = getNode(t, b, n[0]); node.Spec.Unschedulable || node.Annotations["vmdrain.io/state"] != "Completed" {
		t.Errorf("after completion: unschedulable %v, annotations %v", node.Spec.Unschedulable, node.Annotations)
	}
	kubectl(t, b, "delete", "nodedrain", n[0], "--wait=true", "--timeout=30s")
}

// TestNodeDrainRecordsTaintDrain: a drain by the taint gets a NodeDrain of
// vmdrain's (labelled, trigger taint, status following the node) that says
// Completed when the taint goes, and is deleted after the retention.
func TestNodeDrainRecordsTaintDrain(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("ndt"), 2)
	setConfig(t, b, "LiveMigration", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "a", Node: n[0], Memory: "2Gi", EvictionStrategy: "LiveMigrate"})
	vm(t, b, sim.VM{Namespace: ns, Name: "b", Node: n[0], Memory: "2Gi", EvictionStrategy: "LiveMigrate"})
	startVmdrain(t, b, "--nodedrain-retention", "8s")
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	nd := waitNodeDrain(t, b, n[0], time.Minute, "a record with trigger taint", func(nd *unstructured.Unstructured) bool {
		return nd != nil && ndString(nd, "status", "trigger") == "taint"
	})
	if nd.GetLabels()["vmdrain.io/managed-by"] != "vmdrain" || len(nd.GetFinalizers()) != 0 ||
		!strings.Contains(ndString(nd, "spec", "reason"), taint) {
		t.Errorf("record: labels %v, finalizers %v, spec %v", nd.GetLabels(), nd.GetFinalizers(), nd.Object["spec"])
	}
	checkColumns(t, b, n[0], "taint")
	nd = waitNodeDrain(t, b, n[0], 2*time.Minute, "phase Drained", func(nd *unstructured.Unstructured) bool {
		return ndString(nd, "status", "phase") == "Drained"
	})
	if ndString(nd, "status", "progress") != "2/2" || ndCondition(nd, "Drained") != "True" {
		t.Errorf("status %v", nd.Object["status"])
	}
	// the record may not end the drain: deleting it brings it back
	if err := b.Dynamic.Resource(ndResource).Delete(context.Background(), n[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNodeDrain(t, b, n[0], 30*time.Second, "the record written again", func(nd *unstructured.Unstructured) bool {
		return ndString(nd, "status", "phase") == "Drained"
	})
	if !getNode(t, b, n[0]).Spec.Unschedulable {
		t.Error("deleting the record of a taint drain uncordoned the node")
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	nd = waitNodeDrain(t, b, n[0], 30*time.Second, "phase Completed", func(nd *unstructured.Unstructured) bool {
		return ndString(nd, "status", "phase") == "Completed"
	})
	if ndString(nd, "status", "completionTime") == "" {
		t.Errorf("status %v", nd.Object["status"])
	}
	start := time.Now()
	waitNodeDrain(t, b, n[0], 40*time.Second, "the record deleted after its retention", func(nd *unstructured.Unstructured) bool {
		return nd == nil
	})
	t.Logf("record deleted %.1fs after the drain completed (retention 8s)", time.Since(start).Seconds())
}

// TestNodeDrainValidation: the apiserver refuses a second NodeDrain for a
// node, a changed nodeName and an unknown uncordonPolicy, each with a
// message that says why.
func TestNodeDrainValidation(t *testing.T) {
	b := bed.OpenT(t)
	n := nodes(t, b, uniq("ndv"), 1)
	ctx := context.Background()
	cases := []struct{ name, yaml, want string }{
		{"named after another node", "metadata:\n  name: other-name\nspec:\n  nodeName: " + n[0] + "\n", "metadata.name must equal spec.nodeName"},
		{"unknown uncordonPolicy", "metadata:\n  name: " + n[0] + "\nspec:\n  nodeName: " + n[0] + "\n  uncordonPolicy: Never\n", "Unsupported value: \"Never\""},
		{"no nodeName", "metadata:\n  name: " + n[0] + "\nspec:\n  reason: x\n", "spec.nodeName: Required value"},
	}
	for _, c := range cases {
		out, err := b.KubectlStdin(ctx, "apiVersion: vmdrain.io/v1alpha1\nkind: NodeDrain\n"+c.yaml, "create", "-f", "-")
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: err %v, output %q, want it to say %q", c.name, err, out, c.want)
		}
	}
	// the node's own NodeDrain is accepted once; a second is refused
	yaml := "apiVersion: vmdrain.io/v1alpha1\nkind: NodeDrain\nmetadata:\n  name: " + n[0] + "\nspec:\n  nodeName: " + n[0] + "\n"
	if out, err := b.KubectlStdin(ctx, yaml, "create", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer func() { _ = b.Dynamic.Resource(ndResource).Delete(ctx, n[0], metav1.DeleteOptions{}) }()
	if out, err := b.KubectlStdin(ctx, yaml, "create", "-f", "-"); err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("a second NodeDrain for %s: err %v, output %q", n[0], err, out)
	}
	out, err := b.Kubectl(ctx, "patch", "nodedrain", n[0], "--type=merge", "-p", `{"spec":{"nodeName":"elsewhere"}}`)
	if err == nil || !strings.Contains(out, "spec.nodeName is immutable") {
		t.Errorf("changing nodeName: err %v, output %q", err, out)
	}
}

// smallNode creates a kwok node with only mem of allocatable memory.
func smallNode(t *testing.T, b *bed.Bed, name, mem string) {
	t.Helper()
	ctx := context.Background()
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods: resource.MustParse("110")}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
	if _, err := b.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitNodesReady(ctx, time.Minute, name); err != nil {
		t.Fatal(err)
	}
}

// cordonOthers cordons every schedulable node of the bed but keep (earlier
// tests leave theirs), and uncordons them when the test ends. Only safe
// because the tests run one at a time.
func cordonOthers(t *testing.T, b *bed.Bed, keep ...string) {
	t.Helper()
	list, err := b.Kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		if n.Spec.Unschedulable || slices.Contains(keep, n.Name) {
			continue
		}
		kubectl(t, b, "cordon", n.Name)
		t.Cleanup(func() { _, _ = b.Kubectl(context.Background(), "uncordon", n.Name) })
	}
}

// TestDrainSaysWhenTheVMIsDoNotFit: the only node that can take VMs has
// room for one of the two; the drain says so when it starts (the node's
// message, a Warning) and still migrates what fits.
func TestDrainSaysWhenTheVMIsDoNotFit(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	name := uniq("cap")
	n := nodes(t, b, name, 1)
	// the migration of the VM that does not fit never ends: gone with the test
	resetAfter(t, b, ns, n[0])
	smallNode(t, b, name+"-small", "8Gi")
	cordonOthers(t, b, n[0], name+"-small")
	setConfig(t, b, "LiveMigration", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "small", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	vm(t, b, sim.VM{Namespace: ns, Name: "large", Node: n[0], Memory: "16Gi", EvictionStrategy: "LiveMigrate"})
	startVmdrain(t, b)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	node := waitNode(t, b, n[0], time.Minute, "a message about capacity", func(node *corev1.Node) bool {
		return strings.Contains(node.Annotations["vmdrain.io/message"], "capacity: 1 of 2 VMI(s) (16.0 GiB) do not fit")
	})
	t.Logf("message: %s", node.Annotations["vmdrain.io/message"])
	err := bed.Eventually(context.Background(), 30*time.Second, func(ctx context.Context) (bool, error) {
		return eventReasons(t, b, "default", n[0])["InsufficientCapacity"] == 1, nil
	})
	if err != nil {
		t.Errorf("no InsufficientCapacity Warning: %v", eventReasons(t, b, "default", n[0]))
	}
	// (the NodeDrain's Blocked condition says it too while the VMI is still
	// pending: unit/drain/test_record.c; here its migration starts at once)
	// what fits still moves
	err = bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		return vmiNode(t, b, ns, "small") != n[0], nil
	})
	if err != nil {
		t.Errorf("the VM that fits was not migrated: %v", migrations(t, b, ns))
	}
}
