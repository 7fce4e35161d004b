package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// planDoc is the document of `plan -o json`.
type planDoc struct {
	Complete         bool   `json:"complete"`
	Problems         string `json:"problems"`
	PredictedSeconds int    `json:"predictedSeconds"`
	Nodes            []struct {
		Name    string `json:"name"`
		Move    int    `json:"move"`
		Blocked int    `json:"blocked"`
		Left    int    `json:"left"`
		Seconds int    `json:"seconds"`
	} `json:"nodes"`
	VMIs []struct {
		Namespace    string `json:"namespace"`
		Name         string `json:"name"`
		Node         string `json:"node"`
		Action       string `json:"action"`
		Order        int    `json:"order"`
		StartSeconds int    `json:"startSeconds"`
		EndSeconds   int    `json:"endSeconds"`
		Reason       string `json:"reason"`
	} `json:"vmis"`
	Capacity struct {
		Fits     bool   `json:"fits"`
		VMIs     int    `json:"vmis"`
		Unplaced int    `json:"unplaced"`
		Message  string `json:"message"`
	} `json:"capacity"`
	Configuration struct {
		ConfigMapFound bool  `json:"configMapFound"`
		Bandwidth      int64 `json:"bandwidthBytesPerSecond"`
		PerNode        int   `json:"parallelOutboundMigrationsPerNode"`
	} `json:"configuration"`
}

func planJSON(t *testing.T, b *bed.Bed, want int, args ...string) (planDoc, string) {
	t.Helper()
	r := runPlugin(t, b, append([]string{"plan", "-o", "json", "--config", cfgNS + "/" + cfgName}, args...)...)
	if r.code != want {
		t.Fatalf("plan %v: exit %d, want %d; stdout %q stderr %q", args, r.code, want, r.stdout, r.stderr)
	}
	var d planDoc
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("plan -o json: %v: %q", err, r.stdout)
	}
	return d, r.stdout
}

