package operator

// End-to-end tests of pacing, timeouts, retries and bandwidth: the limits of
// parallel migrations hold at every instant (checked by a watcher of the
// test's own, not by asking vmdrain), a lowered limit takes effect without
// cancelling anything, a migration stuck without a target is aborted after
// progressTimeout and retried after the backoff, a VMI whose migrations
// always fail ends Failed after maxMigrationAttempts with growing gaps, and
// bandwidthPerMigration reaches the simulated transfer through vmdrain's
// MigrationPolicy.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

const (
	nodeLabel       = "vmdrain.io/node"
	policyName      = "vmdrain-evacuation"
	evacuatingLabel = "vmdrain.io/evacuating"
	// KubeVirt's evacuation controller names the source node here
	evacuationAnnotation = "kubevirt.io/evacuationMigration"
	phaseAdded           = "+added"   // key in migWatcher.seen: first sighting
	phaseDeleting        = "+deleted" // key in migWatcher.seen: deletion seen
	defaultTimeScale     = 0.01
)

// migObs is what the watcher last saw of one migration.
type migObs struct {
	node, phase, vmi string
	deleted          bool
	// queued: made by another controller than vmdrain and still Pending.
	// KubeVirt's evacuation controller counts only migrations past Pending
	// against its limits and its migration controller holds the excess in
	// Pending, without a target pod; so beside the real KubeVirt such a
	// migration is in flight once it leaves Pending. vmdrain's own count
	// from their creation.
	queued bool
}

func (o migObs) inFlight() bool {
	return !o.deleted && !o.queued && o.phase != kubevirt.PhaseSucceeded && o.phase != kubevirt.PhaseFailed
}

// migSample is the in-flight count right after one watch event.
type migSample struct {
	at      time.Time
	total   int
	perNode map[string]int
	what    string
}

// migWatcher follows the migrations of one namespace through a watch of its
// own and recomputes the in-flight counts after every event.
// vmiPeak: after one watch event a VMI had n unfinished migrations.
type vmiPeak struct {
	vmi, what string
	n         int
}

type migWatcher struct {
	real    bool // beside the real KubeVirt (see migObs.queued)
	vmiOver []vmiPeak
	mu      sync.Mutex
	start   time.Time
	state   map[string]migObs
	seen    map[string]map[string]time.Time // name → phase (or phaseAdded/phaseDeleting) → first seen
	samples []migSample
	lines   []string
	err     error
	cancel  context.CancelFunc
	done    chan struct{}
}

// watchMigrations lists the namespace's migrations and watches them from the
// list's resourceVersion, re-watching from the last one seen when the API
// server closes the stream.
func watchMigrations(t testing.TB, b *bed.Bed, ns string) *migWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns)
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &migWatcher{start: time.Now(), state: map[string]migObs{}, seen: map[string]map[string]time.Time{},
		cancel: cancel, done: make(chan struct{}), real: b.Real()}
	for i := range list.Items {
		w.observe("LISTED", &list.Items[i])
	}
	rv := list.GetResourceVersion()
	wi, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go w.run(ctx, res, wi, rv)
	t.Cleanup(w.stop)
	return w
}

func (w *migWatcher) run(ctx context.Context, res dynamic.ResourceInterface, wi watch.Interface, rv string) {
	defer close(w.done)
	for {
		for ev := range wi.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					continue
				}
				rv = u.GetResourceVersion()
				w.observe(string(ev.Type), u)
			case watch.Error:
				w.setErr(fmt.Errorf("watch error: %v", apierrors.FromObject(ev.Object)))
				wi.Stop()
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		var err error
		wi, err = res.Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
		if err != nil {
			if ctx.Err() == nil {
				w.setErr(fmt.Errorf("re-watch from %s: %w", rv, err))
			}
			return
		}
	}
}

func (w *migWatcher) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *migWatcher) stop() {
	w.cancel()
	<-w.done
}

