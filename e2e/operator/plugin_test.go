package operator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// repoRoot is the checkout these tests belong to.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// pluginBin is bin/kubectl-vmdrain of this checkout, or $VMDRAIN_PLUGIN_BIN.
func pluginBin(t testing.TB) string {
	if p := os.Getenv("VMDRAIN_PLUGIN_BIN"); p != "" {
		return p
	}
	p := filepath.Join(repoRoot(), "bin", "kubectl-vmdrain")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("plugin binary %s: %v (run make first)", p, err)
	}
	return p
}

type pluginRun struct {
	stdout, stderr string
	code           int
}

// runPlugin runs kubectl-vmdrain against the bed.
func runPlugin(t testing.TB, b *bed.Bed, args ...string) pluginRun {
	t.Helper()
	cmd := exec.Command(pluginBin(t), append([]string{"--kubeconfig", b.Kubeconfig}, args...)...)
	return runCmd(t, cmd)
}

func runCmd(t testing.TB, cmd *exec.Cmd) pluginRun {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := pluginRun{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return r
}

// statusDoc is the document of `status -o json`.
type statusDoc struct {
	Nodes []struct {
		Node        string  `json:"node"`
		Found       bool    `json:"found"`
		Draining    bool    `json:"draining"`
		State       string  `json:"state"`
		Trigger     string  `json:"trigger"`
		Migrated    *int    `json:"migrated"`
		Total       *int    `json:"total"`
		Migrating   *int    `json:"migrating"`
		Pending     *int    `json:"pending"`
		Failed      *int    `json:"failed"`
		Blocked     *int    `json:"blocked"`
		ETA         *string `json:"eta"`
		Age         *string `json:"age"`
		AgeSeconds  *int    `json:"ageSeconds"`
		StartedAt   *string `json:"startedAt"`
		Message     string  `json:"message"`
		BlockedVMIs []struct {
			Namespace, Name, Reason string
		} `json:"blockedVMIs"`
	} `json:"nodes"`
}

func parseStatus(t testing.TB, text string) statusDoc {
	t.Helper()
	var d statusDoc
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, text)
	}
	return d
}

