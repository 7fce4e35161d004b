// Package smoke checks the test bed itself: the real binaries answer with
// their built versions, kwok runs nodes and pods, and the KubeVirt simulator
// migrates VMs the way vmdrain expects. Run it with `e2e/bed.sh smoke`.
package smoke

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

var b *bed.Bed

// nodes are the three kwok nodes the tests share.
var nodes = []string{"smoke-node-1", "smoke-node-2", "smoke-node-3"}

func TestMain(m *testing.M) {
	if os.Getenv("KUBECONFIG") == "" && os.Getenv("VMDRAIN_BED_DIR") == "" {
		fmt.Println("smoke: no bed (KUBECONFIG unset); start one with e2e/bed.sh up, or run e2e/bed.sh smoke")
		os.Exit(0)
	}
	var err error
	if b, err = bed.Open(); err != nil {
		fmt.Println("smoke:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestVersions(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	kube, helm := b.Env["VMDRAIN_KUBE_VERSION"], b.Env["VMDRAIN_HELM_VERSION"]
	if kube == "" || helm == "" {
		t.Fatalf("bed env lacks versions: %v", b.Env)
	}
	out, err := b.Kubectl(ctx, "version")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl version:\n%s", out)
	for _, want := range []string{"Client Version: " + kube, "Server Version: " + kube} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl version does not say %q", want)
		}
	}
	sv, err := b.Kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if sv.GitVersion != kube || sv.Minor == "" || sv.GitTreeState != "clean" {
		t.Errorf("/version = %+v, want gitVersion %s", sv, kube)
	}
	out, err = b.Run(ctx, "helm", "version")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm version: %s", out)
	if !strings.Contains(out, `Version:"`+helm+`"`) {
		t.Errorf("helm version does not say %s", helm)
	}
}

// TestReachableFromContainer runs the bed's (static) kubectl in a container
// made from nothing but that binary, against the Docker-side kubeconfig: the
// API server must answer on the bridge gateway with a certificate valid there.
func TestReachableFromContainer(t *testing.T) {
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no usable docker")
	}
	kubeconfig := b.Env["VMDRAIN_KUBECONFIG_DOCKER"]
	kubectl, err := filepath.EvalSymlinks(b.Tool("kubectl"))
	if err != nil {
		t.Fatal(err)
	}
	image := fmt.Sprintf("vmdrain-bed-check:%d", os.Getpid())
	importCmd := exec.Command("tar", "-c", "-C", filepath.Dir(kubectl), filepath.Base(kubectl))
	docker := exec.Command("docker", "import", "-", image)
	docker.Stdin, _ = importCmd.StdoutPipe()
	if err := importCmd.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := docker.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	importCmd.Wait()
	defer exec.Command("docker", "rmi", "-f", image).Run()
	out, err := exec.Command("docker", "run", "--rm", "-v", kubeconfig+":/kubeconfig:ro", image,
		"/kubectl", "--kubeconfig", "/kubeconfig", "get", "--raw", "/readyz").CombinedOutput()
	t.Logf("from a container via %s: %s", b.Env["VMDRAIN_APISERVER_DOCKER"], out)
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("API server not reachable from a container: %v", err)
	}
}