// observe records one event and the in-flight counts after it.
func (w *migWatcher) observe(kind string, u *unstructured.Unstructured) {
	var m kubevirt.Migration
	if err := kubevirt.FromUnstructured(u, &m); err != nil {
		w.setErr(err)
		return
	}
	now := time.Now()
	// the source node of every creator: vmdrain labels it, KubeVirt's
	// evacuation controller annotates it
	node := m.Labels[nodeLabel]
	if node == "" {
		node = m.Annotations[evacuationAnnotation]
	}
	o := migObs{node: node, phase: m.Status.Phase, vmi: m.Spec.VMIName,
		deleted: kind == string(watch.Deleted) || m.DeletionTimestamp != nil,
		queued: w.real && m.Labels["vmdrain.io/managed-by"] != "vmdrain" &&
			(m.Status.Phase == "" || m.Status.Phase == kubevirt.PhasePending)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[m.Name] == nil {
		w.seen[m.Name] = map[string]time.Time{phaseAdded: now}
	}
	mark := func(k string) {
		if _, ok := w.seen[m.Name][k]; !ok {
			w.seen[m.Name][k] = now
		}
	}
	if o.phase != "" {
		mark(o.phase)
	}
	if o.deleted {
		mark(phaseDeleting)
	}
	prev, had := w.state[m.Name]
	w.state[m.Name] = o
	s := migSample{at: now, perNode: map[string]int{}, what: kind + " " + m.Name + " " + o.phase}
	for _, x := range w.state {
		if x.inFlight() {
			s.total++
			s.perNode[x.node]++
		}
	}
	w.samples = append(w.samples, s)
	unfinished := 0
	for _, x := range w.state {
		if x.vmi == o.vmi && !x.deleted && x.phase != kubevirt.PhaseSucceeded && x.phase != kubevirt.PhaseFailed {
			unfinished++
		}
	}
	if unfinished > 1 {
		w.vmiOver = append(w.vmiOver, vmiPeak{vmi: o.vmi, n: unfinished, what: s.what})
	}
	if !had || prev != o {
		w.lines = append(w.lines, fmt.Sprintf("%7.3fs %-8s %s vmi=%s node=%s phase=%s deleted=%v → in flight %d %v",
			now.Sub(w.start).Seconds(), kind, m.Name, m.Spec.VMIName, o.node, o.phase, o.deleted, s.total, s.perNode))
	}
}

// vmiPeaks lists the events after which a VMI had more than one
// unfinished migration (w.mu held).
func (w *migWatcher) vmiPeaks() []vmiPeak {
	return w.vmiOver
}

// checkLimits fails the test for every watch event after which more than
// perNode migrations were in flight out of one node or more than total in
// the cluster, and returns the highest counts seen.
func (w *migWatcher) checkLimits(t testing.TB, perNode, total int) (maxTotal, maxNode int) {
	t.Helper()
	for _, smp := range w.snapshot() {
		maxTotal = max(maxTotal, smp.total)
		for node, c := range smp.perNode {
			maxNode = max(maxNode, c)
			if c > perNode {
				t.Errorf("%d migrations in flight out of %q after %s", c, node, smp.what)
			}
		}
		if smp.total > total {
			t.Errorf("%d migrations in flight in the cluster after %s", smp.total, smp.what)
		}
	}
	return maxTotal, maxNode
}

func (w *migWatcher) snapshot() []migSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.samples)
}

// seenAt says when the watcher first saw the migration in phase (or
// phaseAdded / phaseDeleting).
func (w *migWatcher) seenAt(name, phase string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.seen[name][phase]
	return at, ok
}

// inFlightFrom counts the migrations in flight out of node now.
func (w *migWatcher) inFlightFrom(node string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, o := range w.state {
		if o.inFlight() && o.node == node {
			n++
		}
	}
	return n
}

