package operator

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
)

// These tests drive vmdrain's Kubernetes client through `vmdrain debug`,
// against the bed's real kube-apiserver.

// debugRun runs `vmdrain debug ARGS` to completion.
func debugRun(t *testing.T, kubeconfig string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(vmdrainBin(t), append([]string{"--kubeconfig", kubeconfig, "debug"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), errb.String(), err
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("vmdrain debug %v did not finish", args)
	}
	return "", "", nil
}

// watcher is a running `vmdrain debug watch`, its output collected by line.
type watcher struct {
	log   string // its stderr, the log at level info
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startWatch(t *testing.T, kubeconfig string, args ...string) *watcher {
	t.Helper()
	cmd := exec.Command(vmdrainBin(t), append([]string{"--kubeconfig", kubeconfig, "--log-level", "info", "debug", "watch"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "watch.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watcher{log: logf.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s := bufio.NewScanner(stdout)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, s.Text())
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logf.Name())
			t.Logf("vmdrain debug watch stderr:\n%s", data)
		}
	})
	return w
}

func (w *watcher) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// waitLine waits for a line starting with prefix, after skip lines.
func (w *watcher) waitLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, l := range w.snapshot() {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no line starting with %q within %s; got:\n%s", prefix, timeout, strings.Join(w.snapshot(), "\n"))
	return ""
}

// cache asks the watcher for its cache (SIGUSR1) and returns name -> rv.
func (w *watcher) cache(t *testing.T) map[string]string {
	t.Helper()
	before := len(w.snapshot())
	_ = w.cmd.Process.Signal(syscall.SIGUSR1)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lines := w.snapshot()
		for i := before; i < len(lines); i++ {
			if strings.HasPrefix(lines[i], "CACHE-END ") {
				out := map[string]string{}
				for _, l := range lines[before:i] {
					if f := strings.Fields(l); len(f) >= 3 && f[0] == "CACHE" {
						out[f[1]] = strings.TrimPrefix(f[2], "rv=")
					}
				}
				return out
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no cache dump after SIGUSR1")
	return nil
}

// createPods creates pods p-<from> .. p-<from+n-1>.
func createPods(t *testing.T, b *bed.Bed, ns string, from, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := from; i < from+n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%05d", i), Namespace: ns,
					Labels: map[string]string{"kubevirt.io": "virt-launcher"}},
				// No scheduler serves this name: the pods stay Pending, also
				// in a bed with kube-scheduler, and fill no node.
				Spec: corev1.PodSpec{SchedulerName: "vmdrain-e2e-none",
					Containers: []corev1.Container{{Name: "c", Image: "none"}}},
			}
			if _, err := b.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestClientListsTwoThousandPodsInPages: LIST with limit/continue returns
// every pod exactly once (--initial-list paged: the consistent LIST from
// etcd that the informer otherwise takes only when the watch cache is
// behind).
func TestClientListsTwoThousandPodsInPages(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	createPods(t, b, ns, 0, 2000)
	out, errOut, err := debugRun(t, b.Kubeconfig, "list", "pods", "-n", ns, "--page-size", "300",
		"--initial-list", "paged")
	if err != nil {
		t.Fatalf("debug list: %v\n%s", err, errOut)
	}
	seen := map[string]int{}
	var summary string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "CACHE" {
			seen[f[1]]++
		}
		if strings.HasPrefix(l, "LISTED ") {
			summary = l
		}
	}
	if len(seen) != 2000 {
		t.Errorf("listed %d distinct pods, want 2000", len(seen))
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", name, n)
		}
	}
	if !strings.Contains(summary, "objects=2000") || !strings.Contains(summary, "lists=7") ||
		!strings.Contains(summary, "method=paged") || !strings.Contains(summary, "streams=0") {
		t.Errorf("summary %q: want objects=2000 in 7 pages of 300, none streamed", summary)
	}
	t.Logf("%s", summary)
}

// apiServerCmdline returns the bed's kube-apiserver's pid and command line.
func apiServerCmdline(t *testing.T, b *bed.Bed) (int, []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.Dir, "pids", "kube-apiserver.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	return pid, strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
}