// intOf formats a JSON count; nil is "-".
func intOf(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

// checkStatusAgainst compares the JSON of one node with its annotations;
// it returns the differences.
func checkStatusAgainst(d statusDoc, n *corev1.Node) []string {
	if len(d.Nodes) != 1 {
		return []string{"want one node, got " + strconv.Itoa(len(d.Nodes))}
	}
	s, a := d.Nodes[0], n.Annotations
	var diffs []string
	want := func(what, got, exp string) {
		if exp == "" && what != "message" {
			exp = "-" // absent: null in the JSON
		}
		if got != exp {
			diffs = append(diffs, what+": "+got+", annotation says "+exp)
		}
	}
	want("state", s.State, a["vmdrain.io/state"])
	want("trigger", s.Trigger, a["vmdrain.io/trigger"])
	if p := a["vmdrain.io/progress"]; p != "" {
		want("progress", intOf(s.Migrated)+"/"+intOf(s.Total), p)
	}
	want("migrating", intOf(s.Migrating), a["vmdrain.io/migrating"])
	want("pending", intOf(s.Pending), a["vmdrain.io/pending"])
	want("failed", intOf(s.Failed), a["vmdrain.io/failed"])
	blocked := 0
	if a["vmdrain.io/blocked"] != "" {
		blocked = len(strings.Split(a["vmdrain.io/blocked"], ","))
	}
	want("blocked", intOf(s.Blocked), strconv.Itoa(blocked))
	if s.StartedAt == nil {
		diffs = append(diffs, "no startedAt")
	} else {
		want("startedAt", *s.StartedAt, a["vmdrain.io/started-at"])
	}
	want("message", s.Message, a["vmdrain.io/message"])
	return diffs
}

// statusMatches runs `status NODE -o json` until it agrees with the node's
// annotations read before and after it (they change while a drain runs).
func statusMatches(t *testing.T, b *bed.Bed, node string) statusDoc {
	t.Helper()
	var diffs []string
	for i := 0; i < 20; i++ {
		before := getNode(t, b, node)
		r := runPlugin(t, b, "status", node, "-o", "json")
		after := getNode(t, b, node)
		if r.code != 0 {
			t.Fatalf("status -o json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		d := parseStatus(t, r.stdout)
		if before.ResourceVersion != after.ResourceVersion {
			continue
		}
		if diffs = checkStatusAgainst(d, after); len(diffs) == 0 {
			return d
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("status -o json disagrees with the node annotations: %v", diffs)
	return statusDoc{}
}

// checkPlain checks the plain status of one node: its line and its VMI lines.
func checkPlain(t *testing.T, out, node, state string, vmiLines ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "NODE ") || !strings.Contains(lines[0], "PROGRESS") {
		t.Errorf("no header line:\n%s", out)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[1], node+" ") ||
		!strings.Contains(lines[1], " "+state+" ") || !strings.Contains(lines[1], " taint ") ||
		!strings.Contains(lines[1], "[") {
		t.Errorf("no line for node %s in state %s:\n%s", node, state, out)
	}
	for _, v := range vmiLines {
		found := false
		for _, l := range lines[2:] {
			if strings.HasPrefix(l, v) {
				found = true
			}
		}
		if !found {
			t.Errorf("no VMI line %q:\n%s", v, out)
		}
	}
}

// TestPluginStatusDuringTaintDrain: `kubectl vmdrain status` while a taint
// drain runs (one VMI migrated, one stuck in flight, one blocked) and after
// it was cancelled, against the node's annotations; -w prints a JSON line
// for the change and ends on SIGINT with exit 0.
func TestPluginStatusDuringTaintDrain(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("pls"), 3)
	setConfig(t, b, "LiveMigration", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "mover", Node: n[0], EvictionStrategy: "LiveMigrate"})
	vm(t, b, sim.VM{Namespace: ns, Name: "stuck", Node: n[0], Memory: "8Gi", EvictionStrategy: "LiveMigrate",
		Annotations: map[string]string{sim.TargetUnschedulableAnnotation: "true"}})
	vm(t, b, sim.VM{Namespace: ns, Name: "rwo", Node: n[0], EvictionStrategy: "LiveMigrate", Disk: sim.DiskRWO})
	startVmdrain(t, b)

	// nothing drains yet
	if r := runPlugin(t, b, "status", n[0]); r.code != 0 || !strings.Contains(r.stdout, `node "`+n[0]+`" has no drain`) {
		t.Errorf("status of an idle node: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	waitNode(t, b, n[0], 2*time.Minute, "progress 1/3 with one migrating", func(n *corev1.Node) bool {
		a := n.Annotations
		return a["vmdrain.io/state"] == "Draining" && a["vmdrain.io/progress"] == "1/3" && a["vmdrain.io/migrating"] == "1"
	})
	d := statusMatches(t, b, n[0])
	if s := d.Nodes[0]; len(s.BlockedVMIs) != 1 || s.BlockedVMIs[0].Namespace != ns || s.BlockedVMIs[0].Name != "rwo" || s.BlockedVMIs[0].Reason == "" {
		t.Errorf("blockedVMIs = %+v, want %s/rwo with a reason", s.BlockedVMIs, ns)
	}
	if s := d.Nodes[0]; s.Age == nil || s.AgeSeconds == nil || *s.AgeSeconds < 0 || *s.AgeSeconds > 600 {
		t.Errorf("age = %v (%v s)", s.Age, s.AgeSeconds)
	}
	r := runPlugin(t, b, "status", n[0])
	t.Logf("status %s:\n%s", n[0], r.stdout)
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	checkPlain(t, r.stdout, n[0], "Draining", "BLOCKED VMI", ns+"/rwo ")
	if !strings.Contains(r.stdout, "1/3") {
		t.Errorf("no progress 1/3:\n%s", r.stdout)
	}
	// every drain, and the other nodes not at all
	all := runPlugin(t, b, "status")
	if all.code != 0 || !strings.Contains(all.stdout, "\n"+n[0]+" ") || strings.Contains(all.stdout, n[1]) {
		t.Errorf("status of every node: exit %d\n%s%s", all.code, all.stdout, all.stderr)
	}
	// the way kubectl runs it: bin/ on PATH, KUBECONFIG from the environment
	cmd := exec.Command(b.Tool("kubectl"), "vmdrain", "status", n[0])
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig,
		"PATH="+filepath.Dir(pluginBin(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	if k := runCmd(t, cmd); k.code != 0 || !strings.Contains(k.stdout, "\n"+n[0]+" ") {
		t.Errorf("kubectl vmdrain status: exit %d\n%s%s", k.code, k.stdout, k.stderr)
	}

	// a watch sees the end of the drain
	w := exec.Command(pluginBin(t), "--kubeconfig", b.Kubeconfig, "status", n[0], "-w", "-o", "json")
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var werr bytes.Buffer
	w.Stderr = &werr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	first := <-lines
	if s := parseStatus(t, first); len(s.Nodes) != 1 || s.Nodes[0].State != "Draining" {
		t.Errorf("the watch's first document: %s", first)
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	deadline := time.After(time.Minute)
	var seen []string
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the watch ended early: %s", werr.String())
			}
			seen = append(seen, l)
			done = parseStatus(t, l).Nodes[0].State == "Cancelled"
		case <-deadline:
			t.Fatalf("the watch never showed Cancelled; it printed %d lines:\n%s", len(seen), strings.Join(seen, "\n"))
		}
	}
	_ = w.Process.Signal(syscall.SIGINT)
	if err := w.Wait(); err != nil {
		t.Errorf("the watch after SIGINT: %v (%s)", err, werr.String())
	}
	t.Logf("the watch printed %d documents after the first", len(seen))

	waitNode(t, b, n[0], time.Minute, "state Cancelled", stateIs("Cancelled"))
	statusMatches(t, b, n[0])
	r = runPlugin(t, b, "status", n[0])
	t.Logf("status %s after the drain (exit %d):\n%s%s", n[0], r.code, r.stdout, r.stderr)
	checkPlain(t, r.stdout, n[0], "Cancelled")
}

// putRecord creates a NodeDrain as vmdrain records a drain, with a status.
func putRecord(t testing.TB, b *bed.Bed, node, trigger, phase string) {
	t.Helper()
	ctx := context.Background()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "vmdrain.io/v1alpha1", "kind": "NodeDrain",
		"metadata": map[string]any{"name": node, "labels": map[string]any{"vmdrain.io/managed-by": "vmdrain"}},
		"spec":     map[string]any{"nodeName": node},
	}}
	c := b.Dynamic.Resource(ndResource)
	got, err := c.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Object["status"] = map[string]any{"phase": phase, "trigger": trigger}
	if _, err := c.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func expectRun(t *testing.T, r pluginRun, code int, stream, want string) {
	t.Helper()
	got := r.stdout
	if stream == "stderr" {
		got = r.stderr
	}
	if r.code != code || !strings.Contains(got, want) {
		t.Errorf("exit %d, want %d with %q on %s:\nstdout: %s\nstderr: %s", r.code, code, want, stream, r.stdout, r.stderr)
	}
	if code == 1 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("a failure is one line on stderr:\n%s", r.stderr)
	}
}

