package operator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
)

// saToken makes a service account in chartNS and returns a token of it.
func saToken(t *testing.T, b *bed.Bed, name string) string {
	t.Helper()
	ctx := context.Background()
	_, err := b.Kube.CoreV1().ServiceAccounts(chartNS).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Kube.CoreV1().ServiceAccounts(chartNS).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return tokenOf(t, b, chartNS, name, 3600)
}

// getWithToken GETs url with the bearer token (none when ""); status and body.
func getWithToken(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestMetricsAuth: with the chart's metrics.secure, the metrics port speaks
// HTTPS with the chart's certificate and /metrics answers only a token
// whose user RBAC lets get /metrics (the chart's metrics-reader ClusterRole,
// bound to metrics.readers): no token and a made-up one get 401, another
// account's token 403, the reader's 200; the probes need no token; vmdrain,
// with the chart's service account, is never refused its reviews.
func TestMetricsAuth(t *testing.T) {
	b := bed.OpenT(t)
	chart := chartDir()

	// what the chart renders for it
	reader := `metrics.readers=[{"namespace":"` + chartNS + `","name":"scraper"}]`
	out := helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--set", "metrics.secure=true",
		"--set", "metrics.serviceMonitor.enabled=true", "--set-json", reader)
	for _, want := range []string{"- --metrics-tls\n            - --metrics-auth", "scheme: HTTPS",
		"scheme: https", "bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
		"serverName: vmdrain." + chartNS + ".svc", `resources: ["tokenreviews"]`, `resources: ["subjectaccessreviews"]`,
		"name: vmdrain-metrics-reader", `nonResourceURLs: ["/metrics"]`, "name: scraper"} {
		if !strings.Contains(out, want) {
			t.Errorf("the rendering with metrics.secure lacks %q", want)
		}
	}
	if plain := helm(t, b, "template", chartRelease, chart, "-n", chartNS); strings.Contains(plain, "tokenreviews") ||
		strings.Contains(plain, "--metrics-auth") || strings.Contains(plain, "metrics-reader") {
		t.Error("without metrics.secure the chart still renders the metrics guard or its RBAC")
	}

	// the chart installed with it, vmdrain as a host process with its account
	port, mport := freePort(t), freePort(t)
	secret, _ := chartInstall(t, b, fmt.Sprintf("https://127.0.0.1:%d/validate-eviction", port), "127.0.0.1",
		"--set", "metrics.secure=true", "--set-json", reader)
	scraperToken, strangerToken := saToken(t, b, "scraper"), saToken(t, b, "stranger")
	dir := t.TempDir()
	writeFiles(t, dir, 0o600, map[string][]byte{"tls.crt": secret.Data["tls.crt"], "tls.key": secret.Data["tls.key"],
		"token": []byte(chartToken(t, b))})
	metrics := fmt.Sprintf("127.0.0.1:%d", mport)
	p := startVmdrainAs(t, tokenKubeconfig(t, b, filepath.Join(dir, "token")), chartNS+"/"+chartConfig,
		"--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", filepath.Join(dir, "tls.key"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--metrics-listen", metrics,
		"--metrics-tls", "--metrics-auth", "--leader-elect=false")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(secret.Data["ca.crt"]) {
		t.Fatal("the chart's Secret holds no CA certificate")
	}
	c := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	base := "https://" + metrics
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz over HTTPS, without a token, never answered 200 (last error %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	cases := []struct {
		what, token string
		status      int
		body        string
	}{
		{"no token", "", 401, "needs a bearer token"},
		{"a made-up token", "not-a-token", 401, "token not accepted"},
		{"another account's token", strangerToken, 403, "system:serviceaccount:" + chartNS + ":stranger may get /metrics not"},
		{"the reader's token", scraperToken, 200, "vmdrain_webhook_request_duration_seconds"},
		{"the reader's token, from the cache", scraperToken, 200, "vmdrain_metrics_auth_total"},
	}
	for _, tc := range cases {
		status, body := getWithToken(t, c, base+"/metrics", tc.token)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d with %q", tc.what, status, firstLine(body), tc.status, tc.body)
		}
	}
	if status, _ := getWithToken(t, c, base+"/healthz", ""); status != 200 {
		t.Errorf("/healthz without a token: %d, want 200", status)
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + metrics + "/metrics"); err == nil {
		t.Error("plain HTTP on the metrics port got an HTTP answer; it should speak only TLS")
	}
	_, body := getWithToken(t, c, base+"/metrics", scraperToken)
	for _, want := range []string{`vmdrain_metrics_auth_total{result="unauthenticated"} 2`,
		`vmdrain_metrics_auth_total{result="forbidden"} 1`, `vmdrain_metrics_auth_total{result="allowed"} 3`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "vmdrain_api_requests_total{") && strings.Contains(l, `code="403"`) {
			t.Errorf("vmdrain was refused API requests (its reviews?): %s", l)
		}
	}
	waitLog(t, p.log, 10*time.Second, "metrics request refused", "result=forbidden")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
