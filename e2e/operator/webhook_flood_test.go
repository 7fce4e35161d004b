package operator

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"vmdrain.io/e2e/bed"
)

// TestWebhookFloodKeepsProbesAnswering: with 300 TCP connections to the
// webhook port that never start TLS and 260 that finish the handshake and
// send nothing, /healthz, /readyz and /metrics on the plain listener and a
// valid AdmissionReview on the webhook port each answer within 500 ms,
// checked again and again for longer than the first-byte deadline.
func TestWebhookFloodKeepsProbesAnswering(t *testing.T) {
	b := bed.OpenT(t)
	setConfig(t, b, "LiveMigration", "")
	certFile, keyFile, _ := webhookCert(t)
	port, mport := freePort(t), freePort(t)
	addr, maddr := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", mport)
	startVmdrain(t, b, "--tls-cert", certFile, "--tls-key", keyFile, "--listen", addr, "--metrics-listen", maddr)

	review := notLauncherReview
	client := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	check := func() error {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := client.Get("http://" + maddr + path)
			if err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: status %d", path, resp.StatusCode)
			}
		}
		resp, err := client.Post("https://"+addr+"/validate-eviction", "application/json", bytes.NewReader(review))
		if err != nil {
			return fmt.Errorf("review: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"allowed":true`) {
			return fmt.Errorf("review: status %d: %s", resp.StatusCode, body)
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for check() != nil {
		if time.Now().After(deadline) {
			t.Fatal("vmdrain never answered")
		}
		time.Sleep(200 * time.Millisecond)
	}

	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			held = append(held, c)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 260; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
				&tls.Config{InsecureSkipVerify: true})
			if err == nil {
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("held %d connections", len(held))
	fails, checks := 0, 0
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); checks++ {
		t0 := time.Now()
		if err := check(); err != nil {
			fails++
			t.Errorf("after %d checks: %v (%v)", checks, err, time.Since(t0))
			if fails > 5 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d checks of /healthz, /readyz, /metrics and a review during the flood, %d failed", checks, fails)
}