// TestPluginDrainAndCancel: drain creates the NodeDrain with the spec
// given, a second drain is refused, cancel deletes it, a second cancel and
// a drain of a missing node fail; a finished record of vmdrain's is
// replaced; a drain vmdrain records for the taint or evictions is ended
// the way it began. vmdrain does not run: this is the plugin and the API.
func TestPluginDrainAndCancel(t *testing.T) {
	b := bed.OpenT(t)
	n := nodes(t, b, uniq("pld"), 2)

	expectRun(t, runPlugin(t, b, "drain", n[0], "--reason", "kernel update"), 0, "stdout",
		"nodedrain.vmdrain.io/"+n[0]+" created")
	nd := getNodeDrain(t, b, n[0])
	if nd == nil {
		t.Fatal("drain created no NodeDrain")
	}
	if spec, _ := nd.Object["spec"].(map[string]any); spec["nodeName"] != n[0] || spec["reason"] != "kernel update" {
		t.Errorf("spec = %v", nd.Object["spec"])
	}
	expectRun(t, runPlugin(t, b, "drain", n[0]), 1, "stderr",
		`node "`+n[0]+`" is already draining: NodeDrain `+n[0]+" (trigger nodedrain, phase")
	d := parseStatus(t, runPlugin(t, b, "status", n[0], "-o", "json").stdout)
	if len(d.Nodes) != 1 || !d.Nodes[0].Draining || d.Nodes[0].Trigger != "nodedrain" {
		t.Errorf("status of a requested drain: %+v", d.Nodes)
	}
	expectRun(t, runPlugin(t, b, "cancel", n[0]), 0, "stdout", "nodedrain.vmdrain.io/"+n[0]+" deleted")
	if nd := getNodeDrain(t, b, n[0]); nd != nil {
		t.Errorf("the NodeDrain is still there after cancel: %v", nd.Object)
	}
	expectRun(t, runPlugin(t, b, "cancel", n[0]), 1, "stderr", `node "`+n[0]+`" has no NodeDrain`)
	expectRun(t, runPlugin(t, b, "drain", "nope-"+n[0]), 1, "stderr", `node "nope-`+n[0]+`" not found`)
	expectRun(t, runPlugin(t, b, "status", "nope-"+n[0]), 1, "stderr", `node "nope-`+n[0]+`" not found`)

	// a finished record of vmdrain's is replaced by the new drain
	putRecord(t, b, n[0], "taint", "Completed")
	old := getNodeDrain(t, b, n[0])
	expectRun(t, runPlugin(t, b, "drain", n[0]), 0, "stdout", "nodedrain.vmdrain.io/"+n[0]+" created")
	if nd := getNodeDrain(t, b, n[0]); nd == nil || nd.GetUID() == old.GetUID() || nd.GetLabels()["vmdrain.io/managed-by"] != "" {
		t.Errorf("the finished record was not replaced: %v", nd)
	}
	expectRun(t, runPlugin(t, b, "cancel", n[0]), 0, "stdout", "deleted")

	// vmdrain's records of drains it did not start from a NodeDrain
	putRecord(t, b, n[0], "taint", "Draining")
	expectRun(t, runPlugin(t, b, "cancel", n[0]), 1, "stderr", "kubectl taint nodes "+n[0]+" kubevirt.io/drain-")
	expectRun(t, runPlugin(t, b, "drain", n[0]), 1, "stderr", "is already draining: NodeDrain "+n[0]+" (trigger taint, phase Draining)")
	kubectl(t, b, "taint", "nodes", n[1], "example.com/drain=now:NoSchedule")
	putRecord(t, b, n[1], "taint", "Blocked")
	expectRun(t, runPlugin(t, b, "cancel", n[1]), 1, "stderr", "kubectl taint nodes "+n[1]+" example.com/drain-")
	if err := b.Dynamic.Resource(ndResource).Delete(context.Background(), n[1], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	putRecord(t, b, n[1], "eviction", "Draining")
	expectRun(t, runPlugin(t, b, "cancel", n[1]), 1, "stderr", "kubectl uncordon "+n[1])
	for _, name := range n {
		if getNodeDrain(t, b, name) == nil {
			t.Errorf("a refused cancel deleted NodeDrain %s", name)
		}
		_ = b.Dynamic.Resource(ndResource).Delete(context.Background(), name, metav1.DeleteOptions{})
	}
}

// TestPluginFlagErrors: usage errors exit 2 naming the flag or value,
// before any kubeconfig is read (none exists here); good flags then fail
// on the missing kubeconfig with exit 1.
func TestPluginFlagErrors(t *testing.T) {
	bin := pluginBin(t)
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--bogus"}, "unknown flag --bogus"},
		{[]string{"--bogus", "status"}, "unknown flag --bogus"},
		{[]string{"status", "-o", "yaml"}, "status does not take --output yaml"},
		{[]string{"status", "-o", "wide"}, "--output wants json or yaml, not 'wide'"},
		{[]string{"plan"}, "plan wants a NODE"},
		{[]string{"plan", "n1", "--config", "cm"}, "--config wants NAMESPACE/NAME, not 'cm'"},
		{[]string{"plan", "n1", "--kubevirt", "a/b/c"}, "--kubevirt wants NAMESPACE/NAME, not 'a/b/c'"},
		{[]string{"status", "--config", "a/b"}, "status does not take --config or --kubevirt"},
		{[]string{"status", "-o"}, "flag -o needs a value"},
		{[]string{"drain"}, "drain wants a NODE"},
		{[]string{"drain", "n1", "--reason"}, "flag --reason needs a value"},
		{[]string{"cancel", "n1", "n2"}, "cancel takes one NODE, not 2"},
		{[]string{"cancel", "n1", "-w"}, "cancel does not take --watch"},
		{[]string{"status", "No_Such"}, "'No_Such' is not a node name"},
		{[]string{"launch"}, "unknown command 'launch'"},
		{[]string{}, "no command given"},
	} {
		cmd := exec.Command(bin, append([]string{"--kubeconfig", missing}, c.args...)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+missing)
		r := runCmd(t, cmd)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", c.args, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", c.args, c.want, r.stderr)
		}
		if strings.Contains(r.stderr, "no-kubeconfig") {
			t.Errorf("%v: the kubeconfig was read before the flags were checked:\n%s", c.args, r.stderr)
		}
	}
	// help and version need no cluster
	for _, args := range [][]string{{"--help"}, {"status", "--help"}, {"--version"}} {
		if r := runCmd(t, exec.Command(bin, args...)); r.code != 0 || r.stdout == "" {
			t.Errorf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	// good flags: the missing kubeconfig ($KUBECONFIG too) is one line, exit 1
	for _, args := range [][]string{{"--kubeconfig", missing, "status"}, {"drain", "n1"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+missing)
		r := runCmd(t, cmd)
		if r.code != 1 || !strings.Contains(r.stderr, "no-kubeconfig") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v without a kubeconfig: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}
