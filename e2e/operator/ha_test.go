package operator

// High availability: the chart's image as several replicas (chartPods) on
// one docker network, electing a leader on the chart's Lease, while drains
// run. The replicas are cut off the network, killed and replaced, and an
// independent watcher of migration objects checks that every VMI moved
// once and that the pacing limits held at every instant.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// leaseHolder is the Lease's holderIdentity ("" when none or absent).
func leaseHolder(t *testing.T, b *bed.Bed, ns, name string) string {
	t.Helper()
	l, err := b.Kube.CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// waitHolder waits until the Lease is held by the pod (its identity is
// the pod name, "_" and a suffix) and returns the identity.
func waitHolder(t *testing.T, b *bed.Bed, ns, name, pod string, timeout time.Duration) string {
	t.Helper()
	var h string
	err := bed.Eventually(context.Background(), timeout, func(ctx context.Context) (bool, error) {
		h = leaseHolder(t, b, ns, name)
		return strings.HasPrefix(h, pod+"_"), nil
	})
	if err != nil {
		t.Fatalf("the Lease %s/%s is held by %q, not by %s", ns, name, h, pod)
	}
	return h
}

// holderPod is the pod whose identity holds the Lease, or nil.
func holderPod(t *testing.T, b *bed.Bed, pods []*chartPod) *chartPod {
	h := leaseHolder(t, b, chartNS, chartRelease)
	for _, p := range pods {
		if strings.HasPrefix(h, p.name+"_") {
			return p
		}
	}
	return nil
}

// scrape reads vmdrain's /metrics at addr and sums the series by name
// and label text: "vmdrain_leader", `vmdrain_api_requests_total{verb="create"` ...
type scrape map[string]float64

func scrapeMetrics(addr string) (scrape, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	s := scrape{}
	for _, l := range strings.Split(string(data), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			s[l[:i]] = v
		}
	}
	return s, nil
}

// sum adds the series whose text starts with prefix.
func (s scrape) sum(prefix string) float64 {
	var n float64
	for k, v := range s {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// answeredWrites are the engine's writes the apiserver answered (a code,
// not "error"), by verb; the election's Lease requests are apart.
func (s scrape) answeredWrites() map[string]float64 {
	out := map[string]float64{}
	for k, v := range s {
		for _, verb := range []string{"create", "update", "patch", "delete"} {
			if strings.HasPrefix(k, `vmdrain_api_requests_total{verb="`+verb+`"`) && !strings.Contains(k, `code="error"`) {
				out[verb] += v
			}
		}
	}
	return out
}

// svcProxy stands where the chart's Service is: the apiserver calls the
// webhook at 127.0.0.1:port and each connection goes to a replica whose
// /readyz answers ok (as Endpoints list only ready pods). The apiserver
// keeps its connections open between calls, so each stays with the replica
// it was first given; drop takes a replica out and closes its connections.
type svcProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	pods    []*chartPod
	ready   map[string]bool
	dropped map[string]bool
	conns   map[string]map[net.Conn]bool
	next    int
	stop    chan struct{}
}

func startProxy(t *testing.T) *svcProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &svcProxy{ln: ln, ready: map[string]bool{}, dropped: map[string]bool{},
		conns: map[string]map[net.Conn]bool{}, stop: make(chan struct{})}
	t.Cleanup(func() { close(p.stop); ln.Close() })
	go p.probe()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *svcProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *svcProxy) add(pod *chartPod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods = append(p.pods, pod)
}

// probe checks every replica's /readyz twice a second.
func (p *svcProxy) probe() {
	c := http.Client{Timeout: 400 * time.Millisecond}
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
		p.mu.Lock()
		pods := append([]*chartPod(nil), p.pods...)
		p.mu.Unlock()
		for _, pod := range pods {
			ok := false
			if resp, err := c.Get("http://" + pod.metrics + "/readyz"); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				ok = strings.HasPrefix(string(body), "ok")
			}
			p.mu.Lock()
			p.ready[pod.name] = ok
			p.mu.Unlock()
		}
	}
}

