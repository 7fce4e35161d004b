package operator

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
)

// TestWebhookClientCertificate: with --client-ca the webhook answers only
// clients that show a certificate the CA signed. The API server shows the
// bed's webhook-client certificate (the bed's admission.yaml) and its
// evictions go through vmdrain; a client with no certificate, or with one
// from another CA, is refused at the handshake, counted and logged.
func TestWebhookClientCertificate(t *testing.T) {
	b := bed.OpenT(t)
	addr := b.Env["VMDRAIN_WEBHOOK_AUTH_ADDR"]
	if addr == "" {
		t.Fatal("VMDRAIN_WEBHOOK_AUTH_ADDR is not set: this bed was started without admission.yaml " +
			"(e2e/bed.sh down, then up)")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("wca"), 1)
	certs := filepath.Join(b.Dir, "certs")
	certFile, keyFile, ca := webhookCert(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startVmdrain(t, b, "--tls-cert", certFile, "--tls-key", keyFile,
		"--client-ca", filepath.Join(certs, "ca.crt"), "--listen", "127.0.0.1:"+port, "--metrics-listen", metrics)
	trusted := clientCert(t, certs, "webhook-client")
	waitAnsweringAs(t, "127.0.0.1:"+port, &tls.Config{InsecureSkipVerify: true, Certificates: trusted})

	// the API server's eviction reaches vmdrain over the verified connection
	registerWebhook(t, b, ns, "https://"+addr+"/validate-eviction", ca)
	ordinaryPod(t, b, ns, "virt-launcher-plain", n[0])
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "virt-launcher-plain", Namespace: ns}}
	if err := b.Kube.CoreV1().Pods(ns).EvictV1(ctx, ev); err != nil {
		t.Fatalf("eviction through the API server (it shows the webhook-client certificate): %v", err)
	}
	line := waitLog(t, p.log, 30*time.Second, "eviction", "virt-launcher-plain", "not_launcher")
	t.Logf("vmdrain answered the API server: %s", line)

	// the same review from clients without a certificate the CA signed,
	// and (the control) with the API server's
	clients := []struct {
		name    string
		cert    []tls.Certificate
		refused bool
	}{
		{"no certificate", nil, true},
		{"the front-proxy-client certificate (another CA)", clientCert(t, certs, "front-proxy-client"), true},
		{"the webhook-client certificate", trusted, false},
	}
	for _, c := range clients {
		cfg := &tls.Config{InsecureSkipVerify: true}
		// shown whatever the server's list of acceptable CAs says (Go's
		// client would keep back a certificate from a CA not on it)
		cert := c.cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if len(cert) == 0 {
				return &tls.Certificate{}, nil
			}
			return &cert[0], nil
		}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: cfg}}
		resp, err := client.Post("https://127.0.0.1:"+port+"/validate-eviction", "application/json",
			bytes.NewReader(notLauncherReview))
		if err == nil {
			resp.Body.Close()
		}
		t.Logf("%s: refused %v (%v)", c.name, err != nil, err)
		if (err != nil) != c.refused {
			t.Errorf("%s: refused %v, want %v", c.name, err != nil, c.refused)
		}
	}
	for _, reason := range []string{"no_certificate", "bad_certificate"} {
		series := fmt.Sprintf(`vmdrain_webhook_client_cert_refused_total{reason="%s"}`, reason)
		if v := metricValue(t, metrics, series); v < 1 {
			t.Errorf("%s = %v, want at least 1", series, v)
		}
	}
	waitLog(t, p.log, 10*time.Second, "client certificate refused", "no_certificate")
	waitLog(t, p.log, 10*time.Second, "client certificate refused", "bad_certificate")
}

// clientCert loads the bed's certificate NAME (certs/NAME.crt and .key).
func clientCert(t *testing.T, certs, name string) []tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(certs, name+".crt"), filepath.Join(certs, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return []tls.Certificate{c}
}
