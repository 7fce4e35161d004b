package operator

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// TestForgedReviewMovesOnlyFromCordonedNodes: AdmissionReviews posted
// straight to the webhook port, as anyone who reaches it could, naming the
// launchers of two VMs. On the node nobody cordoned nothing changes (no
// mark, no migration, no drain state) however long the request is kept; on
// the cordoned node the VM is marked and migrated, which is the most a
// forged review can do.
func TestForgedReviewMovesOnlyFromCordonedNodes(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("knk"), 3)
	// External VMIs are vmdrain's to move in either mode: beside the real
	// KubeVirt a LiveMigrate VMI moves only once virt-api saw the eviction,
	// which a review posted straight to vmdrain never reaches
	setConfig(t, b, "LiveMigration", "evacuateExternal: true\n")
	vm(t, b, sim.VM{Namespace: ns, Name: "open", Node: n[0], Memory: "8Gi", EvictionStrategy: "External"})
	vm(t, b, sim.VM{Namespace: ns, Name: "shut", Node: n[1], Memory: "8Gi", EvictionStrategy: "External"})
	certFile, keyFile, _ := webhookCert(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startVmdrain(t, b, "--tls-cert", certFile, "--tls-key", keyFile, "--listen", addr)
	waitAnswering(t, addr)
	kubectl(t, b, "cordon", n[1])

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	forge := func(node string) string {
		pods := launchers(t, b, ns, node)
		if len(pods) != 1 {
			t.Fatalf("launchers on %s: %v, want one", node, pods)
		}
		name := strings.TrimPrefix(pods[0], ns+"/")
		resp, err := client.Post("https://"+addr+"/validate-eviction", "application/json",
			bytes.NewReader(evictionReview("forged-"+node, ns, name)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("forged review of %s on %s: %d %s", name, node, resp.StatusCode, body)
		return string(body)
	}
	// the answers say what happens: a wait for the cordon, a queued migration
	if body := forge(n[0]); !strings.Contains(body, "waits for node "+n[0]+" to be cordoned") {
		t.Errorf("the review on the uncordoned node was not told it waits for a cordon: %s", body)
	}
	// (the cordon may reach vmdrain's cache a moment after kubectl returned)
	body := forge(n[1])
	for end := time.Now().Add(5 * time.Second); !strings.Contains(body, "migration queued") && time.Now().Before(end); {
		time.Sleep(250 * time.Millisecond)
		body = forge(n[1])
	}
	if !strings.Contains(body, "migration queued") {
		t.Errorf("the review on the cordoned node was not told its migration is queued: %s", body)
	}

	err := bed.Eventually(context.Background(), 90*time.Second, func(ctx context.Context) (bool, error) {
		return vmiNode(t, b, ns, "shut") != n[1], nil
	})
	if err != nil {
		t.Errorf("the VM of the cordoned node was not migrated after the forged review (the control: the review did reach vmdrain)")
	}
	// the request is kept for its node's cordon for a while: look again
	// after the forged review of the open node has had time to act
	time.Sleep(5 * time.Second)
	for _, m := range migrations(t, b, ns) {
		if m.Spec.VMIName == "open" {
			t.Errorf("migration %s of the VM on the node nobody cordoned", m.Name)
		}
	}
	vmi, err := b.VMI(context.Background(), ns, "open")
	if err != nil {
		t.Fatal(err)
	}
	if mark, ok := vmi.Annotations["vmdrain.io/evacuate-from"]; ok {
		t.Errorf("the VMI on the open node was marked evacuate-from=%s", mark)
	}
	node := getNode(t, b, n[0])
	if node.Spec.Unschedulable {
		t.Error("the open node was cordoned")
	}
	for k, v := range node.Annotations {
		if strings.HasPrefix(k, "vmdrain.io/") {
			t.Errorf("the open node carries %s=%s", k, v)
		}
	}
}
