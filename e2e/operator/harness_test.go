// Package operator holds vmdrain's end-to-end tests: the real bin/vmdrain
// against the bed's real kube-apiserver, with the KubeVirt simulator playing
// KubeVirt. Nothing of vmdrain is stubbed.
package operator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

const (
	cfgNS   = "vmdrain-system"
	cfgName = "vmdrain-config"
	taint   = "kubevirt.io/drain"
)

// vmdrainBin is bin/vmdrain of this checkout, or $VMDRAIN_BIN.
func vmdrainBin(t testing.TB) string {
	if p := os.Getenv("VMDRAIN_BIN"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "vmdrain")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("vmdrain binary %s: %v (run make first)", p, err)
	}
	return p
}

// proc is a running vmdrain.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startVmdrain runs `vmdrain run` against the bed with the admin kubeconfig
// and the tests' configuration ConfigMap.
func startVmdrain(t testing.TB, b *bed.Bed, extra ...string) *proc {
	t.Helper()
	// leader election stays on, on a Lease of this process's own: tests that
	// run one vmdrain after another never wait for a killed one's Lease
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--leader-elect") }) {
		extra = append(extra, "--leader-elect-lease", fmt.Sprintf("%s/vmdrain-e2e-%d-%d", cfgNS, os.Getpid(), leaseSeq.Add(1)))
	}
	return startVmdrainAs(t, b.Kubeconfig, cfgNS+"/"+cfgName, extra...)
}

// leaseSeq numbers the Leases of the vmdrains one test binary starts.
var leaseSeq atomic.Int64

