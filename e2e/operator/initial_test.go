package operator

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"vmdrain.io/e2e/bed"
)

// How vmdrain's informers load a resource's whole state, seen through
// `vmdrain debug list`'s summary line (method=, lists=, streams=) against
// the bed's kube-apiserver and against a second one, started from the
// same command line with the WatchList feature off.

// listSummary runs `vmdrain debug list pods -n ns ARGS` and returns its
// LISTED line and its stderr (the log at level info).
func listSummary(t *testing.T, kubeconfig, ns string, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := debugRun(t, kubeconfig, append([]string{"list", "pods", "-n", ns,
		"--log-level", "info"}, args...)...)
	if err != nil {
		t.Fatalf("debug list %v: %v\n%s", args, err, errOut)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "LISTED ") {
			return l, errOut
		}
	}
	t.Fatalf("debug list %v printed no summary:\n%s", args, out)
	return "", ""
}

// wantFields fails unless the summary holds every name=value given.
func wantFields(t *testing.T, summary string, fields ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, f := range strings.Fields(summary) {
		have[f] = true
	}
	for _, f := range fields {
		if !have[f] {
			t.Errorf("summary %q: want %s", summary, f)
		}
	}
}

// TestClientStreamsTheWholeState: by default the state comes in one WATCH
// with sendInitialEvents (no LIST at all); --initial-list cache makes it
// one LIST from the watch cache, never streamed.
func TestClientStreamsTheWholeState(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	createPods(t, b, ns, 0, 300)

	summary, log := listSummary(t, b.Kubeconfig, ns)
	wantFields(t, summary, "objects=300", "method=stream", "streams=1", "lists=0")
	if !strings.Contains(log, "informer: whole state loaded") || !strings.Contains(log, "method=stream") {
		t.Errorf("no log line of the streamed state:\n%s", log)
	}
	t.Logf("%s", summary)

	summary, _ = listSummary(t, b.Kubeconfig, ns, "--initial-list", "cache")
	wantFields(t, summary, "objects=300", "method=cache", "streams=0", "lists=1")
	t.Logf("%s", summary)

	_, errOut, err := debugRun(t, b.Kubeconfig, "list", "pods", "--initial-list", "stream")
	if err == nil || !strings.Contains(errOut, "--initial-list wants auto, cache or paged, not 'stream'") {
		t.Errorf("a bad --initial-list: err %v, stderr %q", err, errOut)
	}
}

// secondAPIServer starts another kube-apiserver on the bed's etcd, with
// the bed's arguments on another port plus extra, and returns a
// kubeconfig for it; it is killed when the test ends.
func secondAPIServer(t *testing.T, b *bed.Bed, extra ...string) string {
	t.Helper()
	_, args := apiServerCmdline(t, b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var out []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--secure-port" && i+1 < len(args):
			i++
		case strings.HasPrefix(args[i], "--secure-port="):
		default:
			out = append(out, args[i])
		}
	}
	// The bed's server owns the kubernetes Service's endpoints.
	out = append(out, "--secure-port="+port, "--endpoint-reconciler-type=none")
	out = append(out, extra...)
	logPath := filepath.Join(b.Dir, "logs", "kube-apiserver-"+t.Name()+".log")
	cmd, exited := startLogged(t, out, logPath)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	host := strings.Replace(b.Config.Host, hostPort(t, b.Config.Host), port, 1)
	cfg := rest.CopyConfig(b.Config)
	cfg.Host = host
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = bed.Eventually(context.Background(), 2*time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("the second kube-apiserver exited (see %s)", logPath)
		default:
		}
		body, err := kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
	if err != nil {
		t.Fatalf("second kube-apiserver on port %s not ready: %v", port, err)
	}
	kc, err := os.ReadFile(b.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), b.Config.Host) {
		t.Fatalf("the bed's kubeconfig does not name its server %s", b.Config.Host)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(kc), b.Config.Host, host)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// hostPort is the port of an https://HOST:PORT address.
func hostPort(t *testing.T, url string) string {
	t.Helper()
	i := strings.LastIndex(url, ":")
	if i < 0 || strings.Contains(url[i:], "/") {
		t.Fatalf("no port in %q", url)
	}
	return url[i+1:]
}

// TestClientListsFromTheWatchCacheWithoutWatchList: a kube-apiserver with
// the WatchList feature off refuses the streamed state (422); the informer
// says so and LISTs from the watch cache instead — one stream tried, then
// one LIST, not pages.
func TestClientListsFromTheWatchCacheWithoutWatchList(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	createPods(t, b, ns, 0, 300)
	_, args := apiServerCmdline(t, b)
	gates := "--feature-gates=WatchList=false"
	for _, a := range args {
		if strings.HasPrefix(a, "--feature-gates=") {
			t.Fatalf("the bed's kube-apiserver already sets %s: merge it here", a)
		}
	}
	kubeconfig := secondAPIServer(t, b, gates)

	summary, log := listSummary(t, kubeconfig, ns)
	wantFields(t, summary, "objects=300", "method=cache", "streams=1", "lists=1")
	if !strings.Contains(log, "does not stream the initial state; listing from its watch cache") {
		t.Errorf("no log line of the refused stream:\n%s", log)
	}
	t.Logf("%s", summary)

	// The bed's own server still streams.
	summary, _ = listSummary(t, b.Kubeconfig, ns)
	wantFields(t, summary, "objects=300", "method=stream")
}