// TestPluginPlan: the dry run lists the moves in the planner's order with
// their times on the virtual clock, the VMI that would block and the one
// left to its owner, says the drain would not complete (exit 3), writes
// nothing, and says when the VMIs would not fit.
func TestPluginPlan(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	name := uniq("plan")
	n := nodes(t, b, name, 3)
	cordonOthers(t, b, n...)
	// one migration at a time per node, 64 MiB/s: 4Gi takes 64 s, 2Gi 32 s
	setConfig(t, b, "LiveMigration", "parallelOutboundMigrationsPerNode: 1\nbandwidthPerMigration: 64Mi\n")
	vm(t, b, sim.VM{Namespace: ns, Name: "small", Node: n[0], Memory: "2Gi", EvictionStrategy: "LiveMigrate"})
	vm(t, b, sim.VM{Namespace: ns, Name: "large", Node: n[0], Memory: "4Gi", EvictionStrategy: "LiveMigrate"})
	vm(t, b, sim.VM{Namespace: ns, Name: "stuck", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate", Disk: sim.DiskRWO})
	vm(t, b, sim.VM{Namespace: ns, Name: "owned", Node: n[0], Memory: "1Gi", EvictionStrategy: "None"})
	vm(t, b, sim.VM{Namespace: ns, Name: "other", Node: n[1], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	before := getNode(t, b, n[0]).ResourceVersion

	// the LiveMigratable conditions are the simulated handler's: wait for them
	var d planDoc
	var out string
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		d, out = planJSON(t, b, 3, n[0])
		return len(d.VMIs) == 4 && d.Nodes[0].Blocked == 1 && d.Nodes[0].Move == 2, nil
	})
	if err != nil {
		t.Fatalf("the plan never showed 2 moves and 1 blocked VMI: %s", out)
	}
	t.Logf("plan: %s", out)
	got := []string{}
	for _, v := range d.VMIs {
		got = append(got, fmt.Sprintf("%s %s %d %d-%d", v.Name, v.Action, v.Order, v.StartSeconds, v.EndSeconds))
	}
	// largest first, one at a time: large 0-64 s, then small 64-96 s
	want := []string{"large move 1 0-64", "small move 2 64-96", "stuck blocked 0 0-0", "owned left 0 0-0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vmis: got %q, want %q", got, want)
	}
	if d.PredictedSeconds != 96 || d.Complete || !strings.Contains(d.Problems, "1 VMI(s) would block") {
		t.Errorf("predicted %d s, complete %v, problems %q; want 96, false, a blocked VMI", d.PredictedSeconds, d.Complete, d.Problems)
	}
	if d.VMIs[2].Reason == "" || !strings.Contains(d.VMIs[3].Reason, "evictionStrategy None") {
		t.Errorf("reasons: %q, %q", d.VMIs[2].Reason, d.VMIs[3].Reason)
	}
	if !d.Capacity.Fits || d.Capacity.VMIs != 2 || !d.Configuration.ConfigMapFound || d.Configuration.Bandwidth != 64<<20 {
		t.Errorf("capacity %+v, configuration %+v", d.Capacity, d.Configuration)
	}

	// the text and YAML forms say the same
	r := runPlugin(t, b, "plan", n[0], "--config", cfgNS+"/"+cfgName)
	if r.code != 3 || !strings.Contains(r.stdout, "Result: the drain would not complete: 1 VMI(s) would block") ||
		!strings.Contains(r.stdout, "Predicted time to drain: 96s") {
		t.Errorf("plan (text): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runPlugin(t, b, "plan", n[0], "-o", "yaml", "--config", cfgNS+"/"+cfgName)
	var fromYAML planDoc
	if err := yaml.Unmarshal([]byte(r.stdout), &fromYAML); err != nil || r.code != 3 || !reflect.DeepEqual(fromYAML, d) {
		t.Errorf("plan -o yaml: exit %d, %v:\n%s", r.code, err, r.stdout)
	}

	// nothing was written
	if rv := getNode(t, b, n[0]).ResourceVersion; rv != before {
		t.Errorf("the node changed: resourceVersion %s, was %s", rv, before)
	}
	if m := migrations(t, b, ns); len(m) != 0 {
		t.Errorf("migrations were created: %v", m)
	}
	if _, err := b.Dynamic.Resource(ndResource).Get(context.Background(), n[0], metav1.GetOptions{}); err == nil {
		t.Errorf("a NodeDrain %s was created", n[0])
	}

	// a node with only movable VMIs: complete, exit 0
	if d, out := planJSON(t, b, 0, n[1]); !d.Complete || d.PredictedSeconds != 16 {
		t.Errorf("plan %s: %s", n[1], out)
	}
	// all three nodes: nothing is left to take the VMIs
	d, out = planJSON(t, b, 3, n...)
	if d.Capacity.Fits || d.Capacity.Unplaced != 3 || !strings.Contains(d.Problems, "capacity: 3 of 3 VMI(s)") {
		t.Errorf("plan of every node: %s", out)
	}
	// the order across nodes: the node with most memory queued first
	if d.VMIs[0].Name != "large" || d.VMIs[1].Node != n[1] {
		t.Errorf("order across nodes: %s", out)
	}
	if r := runPlugin(t, b, "plan", name+"-none"); r.code != 1 || !strings.Contains(r.stderr, `node "`+name+`-none" not found`) {
		t.Errorf("plan of a missing node: exit %d, %q", r.code, r.stderr)
	}
	if r := runPlugin(t, b, "plan", n[0], "--config", cfgNS+"/missing"); r.code != 1 || !strings.Contains(r.stderr, "ConfigMap "+cfgNS+"/missing not found") {
		t.Errorf("plan with a missing ConfigMap: exit %d, %q", r.code, r.stderr)
	}
}

// TestPluginPlanPredictsTheDrain: the plan's predicted time against the
// drain measured in the simulator, whose transfers take memory ÷ bandwidth
// scaled by its time scale: the same model, so the measured time is the
// prediction plus what the model leaves out (scheduling, the watch, the
// simulated handler's steps).
func TestPluginPlanPredictsTheDrain(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("predict"), 2)
	cordonOthers(t, b, n...)
	setConfig(t, b, "LiveMigration", "bandwidthPerMigration: 64Mi\n")
	for i, mem := range []string{"64Gi", "32Gi", "32Gi", "16Gi"} {
		vm(t, b, sim.VM{Namespace: ns, Name: fmt.Sprintf("vm%d", i), Node: n[0], Memory: mem, EvictionStrategy: "LiveMigrate"})
	}
	resetAfter(t, b, ns, n[0])
	var d planDoc
	var out string
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		d, out = planJSON(t, b, 0, n[0])
		return d.Nodes[0].Move == 4, nil
	})
	if err != nil {
		t.Fatalf("the plan never showed 4 moves: %s", out)
	}
	// two at a time, largest first: 64Gi 0-1024 s, 32Gi 0-512 s, 32Gi 512-1024 s,
	// 16Gi 1024-1280 s
	if d.PredictedSeconds != 1280 {
		t.Fatalf("predicted %d s, want 1280: %s", d.PredictedSeconds, out)
	}
	scale := timeScale(t, b)
	predicted := time.Duration(float64(d.PredictedSeconds) * scale * float64(time.Second))

	startVmdrain(t, b)
	start := time.Now()
	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	waitNode(t, b, n[0], time.Minute+4*predicted, "state Drained", stateIs("Drained"))
	measured := time.Since(start)
	t.Logf("predicted %d s on the virtual clock × time scale %g = %.2f s; measured %.2f s (ratio %.2f)",
		d.PredictedSeconds, scale, predicted.Seconds(), measured.Seconds(), measured.Seconds()/predicted.Seconds())
	// the prediction is a lower bound; what it leaves out is seconds, not a multiple
	if measured < predicted*9/10 || measured > 2*predicted+20*time.Second {
		t.Errorf("measured %v against predicted %v", measured, predicted)
	}
}
