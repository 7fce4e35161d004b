package operator

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// procSample is the resident memory (KiB) and open descriptors of a process.
type procSample struct{ rssKiB, fds int }

func sampleProc(t *testing.T, pid int) procSample {
	t.Helper()
	var s procSample
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			s.rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	s.fds = len(fds)
	return s
}

// soak is the state of TestSoak's loop.
type soak struct {
	t        *testing.T
	b        *bed.Bed
	ns       string
	webhook  []string
	p        *proc
	rng      *rand.Rand
	drains   int
	kills    int
	edits    int
	reviews  *reviewLoad
	deadline time.Time
}

// TestSoak (make soak; VMDRAIN_SOAK=DURATION, not part of make test): for
// DURATION, drain and undrain nodes one after another (by taint and by
// NodeDrain), with vmdrain SIGKILLed and restarted at random moments in the
// first half, eviction reviews posted throughout and the configuration
// edited between drains. The second half runs one vmdrain unkilled, whose
// memory and descriptors are sampled at its start and at the end. Prints
// drains completed, migrations, duplicates, VMs lost and limit violations;
// fails unless the last three are 0.
func TestSoak(t *testing.T) {
	d := os.Getenv("VMDRAIN_SOAK")
	if d == "" {
		t.Skip("runs only with VMDRAIN_SOAK=DURATION (make soak)")
	}
	dur, err := time.ParseDuration(d)
	if err != nil || dur < time.Minute {
		t.Fatalf("VMDRAIN_SOAK=%q: want a duration of at least 1m", d)
	}
	b := bed.OpenT(t)
	s := &soak{t: t, b: b, ns: b.Namespace(t), rng: rand.New(rand.NewSource(time.Now().UnixNano()))}
	n := nodes(t, b, uniq("soak"), 4)
	setConfig(t, b, "LiveMigration", "")
	const perNode = 3
	for i := 0; i < len(n)*perNode; i++ {
		vm(t, b, sim.VM{Namespace: s.ns, Name: "vm-" + strconv.Itoa(i), Node: n[i%len(n)], Memory: "2Gi",
			EvictionStrategy: "LiveMigrate"})
	}
	certFile, keyFile, _ := webhookCert(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.webhook = []string{"--tls-cert", certFile, "--tls-key", keyFile, "--listen", addr}
	s.p = startVmdrain(t, b, s.webhook...)
	waitAnswering(t, addr)
	w := watchMigrations(t, b, s.ns)
	s.reviews = startReviewLoad(addr, 4, nil, s.ns)

	start := time.Now()
	s.deadline = start.Add(dur)
	half := start.Add(dur / 2)
	var first, last procSample
	steady := false
	for i := 0; time.Now().Before(s.deadline); i++ {
		if !steady && time.Now().After(half) {
			// the second half: a fresh vmdrain that is never killed
			s.restart()
			waitAnswering(t, addr)
			time.Sleep(5 * time.Second) // synced and settled
			first, steady = sampleProc(t, s.p.cmd.Process.Pid), true
		}
		s.editConfig(i)
		s.drainOnce(n[i%len(n)], i%2 == 0, !steady)
	}
	if !steady {
		t.Fatal("the soak ended before its second half began (a drain took longer than half of VMDRAIN_SOAK)")
	}
	last = sampleProc(t, s.p.cmd.Process.Pid)
	s.reviews.stop.Store(true)
	s.reviews.wg.Wait()
	s.report(w, len(n)*perNode, first, last)
}

// editConfig alternates the limits between the defaults and lower ones.
func (s *soak) editConfig(i int) {
	migrations := ""
	if i%3 == 1 {
		migrations = "parallelMigrationsPerCluster: 3\nparallelOutboundMigrationsPerNode: 1\n"
	}
	setConfig(s.t, s.b, "LiveMigration", migrations)
	s.edits++
}

// drainOnce drains node (by taint or by NodeDrain) until Drained, then ends
// the drain and waits until vmdrain uncordoned it; with kill, vmdrain is
// SIGKILLed at a random moment of the drain and started again.
func (s *soak) drainOnce(node string, byTaint, kill bool) {
	t := s.t
	if byTaint {
		kubectl(t, s.b, "taint", "nodes", node, taint+"=soak:NoSchedule")
	} else {
		yaml := fmt.Sprintf("apiVersion: vmdrain.io/v1alpha1\nkind: NodeDrain\nmetadata:\n  name: %s\nspec:\n  nodeName: %s\n", node, node)
		if out, err := s.b.KubectlStdin(context.Background(), yaml, "create", "-f", "-"); err != nil {
			t.Fatalf("create NodeDrain %s: %v\n%s", node, err, out)
		}
	}
	killAt := time.Time{}
	if kill && s.rng.Intn(2) == 0 {
		killAt = time.Now().Add(time.Duration(s.rng.Intn(4000)) * time.Millisecond)
	}
	limit := time.Now().Add(4 * time.Minute)
	for getNode(t, s.b, node).Annotations["vmdrain.io/state"] != "Drained" {
		if time.Now().After(limit) {
			t.Fatalf("drain %d of %s: not Drained within 4 minutes; annotations %v", s.drains+1, node,
				getNode(t, s.b, node).Annotations)
		}
		if !killAt.IsZero() && time.Now().After(killAt) {
			s.restart()
			s.kills++
			killAt = time.Time{}
		}
		time.Sleep(300 * time.Millisecond)
	}
	if byTaint {
		kubectl(t, s.b, "taint", "nodes", node, taint+"-")
	} else {
		kubectl(t, s.b, "delete", "nodedrain", node, "--wait=true", "--timeout=120s")
	}
	waitNode(t, s.b, node, 2*time.Minute, "uncordoned, state Completed", func(n *corev1.Node) bool {
		return !n.Spec.Unschedulable && n.Annotations["vmdrain.io/state"] == "Completed"
	})
	s.drains++
}

// restart SIGKILLs vmdrain and starts another on the same webhook address.
func (s *soak) restart() {
	s.p.kill()
	s.p = startVmdrain(s.t, s.b, s.webhook...)
}

// report prints the soak's figures and fails on a duplicate, a lost VM or
// a limit broken (2 out of a node, 5 in the cluster: the highest limits
// editConfig sets).
func (s *soak) report(w *migWatcher, vms int, first, last procSample) {
	t := s.t
	if err := w.error(); err != nil {
		t.Errorf("migration watch: %v", err)
	}
	violations := 0
	for _, smp := range w.snapshot() {
		over := smp.total > 5
		for _, c := range smp.perNode {
			over = over || c > 2
		}
		if over {
			violations++
			t.Errorf("limit broken after %s: %d in flight, per node %v", smp.what, smp.total, smp.perNode)
		}
	}
	w.mu.Lock()
	duplicates := len(w.vmiPeaks())
	w.mu.Unlock()
	if duplicates > 0 {
		t.Errorf("%d watch events saw a VMI with two unfinished migrations", duplicates)
	}
	lost := 0
	for i := 0; i < vms; i++ {
		name := "vm-" + strconv.Itoa(i)
		v, err := s.b.VMI(context.Background(), s.ns, name)
		if err != nil || v.Status.Phase != "Running" || v.Status.NodeName == "" {
			lost++
			t.Errorf("VM %s lost: %v", name, err)
		}
	}
	pods, err := s.b.Kube.CoreV1().Pods(s.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak summary: drains completed %d, migrations %d, duplicates %d, VMs lost %d of %d, "+
		"limit violations %d; kills %d, configuration edits %d, launcher pods now %d; eviction reviews answered %d, "+
		"dropped %d, cut %d; the unkilled vmdrain: RSS %d KiB -> %d KiB, open descriptors %d -> %d",
		s.drains, w.count(), duplicates, lost, vms, violations, s.kills, s.edits, len(pods.Items),
		s.reviews.answered.Load(), s.reviews.dropped.Load(), len(s.reviews.broken),
		first.rssKiB, last.rssKiB, first.fds, last.fds)
}