// drop takes pod out of the endpoints, as the endpoints controller does
// once the pod's node stops answering, and closes the connections that
// lead to it: the test cuts a replica off the network right after, and an
// apiserver connection left with it would hang each eviction sent over it
// until the webhook's timeout, whichever replica leads. undrop puts it
// back once it is reachable again.
func (p *svcProxy) drop(pod *chartPod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropped[pod.name] = true
	for c := range p.conns[pod.name] {
		c.Close()
	}
}

func (p *svcProxy) undrop(pod *chartPod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.dropped, pod.name)
}

func (p *svcProxy) pick() *chartPod {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < len(p.pods); i++ {
		pod := p.pods[(p.next+i)%len(p.pods)]
		if p.ready[pod.name] && !p.dropped[pod.name] {
			p.next = (p.next + i + 1) % len(p.pods)
			return pod
		}
	}
	return nil
}

// track records c as leading to pod (on) or forgets it (off); false when
// pod was dropped meanwhile.
func (p *svcProxy) track(pod *chartPod, c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !on {
		delete(p.conns[pod.name], c)
		return true
	}
	if p.dropped[pod.name] {
		return false
	}
	if p.conns[pod.name] == nil {
		p.conns[pod.name] = map[net.Conn]bool{}
	}
	p.conns[pod.name][c] = true
	return true
}

func (p *svcProxy) serve(c net.Conn) {
	defer c.Close()
	pod := p.pick()
	if pod == nil {
		return
	}
	up, err := net.DialTimeout("tcp", net.JoinHostPort(pod.ip, "8443"), time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(pod, c, true) {
		return
	}
	defer p.track(pod, c, false)
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
}

// haBed is the set-up of every HA test: the chart installed for n
// replicas behind svcProxy, with slow migrations (8Gi VMs at 16Mi/s)
// whose eviction strategy is External and handed to vmdrain, so that
// vmdrain and not KubeVirt's own controller moves them in either mode.
type haBed struct {
	b       *bed.Bed
	cp      *chartPods
	proxy   *svcProxy
	pods    []*chartPod
	subnet  string // "10.213.N": replica i runs at .(10+i)
	network string
}

func newHABed(t *testing.T, replicas int) *haBed {
	b := bed.OpenT(t)
	h := &haBed{b: b, proxy: startProxy(t)}
	var ip string
	h.network, ip = dockerNetwork(t)
	h.subnet = strings.TrimSuffix(ip, ".10")
	h.cp = newChartPods(t, b, h.network, fmt.Sprintf("https://127.0.0.1:%d/validate-eviction", h.proxy.port()),
		"127.0.0.1", "--set", "config.migrations.bandwidthPerMigration=16Mi",
		"--set", "config.migrations.evacuateExternal=true")
	for i := 0; i < replicas; i++ {
		h.startPod(t, i)
	}
	return h
}

// startPod starts replica i (a new pod at an address of its own) and
// waits until it is ready.
func (h *haBed) startPod(t *testing.T, i int) *chartPod {
	p := h.cp.start(uniq("ha"), fmt.Sprintf("%s.%d", h.subnet, 10+i))
	h.pods = append(h.pods, p)
	h.proxy.add(p)
	waitReady(t, p.metrics, 60*time.Second)
	return p
}

// leader waits until one of the pods holds the Lease.
func (h *haBed) leader(t *testing.T, timeout time.Duration) *chartPod {
	t.Helper()
	var p *chartPod
	err := bed.Eventually(context.Background(), timeout, func(ctx context.Context) (bool, error) {
		p = holderPod(t, h.b, h.pods)
		return p != nil, nil
	})
	if err != nil {
		t.Fatalf("no replica holds the Lease (holder %q)", leaseHolder(t, h.b, chartNS, chartRelease))
	}
	return p
}

// vms creates n 8Gi VMs on node with the eviction strategy.
func (h *haBed) vms(t *testing.T, ns, node string, n int, strategy string) []sim.VM {
	var specs []sim.VM
	for i := 0; i < n; i++ {
		specs = append(specs, sim.VM{Namespace: ns, Name: fmt.Sprintf("vm-%d", i), Node: node, Memory: "8Gi",
			EvictionStrategy: strategy})
	}
	vms(t, h.b, specs)
	return specs
}

// takeover waits until a pod other than old (any pod when old is nil)
// leads and writes: it returns
// the pod and the times from `from` to its first lead (vmdrain_leader 1)
// and to its first create the apiserver answered (an Event or a
// migration; a replica that does not lead creates nothing).
func (h *haBed) takeover(t *testing.T, old *chartPod, from time.Time, timeout time.Duration) (*chartPod, time.Duration, time.Duration) {
	t.Helper()
	var lead time.Duration
	var leader *chartPod
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, p := range h.pods {
			if old != nil && p == old {
				continue
			}
			s, err := scrapeMetrics(p.metrics)
			if err != nil {
				continue
			}
			creates := s.sum(`vmdrain_api_requests_total{verb="create"`) - s.sum(`vmdrain_api_requests_total{verb="create",code="error"`)
			if s["vmdrain_leader"] == 1 && leader == nil {
				leader, lead = p, time.Since(from)
			}
			if creates > 0 {
				if leader != p {
					t.Errorf("%s created objects before it led (leader %v)", p.name, leader)
				}
				return p, lead, time.Since(from)
			}
		}
	}
	t.Fatalf("no replica took over and wrote within %s (leader %v)", timeout, leader)
	return nil, 0, 0
}