// restartAPIServer kills the bed's kube-apiserver (SIGKILL: a crash, and no
// wait for its graceful drain of long-running watches) and starts it again
// with the same arguments, then waits until it is ready.
func restartAPIServer(t *testing.T, b *bed.Bed, down time.Duration) {
	t.Helper()
	pidPath := filepath.Join(b.Dir, "pids", "kube-apiserver.pid")
	pid, args := apiServerCmdline(t, b)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 150 && bed.Running(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if bed.Running(pid) {
		t.Fatal("kube-apiserver did not stop")
	}
	time.Sleep(down)
	// The killed server's connections linger a moment (FIN_WAIT), and while
	// they do the port cannot be bound again: wait until it can.
	for i, a := range args {
		if a == "--secure-port" && i+1 < len(args) {
			err := bed.Eventually(context.Background(), 30*time.Second, func(context.Context) (bool, error) {
				l, err := net.Listen("tcp", "0.0.0.0:"+args[i+1])
				if err == nil {
					l.Close()
				}
				return err == nil, nil
			})
			if err != nil {
				t.Fatalf("port %s of kube-apiserver not free 30 s after its kill", args[i+1])
			}
		}
	}
	cmd, _ := startLogged(t, args, filepath.Join(b.Dir, "logs", "kube-apiserver.log"))
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		body, err := b.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
	if err != nil {
		t.Fatal("kube-apiserver not ready after the restart")
	}
}

// TestClientWatchSurvivesAPIServerRestart: changes made before, during and
// after a restart all reach the cache; every pod's events have strictly
// increasing resourceVersions (none repeated); the final cache equals the
// server's state.
func TestClientWatchSurvivesAPIServerRestart(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	ns := b.Namespace(t)
	createPods(t, b, ns, 0, 20)
	w := startWatch(t, b.Kubeconfig, "pods", "-n", ns)
	w.waitLine(t, "SYNCED pods objects=20", 30*time.Second)

	pods := b.Kube.CoreV1().Pods(ns)
	touch := func(name, v string) {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels["step"] = v
		if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	touch("p-00001", "before")
	_ = pods.Delete(ctx, "p-00002", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	restartAPIServer(t, b, 2*time.Second)
	touch("p-00003", "after")
	_ = pods.Delete(ctx, "p-00004", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	createPods(t, b, ns, 20, 2)
	w.waitLine(t, "ADDED "+ns+"/p-00021", time.Minute)

	err := bed.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		list, err := pods.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		cache := w.cache(t)
		if len(cache) != len(list.Items) {
			return false, nil
		}
		for _, p := range list.Items {
			if cache[ns+"/"+p.Name] != p.ResourceVersion {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the cache never matched the server: %v", w.cache(t))
	}
	last := map[string]int64{}
	for _, l := range w.snapshot() {
		f := strings.Fields(l)
		if len(f) < 3 || (f[0] != "ADDED" && f[0] != "MODIFIED" && f[0] != "DELETED") {
			continue
		}
		rv, _ := strconv.ParseInt(strings.TrimPrefix(f[2], "rv="), 10, 64)
		if prev, ok := last[f[1]]; ok && rv <= prev && f[0] != "DELETED" {
			t.Errorf("%s %s at rv %d after rv %d: repeated or out of order", f[0], f[1], rv, prev)
		}
		last[f[1]] = rv
	}
	for _, name := range []string{"p-00001", "p-00003"} {
		found := false
		for _, l := range w.snapshot() {
			found = found || strings.HasPrefix(l, "MODIFIED "+ns+"/"+name+" ")
		}
		if !found {
			t.Errorf("the update of %s was missed", name)
		}
	}
	for _, name := range []string{"p-00002", "p-00004"} {
		found := false
		for _, l := range w.snapshot() {
			found = found || strings.HasPrefix(l, "DELETED "+ns+"/"+name+" ")
		}
		if !found {
			t.Errorf("the deletion of %s was missed", name)
		}
	}
}

// serviceAccount creates a service account, optionally allowed to list and
// watch pods, and returns a token for it.
func serviceAccount(t *testing.T, b *bed.Bed, ns, name string, canListPods bool) string {
	t.Helper()
	ctx := context.Background()
	if _, err := b.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if canListPods {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}}
		if _, err := b.Kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}
		if _, err := b.Kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return tokenOf(t, b, ns, name, 3600)
}

// tokenKubeconfig writes a kubeconfig that authenticates with tokenFile.
func tokenKubeconfig(t *testing.T, b *bed.Bed, tokenFile string) string {
	t.Helper()
	ca := b.Config.TLSClientConfig.CAFile
	caLine := "certificate-authority: " + ca
	if ca == "" {
		caLine = "certificate-authority-data: " + encodeB64(b.Config.TLSClientConfig.CAData)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: sa
clusters:
- name: bed
  cluster:
    server: %s
    %s
users:
- name: sa
  user:
    tokenFile: %s
contexts:
- name: sa
  context: {cluster: bed, user: sa}
`, b.Config.Host, caLine, tokenFile)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestClientForbiddenIsAClearError: a service account without RBAC rights
// gets the apiserver's Forbidden message, and the command fails.
func TestClientForbiddenIsAClearError(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	tok := serviceAccount(t, b, ns, "nobody", false)
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := debugRun(t, tokenKubeconfig(t, b, tf), "list", "pods", "-n", ns)
	if err == nil {
		t.Fatal("listing without permission succeeded")
	}
	// the whole state is streamed first: the verb refused is watch
	want := fmt.Sprintf(`403 Forbidden: pods is forbidden: User "system:serviceaccount:%s:nobody" cannot watch resource "pods"`, ns)
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr does not say %q:\n%s", want, errOut)
	}
	if strings.Contains(errOut, tok) {
		t.Error("the token appears in the output")
	}
}

// TestClientUsesRotatedToken: the token file is replaced by another
// account's token and the first account is deleted (its tokens stop
// working); the watch goes on with the new token.
func TestClientUsesRotatedToken(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	ns := b.Namespace(t)
	tokA := serviceAccount(t, b, ns, "rot-a", true)
	tokB := serviceAccount(t, b, ns, "rot-b", true)
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(tokA), 0o600); err != nil {
		t.Fatal(err)
	}
	createPods(t, b, ns, 0, 1)
	w := startWatch(t, tokenKubeconfig(t, b, tf), "pods", "-n", ns)
	w.waitLine(t, "SYNCED pods objects=1", 30*time.Second)

	// rotate: write the new token atomically, then revoke the old one
	tmp := tf + ".new"
	if err := os.WriteFile(tmp, []byte(tokB), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, tf); err != nil {
		t.Fatal(err)
	}
	if err := b.Kube.CoreV1().ServiceAccounts(ns).Delete(ctx, "rot-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// end the current watch so that the next request needs a valid token
	restartAPIServer(t, b, 0)
	createPods(t, b, ns, 1, 2)
	w.waitLine(t, "ADDED "+ns+"/p-00002", 2*time.Minute)
}

// startLogged starts args in a session of its own with its output appended
// to logPath; the channel closes when it has exited.
func startLogged(t *testing.T, args []string, logPath string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	return cmd, exited
}