func (w *migWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

func (w *migWatcher) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *migWatcher) history() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// waitUntil polls the watcher until cond holds or fails the test.
func (w *migWatcher) waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if err := w.error(); err != nil {
			t.Fatalf("migration watch: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// msgWatcher records every distinct vmdrain.io/message value of one node.
type msgWatcher struct {
	mu     sync.Mutex
	msgs   []string
	at     []time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

func watchMessages(t testing.TB, b *bed.Bed, name string) *msgWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wi, err := b.Kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &msgWatcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range wi.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			msg := n.Annotations["vmdrain.io/message"]
			w.mu.Lock()
			if msg != "" && (len(w.msgs) == 0 || w.msgs[len(w.msgs)-1] != msg) {
				w.msgs = append(w.msgs, msg)
				w.at = append(w.at, time.Now())
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.cancel(); <-w.done })
	return w
}

// find returns when a message containing sub was first seen.
func (w *msgWatcher) find(sub string) (string, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, m := range w.msgs {
		if strings.Contains(m, sub) {
			return m, w.at[i], true
		}
	}
	return "", time.Time{}, false
}

func (w *msgWatcher) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// labelWatcher records every change of one label of one VMI.
type labelWatcher struct {
	mu     sync.Mutex
	values []string // "" = absent
	at     []time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

func watchVMILabel(t testing.TB, b *bed.Bed, ns, name, key string) *labelWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wi, err := b.Dynamic.Resource(kubevirt.VMIResource).Namespace(ns).Watch(ctx,
		metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &labelWatcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range wi.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			v := u.GetLabels()[key]
			w.mu.Lock()
			if len(w.values) == 0 || w.values[len(w.values)-1] != v {
				w.values = append(w.values, v)
				w.at = append(w.at, time.Now())
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.cancel(); <-w.done })
	return w
}

// heldThroughout reports whether the label had value over all of [from, to]
// as watched.
func (w *labelWatcher) heldThroughout(value string, from, to time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := ""
	for i, v := range w.values {
		if w.at[i].After(from) {
			if cur != value || (!w.at[i].After(to) && v != value) {
				return false
			}
			continue
		}
		cur = v
	}
	return cur == value
}

func (w *labelWatcher) history(since time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for i, v := range w.values {
		if v == "" {
			v = "<absent>"
		}
		parts = append(parts, fmt.Sprintf("%+.3fs %s", w.at[i].Sub(since).Seconds(), v))
	}
	return strings.Join(parts, ", ")
}

// describeMigrations prints a namespace's migrations with their phases,
// transitions and deletion marks, for failure diagnostics.
func describeMigrations(b *bed.Bed, ns string) string {
	list, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return "list migrations: " + err.Error()
	}
	var sb strings.Builder
	for i := range list.Items {
		var m kubevirt.Migration
		if kubevirt.FromUnstructured(&list.Items[i], &m) != nil {
			continue
		}
		fmt.Fprintf(&sb, "  %s vmi=%s node=%s phase=%s created=%s", m.Name, m.Spec.VMIName, m.Labels[nodeLabel],
			m.Status.Phase, m.CreationTimestamp.Format(time.RFC3339))
		if m.DeletionTimestamp != nil {
			fmt.Fprintf(&sb, " deleting-since=%s", m.DeletionTimestamp.Format(time.RFC3339))
		}
		for _, p := range m.Status.PhaseTransitionTimestamps {
			fmt.Fprintf(&sb, " %s@%s", p.Phase, p.PhaseTransitionTimestamp.Format("15:04:05"))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// diagnose prints, when the test has failed, the namespace's migrations,
// the vmdrain annotations of the nodes and the watcher's history.
func diagnose(t *testing.T, b *bed.Bed, ns string, w *migWatcher, nodeNames ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("migrations in %s:\n%s", ns, describeMigrations(b, ns))
		for _, name := range nodeNames {
			n, err := b.Kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				t.Logf("node %s: %v", name, err)
				continue
			}
			ann := map[string]string{}
			for k, v := range n.Annotations {
				if strings.HasPrefix(k, "vmdrain.io/") {
					ann[k] = v
				}
			}
			t.Logf("node %s: unschedulable=%v taints=%v annotations=%v", name, n.Spec.Unschedulable, n.Spec.Taints, ann)
		}
		if w != nil {
			t.Logf("migration watch history:\n%s", w.history())
		}
	})
}

// resetAfter leaves the bed clean for the next test once this one is over
// (register it before diagnose and startVmdrain: cleanups run last-in
// first-out, so it runs after vmdrain is stopped and the diagnostics are
// printed):
// the drain taint goes from the nodes and the namespace's VMIs and
// migrations are deleted, so nothing of this test keeps a migration in
// flight or a node draining.
func resetAfter(t *testing.T, b *bed.Bed, ns string, nodeNames ...string) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, name := range nodeNames {
			n, err := b.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			keep := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(x corev1.Taint) bool { return x.Key == taint })
			if len(keep) != len(n.Spec.Taints) {
				n.Spec.Taints = keep
				if _, err := b.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
					t.Logf("cleanup: untaint %s: %v", name, err)
				}
			}
		}
		for _, r := range []dynamic.ResourceInterface{
			b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns),
			b.Dynamic.Resource(kubevirt.VMIResource).Namespace(ns),
		} {
			if err := r.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
}

// vms creates VMs in parallel (each waits for its launcher pod) and returns
// the VMIs by name.
func vms(t *testing.T, b *bed.Bed, specs []sim.VM) map[string]*kubevirt.VMI {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]*kubevirt.VMI{}
	var errs []error
	sem := make(chan struct{}, 8)
	for _, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			vmi, _, err := b.CreateVM(context.Background(), s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("create VM %s: %w", s.Name, err))
				return
			}
			out[s.Name] = vmi
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return out
}

// foreignInFlight counts the migrations in flight anywhere in the cluster
// outside ns: they use up cluster slots, so a test of the cluster limit
// needs none.
func foreignInFlight(t *testing.T, b *bed.Bed, ns string) []string {
	t.Helper()
	list, err := b.Dynamic.Resource(kubevirt.MigrationResource).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range list.Items {
		var m kubevirt.Migration
		if kubevirt.FromUnstructured(&list.Items[i], &m) != nil || m.Namespace == ns {
			continue
		}
		if (migObs{phase: m.Status.Phase, deleted: m.DeletionTimestamp != nil}).inFlight() {
			out = append(out, m.Namespace+"/"+m.Name)
		}
	}
	return out
}