// checkOnce: every VM left node with exactly one successful migration,
// the pacing limits (2 out of a node, 5 in all) held at every instant, and
// no VMI had two unfinished migrations at once.
func checkOnce(t *testing.T, b *bed.Bed, ns string, w *migWatcher, node string, specs []sim.VM) {
	t.Helper()
	if err := w.error(); err != nil {
		t.Fatalf("migration watch: %v", err)
	}
	maxTotal, maxNode := w.checkLimits(t, 2, 5)
	succeeded := map[string]int{}
	for _, m := range migrations(t, b, ns) {
		if m.Status.Phase == "Succeeded" {
			succeeded[m.Spec.VMIName]++
		}
	}
	dup := 0
	for _, s := range specs {
		if succeeded[s.Name] != 1 {
			t.Errorf("%s: %d successful migrations, want 1", s.Name, succeeded[s.Name])
		}
		if succeeded[s.Name] > 1 {
			dup += succeeded[s.Name] - 1
		}
		if vmiNode(t, b, ns, s.Name) == node {
			t.Errorf("%s is still on %s", s.Name, node)
		}
	}
	checkOneInFlightPerVMI(t, w)
	t.Logf("%d migrations watched, %d duplicate; max in flight: cluster %d, out of one node %d",
		w.count(), dup, maxTotal, maxNode)
}

// drainBed is what every HA test drains: 3 fresh nodes, count VMs on the
// first, an independent watcher of their migrations, and the leader.
type drainBed struct {
	ns     string
	n      []string
	specs  []sim.VM
	w      *migWatcher
	leader *chartPod
}

func (h *haBed) drainBed(t *testing.T, prefix string, count int, strategy string) *drainBed {
	d := &drainBed{ns: h.b.Namespace(t), n: nodes(t, h.b, uniq(prefix), 3)}
	d.specs = h.vms(t, d.ns, d.n[0], count, strategy)
	d.w = watchMigrations(t, h.b, d.ns)
	resetAfter(t, h.b, d.ns, d.n[0])
	diagnose(t, h.b, d.ns, d.w, d.n...)
	d.leader = h.leader(t, 30*time.Second)
	return d
}

