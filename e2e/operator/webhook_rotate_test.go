package operator

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vmdrain.io/e2e/bed"
)

// servedSerial returns the serial number of the certificate the webhook
// presents now.
func servedSerial(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func fileSerial(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestWebhookKeepsAnsweringWhileTheCertificateIsReplaced: requests sent
// without a pause while the certificate and key files are replaced all get
// an answer, and new connections then see the new certificate.
func TestWebhookKeepsAnsweringWhileTheCertificateIsReplaced(t *testing.T) {
	b := bed.OpenT(t)
	setConfig(t, b, "LiveMigration", "")
	certA, keyA, _ := webhookCert(t)
	certB, keyB, _ := webhookCert(t)
	port, mport := freePort(t), freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startVmdrain(t, b, "--tls-cert", certA, "--tls-key", keyA, "--listen", addr,
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport))

	review := notLauncherReview
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	post := func() error {
		resp, err := client.Post("https://"+addr+"/validate-eviction", "application/json", bytes.NewReader(review))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 503 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// wait until it answers at all
	if err := bed.Eventually(t.Context(), 30*time.Second, func(context.Context) (bool, error) { return post() == nil, nil }); err != nil {
		t.Fatal("the webhook never answered")
	}
	before := servedSerial(t, addr)
	if before != fileSerial(t, certA) {
		t.Fatalf("served serial %s is not the first certificate's", before)
	}

	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if err := post(); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	time.Sleep(time.Second)
	// replace the pair the way a Secret volume does: new files moved into place
	for _, f := range [][2]string{{certB, certA}, {keyB, keyA}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1]+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f[1]+".new", f[1]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for servedSerial(t, addr) == before && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	after := servedSerial(t, addr)
	if after != fileSerial(t, certB) {
		t.Errorf("served serial %s after the replacement, want the new certificate's %s", after, fileSerial(t, certB))
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during the replacement; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	t.Logf("%d requests answered while the certificate was replaced", sent.Load())
}

// notLauncherReview is an AdmissionReview of an eviction of a pod that is no
// virt-launcher: the webhook allows it without a lookup.
var notLauncherReview = []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{` +
	`"uid":"u-1","kind":{"group":"policy","version":"v1","kind":"Eviction"},` +
	`"resource":{"group":"","version":"v1","resource":"pods"},"subResource":"eviction",` +
	`"name":"not-a-launcher","namespace":"default","operation":"CREATE",` +
	`"userInfo":{"username":"e2e"},"object":{"apiVersion":"policy/v1","kind":"Eviction",` +
	`"metadata":{"name":"not-a-launcher","namespace":"default"}}}}`)
