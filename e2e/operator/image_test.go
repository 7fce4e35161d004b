package operator

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"vmdrain.io/e2e/bed"
)

// saDir is where Kubernetes mounts a pod's service account credentials.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// dockerNetwork creates a bridge network of its own for the test and
// returns its name and an address in it for one container.
func dockerNetwork(t *testing.T) (name, ip string) {
	t.Helper()
	name = uniq("vmdrain-e2e")
	var last []byte
	for try := 0; try < 8; try++ {
		subnet := 1 + rand.Intn(250)
		out, err := exec.Command("docker", "network", "create", "--driver", "bridge",
			"--subnet", fmt.Sprintf("10.213.%d.0/24", subnet), name).CombinedOutput()
		if err == nil {
			t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", name).Run() })
			return name, fmt.Sprintf("10.213.%d.10", subnet)
		}
		last = out // most likely the subnet overlaps another network
	}
	t.Fatalf("docker network create: %s", last)
	return "", ""
}

// chartDeployment returns the Deployment of the installed release.
func chartDeployment(t *testing.T, b *bed.Bed) *appsv1.Deployment {
	t.Helper()
	manifest := helm(t, b, "get", "manifest", chartRelease, "-n", chartNS)
	for _, doc := range strings.Split(manifest, "\n---") {
		if !strings.Contains(doc, "\nkind: Deployment") {
			continue
		}
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("the chart's Deployment: %v", err)
		}
		return &d
	}
	t.Fatal("the release has no Deployment")
	return nil
}

// containerPort returns the container's port of the given name.
func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

// TestChartImageInCluster: the image `make image` built, started by docker
// the way a kubelet starts the chart's pod: the Deployment's own arguments
// and security settings, the chart's service account token and the
// cluster's CA at the in-cluster path, KUBERNETES_SERVICE_HOST and _PORT,
// the chart's serving pair where the Deployment mounts its Secret. The API
// server calls the webhook at the container's address. A taint drain and a
// kubectl drain pass with no refused request; SIGTERM ends it with exit 0.
func TestChartImageInCluster(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skipf("no usable docker engine (docker info: %v)", err)
	}
	image := os.Getenv("VMDRAIN_IMAGE")
	if image == "" {
		t.Fatal("VMDRAIN_IMAGE is not set: `make image` builds the image and prints its name; `make e2e` does both")
	}
	docker(t, "image", "inspect", "--format", "{{.Id}}", image)
	b := bed.OpenT(t)
	api, err := neturl.Parse(b.Env["VMDRAIN_APISERVER_DOCKER"])
	if err != nil || api.Hostname() == "" {
		t.Fatalf("the bed's API server address for containers %q: %v", b.Env["VMDRAIN_APISERVER_DOCKER"], err)
	}

	network, ip := dockerNetwork(t)
	secret, _ := chartInstall(t, b, fmt.Sprintf("https://%s/validate-eviction", net.JoinHostPort(ip, "8443")), ip)
	d := chartDeployment(t, b)
	pod := d.Spec.Template.Spec
	c := &pod.Containers[0]
	if p := containerPort(t, c, "webhook"); p != 8443 {
		t.Fatalf("the chart's webhook port is %d; the test expects the default 8443", p)
	}
	metrics := net.JoinHostPort(ip, fmt.Sprint(containerPort(t, c, "metrics")))
	var tlsMount string
	for _, m := range c.VolumeMounts {
		if m.Name == "tls" {
			tlsMount = m.MountPath
		}
	}
	if tlsMount == "" {
		t.Fatal("the chart's Deployment mounts no tls volume")
	}

	// What a kubelet would mount, readable by the container's user.
	dir := t.TempDir()
	sa, tlsDir := filepath.Join(dir, "sa"), filepath.Join(dir, "tls")
	for _, d := range []string{dir, sa, tlsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, sa, 0o644, map[string][]byte{"token": []byte(chartToken(t, b)),
		"ca.crt": b.Config.TLSClientConfig.CAData, "namespace": []byte(chartNS)})
	writeFiles(t, tlsDir, 0o644, map[string][]byte{"tls.crt": secret.Data["tls.crt"], "tls.key": secret.Data["tls.key"]})
	if len(b.Config.TLSClientConfig.CAData) == 0 {
		t.Fatal("the bed's kubeconfig carries no CA data")
	}

	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || pod.SecurityContext == nil || pod.SecurityContext.RunAsGroup == nil {
		t.Fatal("the chart's Deployment sets no user and group")
	}
	name := uniq("vmdrain")
	args := []string{"run", "-d", "--name", name, "--network", network, "--ip", ip,
		"--user", fmt.Sprintf("%d:%d", *sc.RunAsUser, *pod.SecurityContext.RunAsGroup),
		"-e", "KUBERNETES_SERVICE_HOST=" + api.Hostname(), "-e", "KUBERNETES_SERVICE_PORT=" + api.Port(),
		"-v", sa + ":" + saDir + ":ro", "-v", tlsDir + ":" + tlsMount + ":ro"}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		args = append(args, "--read-only")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	if sc.Capabilities != nil {
		for _, cap := range sc.Capabilities.Drop {
			args = append(args, "--cap-drop", string(cap))
		}
	}
	args = append(args, image)
	args = append(args, c.Args...)
	docker(t, args...)
	logPath := filepath.Join(t.TempDir(), "vmdrain.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	follow := exec.Command("docker", "logs", "-f", name)
	follow.Stdout, follow.Stderr = logFile, logFile
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", name).Run()
		_ = follow.Wait()
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 300 {
				lines = lines[len(lines)-300:]
			}
			t.Logf("container log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	t.Logf("docker %s", strings.Join(args, " "))
	waitReady(t, metrics, 60*time.Second)
	if got := docker(t, "exec", name, "id", "-u"); got != fmt.Sprint(*sc.RunAsUser) {
		t.Errorf("the container runs as uid %s, want %d", got, *sc.RunAsUser)
	}

	chartDrains(t, b, "img", metrics)
	checkNotRefused(t, logPath, metrics)

	// SIGTERM, as a kubelet stops the pod: vmdrain ends cleanly.
	grace := int64(30)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	docker(t, "stop", "-t", fmt.Sprint(grace), name)
	if code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("vmdrain's container exited %s after SIGTERM, want 0", code)
	}
	chartUninstall(t, b)
}
