package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// apiServer2 is a second kube-apiserver on the bed's etcd: the bed's
// arguments on another port, plus extra.
type apiServer2 struct {
	t          *testing.T
	b          *bed.Bed
	args       []string
	logPath    string
	port       string
	kubeconfig string
	cmd        *exec.Cmd
	exited     chan struct{}
}

// secondAPIServer starts another kube-apiserver on the bed's etcd, with
// the bed's arguments on another port plus extra, and returns a
// kubeconfig for it; it is killed when the test ends.
func secondAPIServer(t *testing.T, b *bed.Bed, extra ...string) string {
	return startAPIServer2(t, b, extra...).kubeconfig
}

func startAPIServer2(t *testing.T, b *bed.Bed, extra ...string) *apiServer2 {
	t.Helper()
	_, args := apiServerCmdline(t, b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &apiServer2{t: t, b: b, port: fmt.Sprint(l.Addr().(*net.TCPAddr).Port),
		logPath: filepath.Join(b.Dir, "logs", "kube-apiserver-"+t.Name()+".log")}
	l.Close()
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--secure-port" && i+1 < len(args):
			i++
		case strings.HasPrefix(args[i], "--secure-port="):
		default:
			s.args = append(s.args, args[i])
		}
	}
	// The bed's server owns the kubernetes Service's endpoints.
	s.args = append(s.args, "--secure-port="+s.port, "--endpoint-reconciler-type=none")
	s.args = append(s.args, extra...)
	t.Cleanup(s.kill)
	s.start()

	kc, err := os.ReadFile(b.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), b.Config.Host) {
		t.Fatalf("the bed's kubeconfig does not name its server %s", b.Config.Host)
	}
	s.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(s.kubeconfig, []byte(strings.ReplaceAll(string(kc), b.Config.Host, s.host())), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *apiServer2) host() string {
	return strings.Replace(s.b.Config.Host, hostPort(s.t, s.b.Config.Host), s.port, 1)
}

// start starts it and waits until it is ready.
func (s *apiServer2) start() {
	t := s.t
	t.Helper()
	s.cmd, s.exited = startLogged(t, s.args, s.logPath)
	cfg := rest.CopyConfig(s.b.Config)
	cfg.Host = s.host()
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = bed.Eventually(context.Background(), 2*time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case <-s.exited:
			return false, fmt.Errorf("the second kube-apiserver exited (see %s)", s.logPath)
		default:
		}
		body, err := kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
	if err != nil {
		t.Fatalf("second kube-apiserver on port %s not ready: %v", s.port, err)
	}
}

// kill stops it at once (SIGKILL: no graceful end of its watches).
func (s *apiServer2) kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
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

// etcdCompact compacts the bed's etcd (through its JSON gateway) at its
// current revision, so that no watch can resume from an older one.
func etcdCompact(t *testing.T, b *bed.Bed) int64 {
	t.Helper()
	_, args := apiServerCmdline(t, b)
	var etcd string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
			etcd = strings.Split(v, ",")[0]
		} else if a == "--etcd-servers" && i+1 < len(args) {
			etcd = strings.Split(args[i+1], ",")[0]
		}
	}
	if etcd == "" {
		t.Fatalf("no --etcd-servers in the kube-apiserver's arguments %v", args)
	}
	post := func(path, body string) map[string]any {
		resp, err := http.Post(etcd+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("etcd %s: HTTP %d, %v %v", path, resp.StatusCode, err, out)
		}
		return out
	}
	hdr, _ := post("/v3/kv/range", `{"key":"Lw=="}`)["header"].(map[string]any)
	rev, err := strconv.ParseInt(fmt.Sprint(hdr["revision"]), 10, 64)
	if err != nil {
		t.Fatalf("etcd revision %v: %v", hdr["revision"], err)
	}
	post("/v3/kv/compaction", fmt.Sprintf(`{"revision":"%d","physical":true}`, rev))
	return rev
}

// TestClientRelistsAfterWatchExpired: a watch that resumes from a
// resourceVersion the server no longer has (etcd compacted while the
// informer's kube-apiserver was down, and that server's watch cache starts
// over) gets 410; the informer loads the whole state again the preferred
// way (a stream) and fires what changed meanwhile: a pod modified, one
// deleted, one added. Its cache then equals the server's.
func TestClientRelistsAfterWatchExpired(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	ns := b.Namespace(t)
	createPods(t, b, ns, 0, 20)
	s2 := startAPIServer2(t, b)
	w := startWatch(t, s2.kubeconfig, "pods", "-n", ns)
	w.waitLine(t, "SYNCED pods objects=20", 30*time.Second)

	s2.kill()
	pods := b.Kube.CoreV1().Pods(ns)
	p, err := pods.Get(ctx, "p-00001", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Labels["step"] = "while-down"
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "p-00002", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	createPods(t, b, ns, 20, 1)
	rev := etcdCompact(t, b)
	s2.start()

	w.waitLine(t, "ADDED "+ns+"/p-00020", time.Minute)
	w.waitLine(t, "DELETED "+ns+"/p-00002", 10*time.Second)
	w.waitLine(t, "MODIFIED "+ns+"/p-00001", 10*time.Second)
	data, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	log := string(data)
	if !strings.Contains(log, "informer: resourceVersion expired, relisting") {
		t.Errorf("no 410 (expired) in the log after compacting etcd at revision %d:\n%s", rev, log)
	}
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cache := w.cache(t)
	var summary string
	for _, l := range w.snapshot() {
		if strings.HasPrefix(l, "CACHE-END ") {
			summary = l
		}
	}
	// streamed at the start and again after the 410; no LIST
	wantFields(t, summary, "method=stream", "relists=1", "streams=2", "lists=0")
	t.Logf("%s", summary)
	if len(cache) != len(list.Items) {
		t.Errorf("cache holds %d pods, the server %d", len(cache), len(list.Items))
	}
	for _, p := range list.Items {
		if cache[ns+"/"+p.Name] != p.ResourceVersion {
			t.Errorf("%s: cache rv %q, server %q", p.Name, cache[ns+"/"+p.Name], p.ResourceVersion)
		}
	}
}