func attemptName(vmi *kubevirt.VMI, attempt int) string {
	return fmt.Sprintf("vmdrain-%s-%d", string(vmi.UID)[:8], attempt)
}

func nodeEvents(t *testing.T, b *bed.Bed, name string) []corev1.Event {
	t.Helper()
	list, err := b.Kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func timeScale(t *testing.T, b *bed.Bed) float64 {
	t.Helper()
	s := b.Env["VMDRAIN_SIM_TIME_SCALE"]
	if s == "" {
		return defaultTimeScale
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		t.Fatalf("VMDRAIN_SIM_TIME_SCALE=%q is not a positive number", s)
	}
	return f
}

// lastTransition is the latest phaseTransitionTimestamp of a migration.
func lastTransition(m *kubevirt.Migration) time.Time {
	var last time.Time
	for _, p := range m.Status.PhaseTransitionTimestamps {
		if p.PhaseTransitionTimestamp.After(last) {
			last = p.PhaseTransitionTimestamp.Time
		}
	}
	return last
}

// TestPacingLimitsHoldWithThreeNodesDrainedAtOnce drains three nodes of
// eight VMs each at once under the default limits: at no instant are more
// than 5 migrations in flight in the cluster or more than 2 out of one node,
// and both limits are reached.
func TestPacingLimitsHoldWithThreeNodesDrainedAtOnce(t *testing.T) {
	const clusterLimit, nodeLimit = 5, 2
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("pace"), 5)
	sources := n[:3]
	setConfig(t, b, "LiveMigration", "")
	sizes := []string{"16Gi", "1Gi", "8Gi", "2Gi", "12Gi", "4Gi", "6Gi", "3Gi"}
	var specs []sim.VM
	origin := map[string]string{}
	for i, src := range sources {
		for j := 0; j < 8; j++ {
			name := fmt.Sprintf("vm-%d-%d", i, j)
			origin[name] = src
			specs = append(specs, sim.VM{Namespace: ns, Name: name, Node: src,
				Memory: sizes[(j+3*i)%len(sizes)], EvictionStrategy: "LiveMigrate"})
		}
	}
	vms(t, b, specs)
	if f := foreignInFlight(t, b, ns); len(f) > 0 {
		t.Fatalf("the bed has migrations in flight from elsewhere, the cluster limit cannot be tested: %v", f)
	}
	w := watchMigrations(t, b, ns)
	resetAfter(t, b, ns, sources...)
	diagnose(t, b, ns, w, n...)
	startVmdrain(t, b)

	kubectl(t, b, append(append([]string{"taint", "nodes"}, sources...), taint+"=draining:NoSchedule")...)
	for _, src := range sources {
		waitNode(t, b, src, 2*time.Minute, "state Drained", stateIs("Drained"))
	}
	if err := w.error(); err != nil {
		t.Fatalf("migration watch: %v", err)
	}

	samples := w.snapshot()
	maxTotal, maxNode := 0, map[string]int{}
	var bad []string
	for _, s := range samples {
		maxTotal = max(maxTotal, s.total)
		for node, c := range s.perNode {
			maxNode[node] = max(maxNode[node], c)
			if c > nodeLimit {
				bad = append(bad, fmt.Sprintf("%s: %d in flight out of %s after %s", s.at.Format("15:04:05.000"), c, node, s.what))
			}
		}
		if s.total > clusterLimit {
			bad = append(bad, fmt.Sprintf("%s: %d in flight in the cluster after %s", s.at.Format("15:04:05.000"), s.total, s.what))
		}
	}
	t.Logf("%d watch events, %d migrations; max in flight: cluster %d, per node %v", len(samples), w.count(), maxTotal, maxNode)
	if len(bad) > 0 {
		t.Errorf("limits (cluster %d, per node %d) exceeded %d times; the first:\n%s", clusterLimit, nodeLimit, len(bad),
			strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	if maxTotal != clusterLimit {
		t.Errorf("cluster in flight peaked at %d, want exactly the limit %d", maxTotal, clusterLimit)
	}
	for _, src := range sources {
		if maxNode[src] != nodeLimit {
			t.Errorf("in flight out of %s peaked at %d, want exactly the limit %d", src, maxNode[src], nodeLimit)
		}
	}
	if w.count() < len(specs) {
		t.Errorf("the watcher saw %d migrations for %d VMs", w.count(), len(specs))
	}
	for _, s := range specs {
		where := vmiNode(t, b, ns, s.Name)
		if slices.Contains(sources, where) {
			t.Errorf("%s is on %s (from %s), a drained node", s.Name, where, origin[s.Name])
		}
	}
}

// TestPacingLimitLoweredMidDrain lowers parallelOutboundMigrationsPerNode
// from 3 to 1 while 3 migrations run: nothing is cancelled, and once the
// count has fallen to 1 it never rises above 1 again.
func TestPacingLimitLoweredMidDrain(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("low"), 3)
	setConfig(t, b, "LiveMigration", "parallelOutboundMigrationsPerNode: 3\n")
	var specs []sim.VM
	for i := 0; i < 10; i++ {
		specs = append(specs, sim.VM{Namespace: ns, Name: fmt.Sprintf("vm-%d", i), Node: n[0],
			Memory: "8Gi", EvictionStrategy: "LiveMigrate"})
	}
	vms(t, b, specs)
	w := watchMigrations(t, b, ns)
	resetAfter(t, b, ns, n[0])
	diagnose(t, b, ns, w, n...)
	startVmdrain(t, b)

	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	w.waitUntil(t, 30*time.Second, "3 migrations in flight", func() bool { return w.inFlightFrom(n[0]) >= 3 })
	changed := time.Now()
	setConfig(t, b, "LiveMigration", "parallelOutboundMigrationsPerNode: 1\n")
	t.Logf("limit lowered to 1 with %d in flight", w.inFlightFrom(n[0]))
	waitNode(t, b, n[0], 2*time.Minute, "state Drained", stateIs("Drained"))
	if err := w.error(); err != nil {
		t.Fatalf("migration watch: %v", err)
	}

	var low *migSample
	var bad []string
	maxBefore := 0
	for _, s := range w.snapshot() {
		if s.at.Before(changed) {
			maxBefore = max(maxBefore, s.perNode[n[0]])
			continue
		}
		if low == nil {
			maxBefore = max(maxBefore, s.perNode[n[0]])
			if s.perNode[n[0]] <= 1 {
				low = &s
			}
			continue
		}
		if s.perNode[n[0]] > 1 {
			bad = append(bad, fmt.Sprintf("%s: %d in flight after %s", s.at.Format("15:04:05.000"), s.perNode[n[0]], s.what))
		}
	}
	if low == nil {
		t.Fatal("in flight never fell to 1 after the limit was lowered")
	}
	t.Logf("max in flight before the drop %d; fell to %d %.2fs after the change", maxBefore, low.perNode[n[0]], low.at.Sub(changed).Seconds())
	if maxBefore < 3 {
		t.Errorf("in flight peaked at %d before the change, want 3", maxBefore)
	}
	if len(bad) > 0 {
		t.Errorf("more than 1 in flight after the lowered limit took hold:\n%s", strings.Join(bad, "\n"))
	}
	for _, s := range specs {
		if vmiNode(t, b, ns, s.Name) == n[0] {
			t.Errorf("%s is still on the drained node", s.Name)
		}
	}
	if c := w.count(); c != len(specs) {
		t.Errorf("%d migrations for %d VMs; lowering the limit must not cancel or repeat any", c, len(specs))
	}
}

// TestTimeoutStuckTargetIsAbortedAndRetried: a migration that finds no
// target is deleted after progressTimeout, reported, and retried after the
// backoff; the retry succeeds once a target can be found.
func TestTimeoutStuckTargetIsAbortedAndRetried(t *testing.T) {
	const progressTimeout, backoff = 3 * time.Second, 2 * time.Second
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("tmo"), 2)
	setConfig(t, b, "LiveMigration", "progressTimeout: 3\nretryBackoffSeconds: 2\n")
	vmi := vm(t, b, sim.VM{Namespace: ns, Name: "stuck", Node: n[0], Memory: "2Gi", EvictionStrategy: "LiveMigrate",
		Annotations: map[string]string{sim.TargetUnschedulableAnnotation: "true"}})
	first, second := attemptName(vmi, 1), attemptName(vmi, 2)
	w := watchMigrations(t, b, ns)
	msgs := watchMessages(t, b, n[0])
	resetAfter(t, b, ns, n[0])
	diagnose(t, b, ns, w, n...)
	startVmdrain(t, b)

	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	var scheduling, aborted time.Time
	w.waitUntil(t, 30*time.Second, first+" in Scheduling", func() bool {
		var ok bool
		scheduling, ok = w.seenAt(first, kubevirt.PhaseScheduling)
		return ok
	})
	w.waitUntil(t, progressTimeout+15*time.Second, first+" deleted", func() bool {
		var ok bool
		aborted, ok = w.seenAt(first, phaseDeleting)
		return ok
	})
	// targets are schedulable again before the retry can time out as well
	patch := []byte(`{"metadata":{"annotations":{"` + sim.TargetUnschedulableAnnotation + `":null}}}`)
	if _, err := b.Dynamic.Resource(kubevirt.VMIResource).Namespace(ns).Patch(context.Background(), "stuck",
		types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	stuckFor := aborted.Sub(scheduling)
	t.Logf("%s deleted %.2fs after it entered Scheduling (progressTimeout %s)", first, stuckFor.Seconds(), progressTimeout)
	// vmdrain may clock the phase from its second-granular timestamp
	if stuckFor < progressTimeout-time.Second-100*time.Millisecond || stuckFor > progressTimeout+3*time.Second {
		t.Errorf("%s was deleted %.2fs after it entered Scheduling, want about %s", first, stuckFor.Seconds(), progressTimeout)
	}

	waitNode(t, b, n[0], time.Minute, "state Drained", stateIs("Drained"))
	retried, ok := w.seenAt(second, phaseAdded)
	if !ok {
		t.Fatalf("no retry %s", second)
	}
	gap := retried.Sub(aborted)
	t.Logf("retry %s created %.2fs after the abort (retryBackoffSeconds %s)", second, gap.Seconds(), backoff)
	if gap < backoff-time.Second {
		t.Errorf("retry %s came %.2fs after the abort, want at least %s (1 s tolerance)", second, gap.Seconds(), backoff)
	}
	// one failure so far: the backoff is retryBackoffSeconds × 2^0, not doubled
	if gap > backoff+1500*time.Millisecond {
		t.Errorf("retry %s came %.2fs after the abort, want about %s (the first retry's backoff)", second, gap.Seconds(), backoff)
	}
	m2, err := b.Migration(context.Background(), ns, second)
	if err != nil {
		t.Fatalf("retry %s: %v", second, err)
	}
	if m2.Status.Phase != kubevirt.PhaseSucceeded {
		t.Errorf("retry %s is %q, want Succeeded", second, m2.Status.Phase)
	}
	if _, err := b.Migration(context.Background(), ns, first); !apierrors.IsNotFound(err) {
		t.Errorf("the aborted %s still exists (err %v)", first, err)
	}
	if _, ok := w.seenAt(attemptName(vmi, 3), phaseAdded); ok {
		t.Errorf("a third attempt %s was created", attemptName(vmi, 3))
	}
	if where := vmiNode(t, b, ns, "stuck"); where == n[0] {
		t.Errorf("the VMI is still on the drained node %s", where)
	}

	if msg, at, ok := msgs.find("progressTimeout"); !ok {
		t.Errorf("no vmdrain.io/message on the node mentioned progressTimeout; messages: %q", msgs.all())
	} else {
		t.Logf("node message %.2fs after the abort: %q", at.Sub(aborted).Seconds(), msg)
		if d := at.Sub(aborted); d < -2*time.Second || d > 5*time.Second {
			t.Errorf("the progressTimeout message came %.2fs from the abort, want it at that time", d.Seconds())
		}
	}
	var abortEvents []string
	err = bed.Eventually(context.Background(), 5*time.Second, func(context.Context) (bool, error) {
		abortEvents = nil
		for _, e := range nodeEvents(t, b, n[0]) {
			if e.Reason == "MigrationAborted" {
				abortEvents = append(abortEvents, e.Message)
			}
		}
		return slices.ContainsFunc(abortEvents, func(m string) bool { return strings.Contains(m, "progressTimeout") }), nil
	})
	if err != nil {
		t.Errorf("no MigrationAborted event on the node mentions progressTimeout; MigrationAborted messages: %q; reasons: %v",
			abortEvents, eventReasons(t, b, "default", n[0]))
	}
}

// TestRetryAlwaysFailingVMIEndsFailed: a VMI whose migrations always fail is
// tried maxMigrationAttempts times with doubling backoff, then reported as
// failed, while the other VMI of the node leaves.
func TestRetryAlwaysFailingVMIEndsFailed(t *testing.T) {
	const attempts, backoff = 3, 2 * time.Second
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("rty"), 2)
	setConfig(t, b, "LiveMigration", "maxMigrationAttempts: 3\nretryBackoffSeconds: 2\n")
	bad := vm(t, b, sim.VM{Namespace: ns, Name: "bad", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate",
		Annotations: map[string]string{sim.FailAttemptsAnnotation: "99"}})
	vm(t, b, sim.VM{Namespace: ns, Name: "good", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	w := watchMigrations(t, b, ns)
	resetAfter(t, b, ns, n[0])
	diagnose(t, b, ns, w, n...)
	startVmdrain(t, b)

	// beside the real KubeVirt each retry waits for KubeVirt's own backoff
	// too (20 s, doubling: it would hold an earlier one in Pending)
	kubevirtBackoff, timeout := time.Duration(0), time.Minute
	if b.Real() {
		kubevirtBackoff, timeout = 20*time.Second, 3*time.Minute
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	final := waitNode(t, b, n[0], timeout, "state Failed", stateIs("Failed"))
	// a wrong fourth attempt would come 8 s after the third failure; the
	// state already says none is planned, this checks that none appears soon
	time.Sleep(3 * time.Second)

	var ours []kubevirt.Migration
	for _, m := range migrations(t, b, ns) {
		if m.Spec.VMIName == "bad" {
			ours = append(ours, m)
		}
	}
	sort.Slice(ours, func(i, j int) bool { return ours[i].Name < ours[j].Name })
	var names []string
	for _, m := range ours {
		names = append(names, m.Name+":"+m.Status.Phase)
	}
	if len(ours) != attempts {
		t.Fatalf("%d migrations of the failing VMI, want %d: %v", len(ours), attempts, names)
	}
	for k, m := range ours {
		if want := attemptName(bad, k+1); m.Name != want {
			t.Errorf("attempt %d is named %s, want %s", k+1, m.Name, want)
		}
		if m.Status.Phase != kubevirt.PhaseFailed {
			t.Errorf("%s is %q, want Failed", m.Name, m.Status.Phase)
		}
	}
	for k := 1; k < len(ours); k++ {
		failed := lastTransition(&ours[k-1])
		next := ours[k].CreationTimestamp.Time
		want := max(backoff, kubevirtBackoff) * time.Duration(1<<(k-1))
		t.Logf("attempt %d failed at %s, attempt %d created at %s: gap %s (backoff %s)",
			k, failed.Format("15:04:05"), k+1, next.Format("15:04:05"), next.Sub(failed), want)
		if next.Sub(failed) < want-time.Second {
			t.Errorf("attempt %d came %s after attempt %d failed, want at least %s (1 s tolerance)", k+1, next.Sub(failed), k, want)
		}
		if fa, ok1 := w.seenAt(ours[k-1].Name, kubevirt.PhaseFailed); ok1 {
			if cr, ok2 := w.seenAt(ours[k].Name, phaseAdded); ok2 {
				t.Logf("  as watched: %.2fs", cr.Sub(fa).Seconds())
			}
		}
	}

	final = getNode(t, b, n[0])
	a := final.Annotations
	if a["vmdrain.io/state"] != "Failed" {
		t.Errorf("state = %q, want Failed", a["vmdrain.io/state"])
	}
	if a["vmdrain.io/failed"] != "1" {
		t.Errorf("failed = %q, want 1", a["vmdrain.io/failed"])
	}
	if !strings.Contains(a["vmdrain.io/message"], ns+"/bad") {
		t.Errorf("message = %q, want it to name %s/bad", a["vmdrain.io/message"], ns)
	}
	if g, err := b.VMI(context.Background(), ns, "good"); err != nil {
		t.Error(err)
	} else if g.Status.NodeName == n[0] || g.Status.Phase != "Running" {
		t.Errorf("the healthy VMI is %s on %s, want Running on another node; migrationState %+v",
			g.Status.Phase, g.Status.NodeName, g.Status.MigrationState)
	}
	v, err := b.VMI(context.Background(), ns, "bad")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status.NodeName != n[0] || v.Status.Phase != "Running" {
		t.Errorf("the failing VMI is %s on %s, want Running on %s", v.Status.Phase, v.Status.NodeName, n[0])
	}
	// attempts 2 and 3 are retries; the healthy VMI's only attempt is not
	if ev := eventReasons(t, b, ns, "bad"); ev["MigrationRetry"] != attempts-1 || ev["MigrationFailed"] != attempts {
		t.Errorf("events on the failing VMI: %v, want %d MigrationRetry and %d MigrationFailed", ev, attempts-1, attempts)
	}
	if ev := eventReasons(t, b, ns, "good"); ev["MigrationRetry"] != 0 {
		t.Errorf("events on the healthy VMI: %v, want no MigrationRetry", ev)
	}
}

// getPolicy reads vmdrain's MigrationPolicy (nil when it does not exist).
func getPolicy(b *bed.Bed) (*kubevirt.MigrationPolicy, error) {
	obj, err := b.Dynamic.Resource(kubevirt.PolicyResource).Get(context.Background(), policyName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := &kubevirt.MigrationPolicy{}
	return p, kubevirt.FromUnstructured(obj, p)
}

func describePolicy(p *kubevirt.MigrationPolicy) string {
	if p == nil {
		return "<none>"
	}
	data, _ := json.Marshal(p.Spec)
	return string(data)
}

// waitPolicyBandwidth waits until vmdrain's policy has the bandwidth.
func waitPolicyBandwidth(t *testing.T, b *bed.Bed, bandwidth string, timeout time.Duration) *kubevirt.MigrationPolicy {
	t.Helper()
	want := resource.MustParse(bandwidth)
	var p *kubevirt.MigrationPolicy
	err := bed.Eventually(context.Background(), timeout, func(context.Context) (bool, error) {
		var err error
		if p, err = getPolicy(b); err != nil {
			return false, nil
		}
		return p != nil && p.Spec.BandwidthPerMigration != nil && p.Spec.BandwidthPerMigration.Cmp(want) == 0, nil
	})
	if err != nil {
		t.Fatalf("MigrationPolicy %s with bandwidthPerMigration %s not there within %s; it is %s",
			policyName, bandwidth, timeout, describePolicy(p))
	}
	return p
}

// TestBandwidthFollowsMigrationPolicy: bandwidthPerMigration from the
// ConfigMap reaches the transfer through vmdrain's MigrationPolicy, which
// selects the VMIs vmdrain labels while they migrate.
func TestBandwidthFollowsMigrationPolicy(t *testing.T) {
	const memory, bandwidth, timeoutPerGiB = 8 << 30, 16 << 20, 900
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("bw"), 2)
	setConfig(t, b, "LiveMigration", "bandwidthPerMigration: 16Mi\ncompletionTimeoutPerGiB: 900\n")
	vmi := vm(t, b, sim.VM{Namespace: ns, Name: "big", Node: n[0], Memory: "8Gi", EvictionStrategy: "LiveMigrate"})
	name := attemptName(vmi, 1)
	w := watchMigrations(t, b, ns)
	lw := watchVMILabel(t, b, ns, "big", evacuatingLabel)
	resetAfter(t, b, ns, n[0])
	diagnose(t, b, ns, w, n...)
	startVmdrain(t, b)

	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	p := waitPolicyBandwidth(t, b, "16Mi", 20*time.Second)
	if sel := p.Spec.Selectors; sel == nil || !maps.Equal(sel.VirtualMachineInstanceSelector, map[string]string{evacuatingLabel: "true"}) {
		t.Errorf("policy selectors = %s, want virtualMachineInstanceSelector {%s: \"true\"}", describePolicy(p), evacuatingLabel)
	}
	if c := p.Spec.CompletionTimeoutPerGiB; c == nil || *c != timeoutPerGiB {
		t.Errorf("policy completionTimeoutPerGiB = %s, want %d", describePolicy(p), timeoutPerGiB)
	}

	scale := timeScale(t, b)
	expected := time.Duration(float64(memory) / bandwidth * scale * float64(time.Second))
	waitNode(t, b, n[0], time.Minute+4*expected, "state Drained", stateIs("Drained"))

	v, err := b.VMI(context.Background(), ns, "big")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status.NodeName == n[0] {
		t.Errorf("the VMI is still on the drained node %s", n[0])
	}
	ms := v.Status.MigrationState
	if ms == nil || ms.MigrationPolicyName != policyName {
		t.Errorf("migrationState = %+v, want migrationPolicyName %s", ms, policyName)
	}
	running, ok1 := w.seenAt(name, kubevirt.PhaseRunning)
	done, ok2 := w.seenAt(name, kubevirt.PhaseSucceeded)
	if !ok1 || !ok2 {
		t.Fatalf("%s: Running or Succeeded not seen", name)
	}
	took := done.Sub(running)
	t.Logf("label %s on the VMI (relative to Running): %s", evacuatingLabel, lw.history(running))
	if !lw.heldThroughout("true", running, done) {
		t.Errorf("the VMI did not carry %s=true throughout its transfer", evacuatingLabel)
	}
	at1GiBs := time.Duration(float64(memory) / (1 << 30) * scale * float64(time.Second))
	if ms != nil && ms.StartTimestamp != nil && ms.EndTimestamp != nil {
		t.Logf("migrationState start %s end %s", ms.StartTimestamp.Format("15:04:05"), ms.EndTimestamp.Format("15:04:05"))
	}
	t.Logf("transfer Running→Succeeded took %.2fs; 8Gi at 16Mi/s ×%g is %s, at 1Gi/s %s", took.Seconds(), scale, expected, at1GiBs)
	if took < expected*6/10 || took > expected*5/2 {
		t.Errorf("the transfer took %s, want about %s (8Gi at 16Mi/s, time scale %g)", took, expected, scale)
	}
	if took < 10*at1GiBs {
		t.Errorf("the transfer took %s, not clearly longer than %s at 1Gi/s", took, at1GiBs)
	}
	err = bed.Eventually(context.Background(), 5*time.Second, func(ctx context.Context) (bool, error) {
		v, err = b.VMI(ctx, ns, "big")
		return err == nil && v.Labels[evacuatingLabel] == "", nil
	})
	if err != nil {
		t.Errorf("the VMI still carries %s after the drain: labels %v", evacuatingLabel, v.Labels)
	}

	setConfig(t, b, "LiveMigration", "bandwidthPerMigration: 256Mi\ncompletionTimeoutPerGiB: 900\n")
	waitPolicyBandwidth(t, b, "256Mi", 20*time.Second)
}