// TestLeaderFailoverPartition: three replicas; mid kubectl drain the
// leader is cut off the network. Another replica takes over (the time from
// the cut to its lead and to its first write is printed), kubectl drain
// gets answers throughout and ends, every VMI moved once within the
// limits; the old leader, reconnected, never writes again.
func TestLeaderFailoverPartition(t *testing.T) {
	h := newHABed(t, 3)
	b := h.b
	d := h.drainBed(t, "part", 6, "External")
	ns, n, specs, w, old := d.ns, d.n, d.specs, d.w, d.leader

	type result struct {
		out string
		err error
	}
	drained := make(chan result, 1)
	go func() {
		out, err := drainCmd(t, b, n[0], "--timeout=200s")
		drained <- result{out, err}
	}()
	w.waitUntil(t, 60*time.Second, "a migration in flight", func() bool { return w.inFlightFrom(n[0]) >= 1 })
	before, err := scrapeMetrics(old.metrics)
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	h.proxy.drop(old)
	docker(t, "network", "disconnect", h.network, old.name)
	t.Logf("%s (the leader) cut off the network with %d migrations in flight", old.name, w.inFlightFrom(n[0]))
	leader, lead, write := h.takeover(t, old, cut, 60*time.Second)
	t.Logf("takeover by %s: leads %.1fs after the cut, first write %.1fs after the cut", leader.name, lead.Seconds(), write.Seconds())
	if write > 20*time.Second {
		t.Errorf("the first write of the new leader came %.1fs after the cut; the target is under 20s", write.Seconds())
	}

	docker(t, "network", "connect", "--ip", old.ip, h.network, old.name)
	h.proxy.undrop(old)
	var after scrape
	err = bed.Eventually(context.Background(), 30*time.Second, func(ctx context.Context) (bool, error) {
		after, err = scrapeMetrics(old.metrics)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the reconnected %s does not answer: %v", old.name, err)
	}
	if after["vmdrain_leader"] != 0 {
		t.Errorf("the reconnected %s says vmdrain_leader %v", old.name, after["vmdrain_leader"])
	}
	t.Logf("old leader while cut off: answered writes %v before, %v after; %v fenced",
		before.answeredWrites(), after.answeredWrites(), after.sum("vmdrain_api_fenced_requests_total"))

	res := <-drained
	if res.err != nil {
		t.Fatalf("kubectl drain failed: %v\n%s", res.err, res.out)
	}
	if strings.Contains(res.out, "failed calling webhook") {
		t.Errorf("kubectl drain met a webhook that did not answer:\n%s", res.out)
	}
	waitNode(t, b, n[0], time.Minute, "state Drained", stateIs("Drained"))
	checkOnce(t, b, ns, w, n[0], specs)
	final, err := scrapeMetrics(old.metrics)
	if err != nil {
		t.Fatal(err)
	}
	checkNoWrites(t, old.name, after, final)
	if h := holderPod(t, b, h.pods); h != leader {
		t.Errorf("the Lease moved again, to %v", h)
	}
}

// checkNoWrites: between two scrapes of a replica that did not lead, the
// apiserver answered no create, update or delete of its, and no more
// patches than the evictions it answered (each may write one mark).
func checkNoWrites(t *testing.T, name string, from, to scrape) {
	t.Helper()
	a, z := from.answeredWrites(), to.answeredWrites()
	evictions := to.sum("vmdrain_evictions_total") - from.sum("vmdrain_evictions_total")
	for _, verb := range []string{"create", "update", "delete"} {
		if z[verb] != a[verb] {
			t.Errorf("%s wrote while it did not lead: %s %v -> %v", name, verb, a[verb], z[verb])
		}
	}
	if z["patch"]-a["patch"] > evictions {
		t.Errorf("%s patched %v times while it did not lead, answering %v evictions", name, z["patch"]-a["patch"], evictions)
	}
	if to["vmdrain_leader"] != 0 {
		t.Errorf("%s leads again", name)
	}
}

// TestLeaderKilledRepeatedly: the leader is killed (SIGKILL, no release)
// and restarted, as a kubelet restarts a container, three times during a
// taint drain: each time a replica takes over once the Lease expired
// (another one, or the restarted one under its new identity: all three
// race for the expired Lease), and the drain ends with every VMI moved once
// within the limits.
func TestLeaderKilledRepeatedly(t *testing.T) {
	h := newHABed(t, 3)
	b := h.b
	d := h.drainBed(t, "kill", 8, "LiveMigrate")
	ns, n, specs, w, leader := d.ns, d.n, d.specs, d.w, d.leader

	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	for cycle := 1; cycle <= 3; cycle++ {
		w.waitUntil(t, 90*time.Second, "a migration in flight", func() bool { return w.inFlightFrom(n[0]) >= 1 })
		killed := time.Now()
		docker(t, "kill", "-s", "KILL", leader.name)
		docker(t, "start", leader.name)
		h.cp.follow(leader, killed.Format(time.RFC3339Nano))
		// the restarted container's counters start again from zero, so
		// its creates are all from after the kill
		next, lead, write := h.takeover(t, nil, killed, 60*time.Second)
		t.Logf("cycle %d: %s killed; %s leads %.1fs later, first write %.1fs later", cycle, leader.name, next.name,
			lead.Seconds(), write.Seconds())
		leader = next
		if w.inFlightFrom(n[0]) == 0 && nodeState(t, b, n[0]) == "Drained" {
			break
		}
	}
	waitNode(t, b, n[0], 3*time.Minute, "state Drained", stateIs("Drained"))
	checkOnce(t, b, ns, w, n[0], specs)
}

// nodeState is the node's vmdrain.io/state annotation.
func nodeState(t *testing.T, b *bed.Bed, name string) string {
	node, err := b.Kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node.Annotations["vmdrain.io/state"]
}

// TestLeaderRollingUpdate: a rolling update of two replicas during a
// taint drain, as the Deployment's RollingUpdate does it: a new pod
// starts, then an old one stops (SIGTERM, releasing the Lease if it held
// it), twice. The lead moves within a retry period of each release, and
// the drain ends with every VMI moved once within the limits.
func TestLeaderRollingUpdate(t *testing.T) {
	h := newHABed(t, 2)
	b := h.b
	d := h.drainBed(t, "roll", 6, "LiveMigrate")
	ns, n, specs, w := d.ns, d.n, d.specs, d.w

	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	olds := append([]*chartPod(nil), h.pods...)
	for i, old := range olds {
		w.waitUntil(t, 90*time.Second, "a migration in flight", func() bool { return w.inFlightFrom(n[0]) >= 1 })
		h.startPod(t, 2+i) // the surge pod, at a new address
		wasLeader := holderPod(t, b, h.pods) == old
		stopped := time.Now()
		docker(t, "stop", "-t", fmt.Sprint(h.cp.grace()), old.name)
		if code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", old.name); code != "0" {
			t.Errorf("%s exited %s after SIGTERM, want 0", old.name, code)
		}
		took := time.Since(stopped)
		if wasLeader {
			next, lead, _ := h.takeover(t, old, stopped, 30*time.Second)
			t.Logf("%s (the leader) stopped in %.1fs; %s leads %.1fs after the stop began", old.name, took.Seconds(),
				next.name, lead.Seconds())
			if lead > took+5*time.Second {
				t.Errorf("the lead moved %.1fs after the stop began; a released Lease is taken within a retry period", lead.Seconds())
			}
		} else {
			t.Logf("%s (not the leader) stopped in %.1fs", old.name, took.Seconds())
		}
	}
	waitNode(t, b, n[0], 3*time.Minute, "state Drained", stateIs("Drained"))
	checkOnce(t, b, ns, w, n[0], specs)
}

// TestLeaderElectionOffRunsAlone: with --leader-elect=false one vmdrain
// leads from the start without a Lease: it drains, and sends no Lease
// request.
func TestLeaderElectionOffRunsAlone(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("solo"), 2)
	setConfig(t, b, "LiveMigration", "")
	vm(t, b, sim.VM{Namespace: ns, Name: "solo", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate"})
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startVmdrain(t, b, "--leader-elect=false", "--metrics-listen", metrics)
	waitReady(t, metrics, 30*time.Second)
	waitLog(t, p.log, 10*time.Second, "vmdrain starting", "leader_election=off")
	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	waitNode(t, b, n[0], time.Minute, "state Drained", stateIs("Drained"))
	s, err := scrapeMetrics(metrics)
	if err != nil {
		t.Fatal(err)
	}
	if lease := s.sum(`vmdrain_api_requests_total{verb="lease_`); lease != 0 {
		t.Errorf("%v Lease requests without leader election", lease)
	}
	if s.answeredWrites()["create"] == 0 {
		t.Error("no create answered: vmdrain did not write")
	}
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	waitNode(t, b, n[0], time.Minute, "state Completed", stateIs("Completed"))
	if err := p.terminate(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v (want exit 0)", err)
	}
}