// ensureNodes creates the shared kwok nodes (once) and waits until Ready.
func ensureNodes(t *testing.T) {
	t.Helper()
	ctx := ctxT(t, 2*time.Minute)
	for _, n := range nodes {
		if err := b.CreateNode(ctx, n, nil); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if err := b.WaitNodesReady(ctx, time.Minute, nodes...); err != nil {
		t.Fatalf("kwok nodes not Ready: %v", err)
	}
}

func TestNodesReady(t *testing.T) {
	start := time.Now()
	ensureNodes(t)
	out, _ := b.Kubectl(ctxT(t, time.Minute), "get", "nodes", "-o", "wide")
	t.Logf("3 nodes Ready after %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	if strings.Count(out, " Ready ") < 3 {
		t.Errorf("kubectl get nodes does not show 3 Ready nodes")
	}
}

func condOf(vmi *kubevirt.VMI) kubevirt.Condition {
	for _, c := range vmi.Status.Conditions {
		if c.Type == kubevirt.ConditionMigratable {
			return c
		}
	}
	return kubevirt.Condition{}
}

func TestVMsAndMigration(t *testing.T) {
	ensureNodes(t)
	ctx := ctxT(t, 3*time.Minute)
	ns := b.Namespace(t)
	vms := []struct {
		vm     sim.VM
		status string
		reason string
		method string
	}{
		{sim.VM{Name: "vm-a", Node: nodes[0], Memory: "2Gi", EvictionStrategy: "LiveMigrate"}, "True", "", kubevirt.MethodLive},
		{sim.VM{Name: "vm-b", Node: nodes[0], EvictionStrategy: "LiveMigrate", Disk: sim.DiskRWO}, "False", kubevirt.ReasonDisksNotLM, kubevirt.MethodLive},
		{sim.VM{Name: "vm-c", Node: nodes[1], EvictionStrategy: "LiveMigrateIfPossible", Bridge: true}, "False", kubevirt.ReasonInterfaceNotLM, kubevirt.MethodLive},
		{sim.VM{Name: "vm-d", Node: nodes[2], Disk: sim.DiskContainer}, "True", "", kubevirt.MethodBlock},
	}
	for _, v := range vms {
		v.vm.Namespace = ns
		vmi, pod, err := b.CreateVM(ctx, v.vm)
		if err != nil {
			t.Fatal(err)
		}
		c := condOf(vmi)
		if c.Status != v.status || c.Reason != v.reason || vmi.Status.MigrationMethod != v.method {
			t.Errorf("%s: LiveMigratable=%s/%s (%s) method %s, want %s/%s method %s",
				vmi.Name, c.Status, c.Reason, c.Message, vmi.Status.MigrationMethod, v.status, v.reason, v.method)
		}
		if vmi.Status.Phase != "Running" || vmi.Status.NodeName != v.vm.Node || vmi.Labels[kubevirt.NodeNameLabel] != v.vm.Node {
			t.Errorf("%s: phase %q node %q label %q", vmi.Name, vmi.Status.Phase, vmi.Status.NodeName, vmi.Labels[kubevirt.NodeNameLabel])
		}
		if !strings.HasPrefix(pod.Name, "virt-launcher-"+vmi.Name+"-") || pod.Spec.NodeName != v.vm.Node ||
			pod.Labels[kubevirt.AppLabel] != kubevirt.LauncherValue || pod.Annotations[kubevirt.DomainAnnotation] != vmi.Name {
			t.Errorf("%s: launcher pod %s on %s labels %v", vmi.Name, pod.Name, pod.Spec.NodeName, pod.Labels)
		}
	}
	out, _ := b.Kubectl(ctx, "get", "vmi,pods", "-n", ns, "-o", "wide")
	t.Logf("VMs:\n%s", out)
	if t.Failed() {
		t.FailNow()
	}

	// A hand-made migration moves vm-a off node 1.
	before, _ := b.LauncherPods(ctx, ns, "vm-a")
	m, err := b.CreateMigration(ctx, ns, "move-vm-a", "vm-a")
	if err != nil {
		t.Fatal(err)
	}
	m = waitPhase(t, ns, m.Name, kubevirt.PhaseSucceeded, time.Minute)
	var phases []string
	for _, p := range m.Status.PhaseTransitionTimestamps {
		phases = append(phases, p.Phase)
	}
	want := []string{"Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Succeeded"}
	if !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	vmi, err := b.VMI(ctx, ns, "vm-a")
	if err != nil {
		t.Fatal(err)
	}
	st := vmi.Status.MigrationState
	if st == nil || !st.Completed || st.Failed || st.SourceNode != nodes[0] || st.TargetNode == nodes[0] || st.TargetNode == "" ||
		st.MigrationUID != string(m.UID) || st.StartTimestamp == nil || st.EndTimestamp == nil {
		t.Fatalf("migrationState %+v", st)
	}
	if vmi.Status.NodeName != st.TargetNode || vmi.Labels[kubevirt.NodeNameLabel] != st.TargetNode {
		t.Errorf("VMI on %q (label %q), want %s", vmi.Status.NodeName, vmi.Labels[kubevirt.NodeNameLabel], st.TargetNode)
	}
	err = bed.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := b.LauncherPods(ctx, ns, "vm-a")
		return err == nil && len(pods) == 1 && pods[0].Name != before[0].Name, err
	})
	pods, _ := b.LauncherPods(ctx, ns, "vm-a")
	if err != nil || len(pods) != 1 {
		t.Fatalf("launcher pods after migration: %d (%v)", len(pods), err)
	}
	p := pods[0]
	if p.Spec.NodeName != st.TargetNode || p.Name != st.TargetPod || p.Labels[kubevirt.MigrationJobLabel] != string(m.UID) || p.Status.Phase != corev1.PodRunning {
		t.Errorf("target pod %s on %s phase %s labels %v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Labels)
	}
	out, _ = b.Kubectl(ctx, "get", "vmim", "-n", ns)
	t.Logf("vm-a moved %s → %s in %s:\n%s", st.SourceNode, st.TargetNode, st.EndTimestamp.Sub(st.StartTimestamp.Time), out)

	// A VMI that is not live-migratable: its migration fails (real
	// KubeVirt: virt-api refuses to create it).
	_, err = b.CreateMigration(ctx, ns, "move-vm-b", "vm-b")
	if b.Real() {
		if err == nil || !strings.Contains(err.Error(), "not live migratable") && !strings.Contains(err.Error(), "DisksNotLiveMigratable") {
			t.Errorf("migration of a VMI that is not live-migratable: %v, want virt-api to refuse it", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "move-vm-b", kubevirt.PhaseFailed, 30*time.Second)
}

func TestUnschedulableTargetStaysScheduling(t *testing.T) {
	ensureNodes(t)
	ctx := ctxT(t, 2*time.Minute)
	ns := b.Namespace(t)
	if _, _, err := b.CreateVM(ctx, sim.VM{Namespace: ns, Name: "stuck", Node: nodes[1], EvictionStrategy: "LiveMigrate",
		Annotations: map[string]string{sim.TargetUnschedulableAnnotation: "true"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateMigration(ctx, ns, "stuck-mig", "stuck"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "stuck-mig", kubevirt.PhaseScheduling, 30*time.Second)
	time.Sleep(3 * time.Second) // many simulated minutes at the bed's time scale
	m, err := b.Migration(ctx, ns, "stuck-mig")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status.Phase != kubevirt.PhaseScheduling {
		t.Fatalf("phase %s, want it to stay Scheduling", m.Status.Phase)
	}
	pods, _ := b.LauncherPods(ctx, ns, "stuck")
	if len(pods) != 2 {
		t.Fatalf("want source + unscheduled target pod, got %d pods", len(pods))
	}
	if err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).Delete(ctx, "stuck-mig", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = bed.Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := b.Migration(ctx, ns, "stuck-mig")
		pods, _ := b.LauncherPods(ctx, ns, "stuck")
		return apierrors.IsNotFound(err) && len(pods) == 1, nil
	})
	if err != nil {
		t.Fatalf("migration or target pod not gone after delete: %v", err)
	}
	vmi, _ := b.VMI(ctx, ns, "stuck")
	if vmi.Status.NodeName != nodes[1] {
		t.Errorf("VMI moved to %s", vmi.Status.NodeName)
	}
}

func TestDrainOrdinaryPod(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	node := "smoke-drain"
	if err := b.CreateNode(ctx, node, nil); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := b.WaitNodesReady(ctx, time.Minute, node); err != nil {
		t.Fatal(err)
	}
	ns := b.Namespace(t)
	grace := int64(30)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"},
		Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	if _, err := b.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sim.WaitPodRunning(ctx, b.Kube, ns, "plain", time.Minute); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := b.Kubectl(ctx, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=60s")
	t.Logf("kubectl drain (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("drain took %s: the 30 s grace period was waited out instead of kwok finishing the deletion", time.Since(start))
	}
	if _, err := b.Kube.CoreV1().Pods(ns).Get(ctx, "plain", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod still there after drain: %v", err)
	}
	n, _ := b.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if !n.Spec.Unschedulable {
		t.Errorf("node not cordoned")
	}
}

// waitPhase waits for a migration to reach phase and returns it.
func waitPhase(t *testing.T, ns, name, phase string, timeout time.Duration) *kubevirt.Migration {
	t.Helper()
	var m *kubevirt.Migration
	err := bed.Eventually(context.Background(), timeout, func(ctx context.Context) (bool, error) {
		got, err := b.Migration(ctx, ns, name)
		if err != nil {
			return false, nil
		}
		m = got
		if m.Final() && m.Status.Phase != phase {
			return false, fmt.Errorf("migration ended %s", m.Status.Phase)
		}
		return m.Status.Phase == phase, nil
	})
	if err != nil {
		got := "?"
		if m != nil {
			got = m.Status.Phase
		}
		t.Fatalf("migration %s/%s: want phase %s, at %s: %v", ns, name, phase, got, err)
	}
	return m
}