// startVmdrainAs runs `vmdrain run --config config` with kubeconfig,
// logging to a file whose tail is printed when the test fails.
func startVmdrainAs(t testing.TB, kubeconfig, config string, extra ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "vmdrain.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	bin := vmdrainBin(t)
	// /metrics and the probes are served with or without the webhook: a
	// free port unless the test names one, so two vmdrains never collide
	if !slices.Contains(extra, "--metrics-listen") {
		extra = append(extra, "--metrics-listen", "127.0.0.1:0")
	}
	// beside the real KubeVirt vmdrain reads its CR, as the chart has it
	if b, err := bed.Open(); err == nil && b.Real() && !slices.Contains(extra, "--kubevirt") {
		extra = append(extra, "--kubevirt", "kubevirt/kubevirt")
	}
	args := append([]string{"--kubeconfig", kubeconfig, "--log-level", "debug", "run",
		"--config", config}, extra...)
	// VMDRAIN_VALGRIND=1 (make valgrind-e2e) runs vmdrain under valgrind;
	// whatever valgrind reports fails the test.
	var vgLog string
	if os.Getenv("VMDRAIN_VALGRIND") != "" {
		vgLog = logPath + ".valgrind"
		args = append([]string{"--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
			"--errors-for-leak-kinds=definite,indirect", "--log-file=" + vgLog, bin}, args...)
		bin = "valgrind"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		if vgLog != "" {
			// a clean exit, so that valgrind checks for leaks
			if p.cmd.ProcessState == nil {
				if err := p.terminate(2 * time.Minute); err != nil {
					t.Errorf("vmdrain under valgrind, SIGTERM: %v", err)
				}
			}
			if data, _ := os.ReadFile(vgLog); len(strings.TrimSpace(string(data))) > 0 {
				t.Errorf("valgrind reports on vmdrain:\n%s", data)
			}
		}
		p.kill()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 300 {
				lines = lines[len(lines)-300:]
			}
			t.Logf("vmdrain log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// terminate sends SIGTERM and returns the exit error (nil for exit 0).
func (p *proc) terminate(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("vmdrain did not exit within %s of SIGTERM", timeout)
	}
}

// setConfig creates or replaces the configuration ConfigMap.
func setConfig(t testing.TB, b *bed.Bed, gates, migrations string) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.Kube.CoreV1().Namespaces().Get(ctx, cfgNS, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		_, err = b.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfgNS}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cfgName, Namespace: cfgNS},
		Data:       map[string]string{"feature-gates": gates, "migrations": migrations},
	}
	cur, err := b.Kube.CoreV1().ConfigMaps(cfgNS).Get(ctx, cfgName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = b.Kube.CoreV1().ConfigMaps(cfgNS).Create(ctx, cm, metav1.CreateOptions{})
	} else if err == nil {
		cur.Data = cm.Data
		_, err = b.Kube.CoreV1().ConfigMaps(cfgNS).Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// nodes creates n kwok nodes named <prefix>-<i> and waits until they are Ready.
func nodes(t testing.TB, b *bed.Bed, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if err := b.CreateNode(ctx, name, map[string]string{"e2e-group": prefix}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := b.WaitNodesReady(ctx, time.Minute, names...); err != nil {
		t.Fatalf("nodes not ready: %v", err)
	}
	return names
}

func uniq(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%100000)
}

func vm(t testing.TB, b *bed.Bed, v sim.VM) *kubevirt.VMI {
	t.Helper()
	vmi, _, err := b.CreateVM(context.Background(), v)
	if err != nil {
		t.Fatalf("create VM %s: %v", v.Name, err)
	}
	return vmi
}

func kubectl(t testing.TB, b *bed.Bed, args ...string) string {
	t.Helper()
	out, err := b.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getNode(t testing.TB, b *bed.Bed, name string) *corev1.Node {
	t.Helper()
	n, err := b.Kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitNode polls the node until cond holds.
func waitNode(t testing.TB, b *bed.Bed, name string, timeout time.Duration, what string, cond func(*corev1.Node) bool) *corev1.Node {
	t.Helper()
	var last *corev1.Node
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true,
		func(ctx context.Context) (bool, error) {
			n, err := b.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			last = n
			return cond(n), nil
		})
	if err != nil {
		ann := map[string]string{}
		if last != nil {
			ann = last.Annotations
		}
		t.Fatalf("node %s: %s not reached within %s; annotations %v", name, what, timeout, ann)
	}
	return last
}

func stateIs(s string) func(*corev1.Node) bool {
	return func(n *corev1.Node) bool { return n.Annotations["vmdrain.io/state"] == s }
}

// vmiNode returns where a VMI runs now.
func vmiNode(t testing.TB, b *bed.Bed, ns, name string) string {
	t.Helper()
	v, err := b.VMI(context.Background(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return v.Status.NodeName
}

// migrations lists the migration objects of a namespace.
func migrations(t testing.TB, b *bed.Bed, ns string) []kubevirt.Migration {
	t.Helper()
	list, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []kubevirt.Migration
	for i := range list.Items {
		var m kubevirt.Migration
		if err := kubevirt.FromUnstructured(&list.Items[i], &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// eventReasons lists the reasons of Events about an object.
func eventReasons(t testing.TB, b *bed.Bed, ns, name string) map[string]int {
	t.Helper()
	list, err := b.Kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range list.Items {
		out[e.Reason]++
	}
	return out
}

// annotationWatcher records every distinct value of the node's vmdrain
// annotations, as seen by a watch, until stopped.
type annotationWatcher struct {
	mu       sync.Mutex
	progress []string
	states   []string
	cancel   context.CancelFunc
	done     chan struct{}
}

func watchNode(t testing.TB, b *bed.Bed, name string) *annotationWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &annotationWatcher{cancel: cancel, done: make(chan struct{})}
	wi, err := b.Kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		for ev := range wi.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			w.mu.Lock()
			if p := n.Annotations["vmdrain.io/progress"]; p != "" && (len(w.progress) == 0 || w.progress[len(w.progress)-1] != p) {
				w.progress = append(w.progress, p)
			}
			if s := n.Annotations["vmdrain.io/state"]; s != "" && (len(w.states) == 0 || w.states[len(w.states)-1] != s) {
				w.states = append(w.states, s)
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *annotationWatcher) stop() {
	w.cancel()
	<-w.done
}

func (w *annotationWatcher) snapshot() (progress, states []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.progress...), append([]string(nil), w.states...)
}
