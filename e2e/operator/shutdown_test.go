package operator

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// evictionReview is an AdmissionReview of the eviction of pod ns/name.
func evictionReview(uid, ns, name string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`+
		`"uid":%q,"kind":{"group":"policy","version":"v1","kind":"Eviction"},`+
		`"resource":{"group":"","version":"v1","resource":"pods"},"subResource":"eviction",`+
		`"name":%q,"namespace":%q,"operation":"CREATE","userInfo":{"username":"e2e"},`+
		`"object":{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":%q}}}}`,
		uid, name, ns, name, ns))
}

// reviewLoad keeps AdmissionReviews in flight on kept-alive connections
// until stopped, and sorts every request's end: a whole answer naming its
// request, a connection refused or closed before any answer byte (a clean
// drop), or anything else (broken: a partial or foreign answer).
type reviewLoad struct {
	stop                     atomic.Bool
	wg                       sync.WaitGroup
	answered, dropped, later atomic.Int64 // later: answers saying vmdrain is shutting down
	mu                       sync.Mutex
	broken                   []string
}

func startReviewLoad(addr string, workers int, pods []string, ghostNS string) *reviewLoad {
	l := &reviewLoad{}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxConnsPerHost: 1}}
			for i := 0; !l.stop.Load(); i++ {
				uid := fmt.Sprintf("w%d-%d", w, i)
				// even workers name pods that do not exist (each a live
				// lookup), odd ones the launchers of the draining node
				ns, name := ghostNS, "ghost-"+uid
				if w%2 == 1 && len(pods) > 0 {
					parts := strings.SplitN(pods[i%len(pods)], "/", 2)
					ns, name = parts[0], parts[1]
				}
				l.one(client, addr, uid, evictionReview(uid, ns, name))
			}
		}(w)
	}
	return l
}

func (l *reviewLoad) one(client *http.Client, addr, uid string, review []byte) {
	resp, err := client.Post("https://"+addr+"/validate-eviction", "application/json", bytes.NewReader(review))
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "malformed") || strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "Timeout") {
			l.fail("request %s: %v", uid, err)
		} else {
			l.dropped.Add(1)
			time.Sleep(20 * time.Millisecond) // refused: the process has gone
		}
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Response struct {
			UID    string `json:"uid"`
			Status struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	switch {
	case err != nil:
		l.fail("request %s: status %d, body cut: %v", uid, resp.StatusCode, err)
	case resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil || out.Response.UID != uid:
		l.fail("request %s: status %d: %.200s", uid, resp.StatusCode, body)
	default:
		l.answered.Add(1)
		if strings.Contains(out.Response.Status.Message, "shutting down") {
			l.later.Add(1)
		}
	}
}

func (l *reviewLoad) fail(format string, args ...any) {
	l.mu.Lock()
	l.broken = append(l.broken, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *reviewLoad) end(t *testing.T, phase string) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	if len(l.broken) > 0 {
		t.Errorf("%s: %d requests neither answered nor dropped cleanly; first: %s", phase, len(l.broken), l.broken[0])
	}
	if l.answered.Load() == 0 {
		t.Errorf("%s: no request answered", phase)
	}
	t.Logf("%s: %d reviews answered (%d saying vmdrain is shutting down), %d dropped cleanly, %d broken",
		phase, l.answered.Load(), l.later.Load(), l.dropped.Load(), len(l.broken))
}

// launchers lists ns's virt-launcher pods on node as ns/name.
func launchers(t *testing.T, b *bed.Bed, ns, node string) []string {
	t.Helper()
	pods, err := b.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "kubevirt.io=virt-launcher"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Spec.NodeName == node {
			out = append(out, ns+"/"+p.Name)
		}
	}
	return out
}

// terminateWithin sends SIGTERM to p and fails unless it exits 0 within
// limit (under valgrind, which also checks that everything was freed, the
// limit is stretched).
func terminateWithin(t *testing.T, p *proc, limit time.Duration, phase string) time.Duration {
	t.Helper()
	if os.Getenv("VMDRAIN_VALGRIND") != "" {
		limit *= 4
	}
	start := time.Now()
	err := p.terminate(limit)
	took := time.Since(start)
	if err != nil {
		t.Errorf("%s: SIGTERM: %v after %.1fs (want exit 0 within %s)", phase, err, took.Seconds(), limit)
	}
	data, _ := os.ReadFile(p.log)
	if !strings.Contains(string(data), "shutting down") {
		t.Errorf("%s: the log does not say that vmdrain is shutting down", phase)
	}
	return took
}

// TestShutdownUnderLoad: SIGTERM while a drain's writes and eviction
// lookups are in flight: every AdmissionReview is answered whole or
// dropped cleanly, vmdrain exits 0 within its 10 s grace period, and
// (under valgrind) frees everything; the drain still completes under the
// next vmdrain.
func TestShutdownUnderLoad(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("sig"), 3)
	setConfig(t, b, "LiveMigration", "")
	const count = 6
	for i := 0; i < count; i++ {
		vm(t, b, sim.VM{Namespace: ns, Name: "vm-" + strconv.Itoa(i), Node: n[0], Memory: "16Gi",
			EvictionStrategy: "LiveMigrate"})
	}
	certFile, keyFile, _ := webhookCert(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	webhook := []string{"--tls-cert", certFile, "--tls-key", keyFile, "--listen", addr}

	p := startVmdrain(t, b, webhook...)
	waitAnswering(t, addr)
	pods := launchers(t, b, ns, n[0])
	kubectl(t, b, "taint", "nodes", n[0], taint+"=x:NoSchedule")
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		return len(migrations(t, b, ns)) >= 1, nil
	})
	if err != nil {
		t.Fatal("no migration started")
	}
	// beside the real KubeVirt a launcher's review posted straight to
	// vmdrain hands its VMI to KubeVirt's evacuation, which never hears of
	// it (virt-api sees only the API server's evictions): there the load
	// names pods that do not exist, each a live lookup
	if b.Real() {
		pods = nil
	}
	load := startReviewLoad(addr, 8, pods, ns)
	time.Sleep(2 * time.Second)
	took := terminateWithin(t, p, 12*time.Second, "under load")
	load.end(t, "under load")
	t.Logf("under load: exited %.2fs after SIGTERM", took.Seconds())

	startVmdrain(t, b)
	waitNode(t, b, n[0], 3*time.Minute, "state Drained", stateIs("Drained"))
	for i := 0; i < count; i++ {
		if name := "vm-" + strconv.Itoa(i); vmiNode(t, b, ns, name) == n[0] {
			t.Errorf("%s is still on the drained node", name)
		}
	}
}

// waitAnswering waits until the webhook at addr answers a review.
func waitAnswering(t *testing.T, addr string) {
	t.Helper()
	waitAnsweringAs(t, addr, &tls.Config{InsecureSkipVerify: true})
}

// waitAnsweringAs waits until the webhook at addr answers a review sent
// over TLS with cfg.
func waitAnsweringAs(t *testing.T, addr string, cfg *tls.Config) {
	t.Helper()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg, DisableKeepAlives: true}}
	err := bed.Eventually(context.Background(), time.Minute, func(ctx context.Context) (bool, error) {
		resp, err := client.Post("https://"+addr+"/validate-eviction", "application/json", bytes.NewReader(notLauncherReview))
		if err != nil {
			return false, nil
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && !strings.Contains(string(body), "not synced"), nil
	})
	if err != nil {
		t.Fatal("the webhook never answered")
	}
}
