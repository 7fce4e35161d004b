// webhook.go — vmdrain's eviction webhook against the peer's (informerpeer
// --webhook-listen), each a process of its own with its caches synced over
// the loaded cluster, under the same load: clients concurrent requests on
// kept-alive HTTP/1.1 TLS connections, dry-run AdmissionReviews for the
// launcher pods of running VMIs that live-migrate (both answer 429 and write
// nothing). Per run: p50 and p99 latency, throughput, and the server's CPU
// per request (from /proc).
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"vmdrain.io/e2e/bed"
)

type webhookSample struct{ p50, p99, rps, cpuPerReqUs float64 }

// writeCert writes a self-signed pair for 127.0.0.1 into dir.
func writeCert(dir string) (certPath, keyPath string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scalebench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", nil, err
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certPath, keyPath, pool, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

const reviewFmt = `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"%08x-9b7d-4c52-8e1f-2d4a6b8c0e13",` +
	`"kind":{"group":"policy","version":"v1","kind":"Eviction"},"resource":{"group":"","version":"v1","resource":"pods"},` +
	`"subResource":"eviction","requestKind":{"group":"policy","version":"v1","kind":"Eviction"},` +
	`"requestResource":{"group":"","version":"v1","resource":"pods"},"requestSubResource":"eviction","name":%q,"namespace":%q,` +
	`"operation":"CREATE","userInfo":{"username":"kubernetes-admin","groups":["system:masters","system:authenticated"]},` +
	`"object":{"kind":"Eviction","apiVersion":"policy/v1","metadata":{"name":%q,"namespace":%q,"creationTimestamp":null},` +
	`"deleteOptions":{}},"oldObject":null,"dryRun":true,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`

// launcherPod is the name of VMI i's first launcher pod (load.go).
func launcherPod(i int) string { return "virt-launcher-" + vmName(i) + fmt.Sprintf("-%05d", i) }

// loadWebhook sends requests with clients in flight and returns the
// latencies (ms) and the wall time.
func loadWebhook(url string, pool *x509.CertPool, clients, requests, pods int) ([]float64, time.Duration, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1, as for both
		MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	send := func(i int) (float64, error) {
		pod := launcherPod(i % pods)
		body := fmt.Sprintf(reviewFmt, i, pod, benchNS, pod, benchNS)
		t := time.Now()
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ms := time.Since(t).Seconds() * 1000
		if err != nil || resp.StatusCode != 200 || !bytes.Contains(out, []byte(`"allowed":false`)) {
			return 0, fmt.Errorf("HTTP %d: %.300s (%v)", resp.StatusCode, out, err)
		}
		return ms, nil
	}
	for i := 0; i < clients; i++ { // the connections, opened apart
		if _, err := send(i); err != nil {
			return nil, 0, err
		}
	}
	lat := make([]float64, requests)
	var next int
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= requests {
					return
				}
				ms, err := send(i)
				if err != nil {
					mu.Lock()
					first = err
					next = requests
					mu.Unlock()
					return
				}
				lat[i] = ms
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), first
}

// measureWebhook starts one server (argv, addr), loads it, and stops it.
func measureWebhook(argv []string, addr string, pool *x509.CertPool, clients, requests, pods int) (webhookSample, error) {
	var s webhookSample
	logf, err := os.CreateTemp("", "scalebench-webhook-*.log")
	if err != nil {
		return s, err
	}
	defer os.Remove(logf.Name())
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return s, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitForLine(logf.Name(), "caches synced", 5*time.Minute); err != nil {
		return s, err
	}
	time.Sleep(2 * time.Second) // the first reconciles
	_, cpu0, err := procFigures(cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	lat, wall, err := loadWebhook("https://"+addr+"/validate-eviction", pool, clients, requests, pods)
	if err != nil {
		data, _ := os.ReadFile(logf.Name())
		return s, fmt.Errorf("%w\nserver log tail:\n%s", err, tail(string(data), 10))
	}
	_, cpu1, err := procFigures(cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	slices.Sort(lat)
	s.p50, s.p99 = percentile(lat, 0.5), percentile(lat, 0.99)
	s.rps = float64(requests) / wall.Seconds()
	s.cpuPerReqUs = (cpu1 - cpu0) / float64(requests+clients) * 1e6
	return s, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// benchWebhook runs both servers reps times, interleaved, and prints the
// medians and ratios.
func benchWebhook(b *bed.Bed, vmdrain, peer string, reps, clients, requests, pods int) error {
	dir, err := os.MkdirTemp("", "scalebench-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certPath, keyPath, pool, err := writeCert(dir)
	if err != nil {
		return err
	}
	servers := []struct {
		name string
		argv func(addr string, r int) []string
	}{
		{"vmdrain", func(addr string, r int) []string {
			return []string{vmdrain, "--kubeconfig", b.Kubeconfig, "run", "--config", configNS + "/" + configName,
				"--tls-cert", certPath, "--tls-key", keyPath, "--listen", addr, "--metrics-listen", "127.0.0.1:0",
				"--leader-elect-lease", fmt.Sprintf("%s/scale-webhook-%d", configNS, r)}
		}},
		{"net/http + client-go", func(addr string, _ int) []string {
			return []string{peer, "--kubeconfig", b.Kubeconfig, "--config", configNS + "/" + configName,
				"--webhook-listen", addr, "--tls-cert", certPath, "--tls-key", keyPath}
		}},
	}
	results := make([][]webhookSample, len(servers))
	for r := 0; r < reps; r++ {
		for k := range servers {
			v := (r + k) % len(servers)
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			s, err := measureWebhook(servers[v].argv(addr, r), addr, pool, clients, requests, pods)
			if err != nil {
				return fmt.Errorf("webhook %s, repetition %d: %w", servers[v].name, r+1, err)
			}
			fmt.Printf("  run %d %-22s p50 %6.3f ms  p99 %6.3f ms  %7.0f requests/s  server CPU %5.1f µs/request\n",
				r+1, servers[v].name, s.p50, s.p99, s.rps, s.cpuPerReqUs)
			results[v] = append(results[v], s)
		}
	}
	rows := []struct {
		name   string
		get    func(webhookSample) float64
		target string
	}{
		{"latency p50 (ms)", func(s webhookSample) float64 { return s.p50 }, "-"},
		{"latency p99 (ms)", func(s webhookSample) float64 { return s.p99 }, "1.00"},
		{"throughput (requests/s)", func(s webhookSample) float64 { return s.rps }, "-"},
		{"server CPU per request (µs)", func(s webhookSample) float64 { return s.cpuPerReqUs }, "-"},
	}
	fmt.Printf("\nwebhook: %d dry-run reviews, %d in flight, medians of %d runs; ratio = vmdrain / peer\n", requests, clients, reps)
	fmt.Printf("%-30s %10s %14s %8s %8s\n", "", "vmdrain", "net/http peer", "ratio", "target")
	for _, row := range rows {
		var m [2]float64
		for v := range servers {
			var xs []float64
			for _, s := range results[v] {
				xs = append(xs, row.get(s))
			}
			m[v] = median(xs)
		}
		target := row.target
		if target != "-" {
			verdict := "met"
			if ratio(m[0], m[1]) > 1.0 {
				verdict = "missed"
			}
			target += " " + verdict
		}
		fmt.Printf("%-30s %10.3f %14.3f %8s %8s\n", row.name, m[0], m[1], fmtRatio(m[0], m[1]), target)
	}
	return nil
}
