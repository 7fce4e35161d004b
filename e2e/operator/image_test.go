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

// chartPods starts the image `make image` built as the chart's pods would
// run: the Deployment's own arguments, environment and security settings,
// the chart's service account token and the cluster's CA at the in-cluster
// path, KUBERNETES_SERVICE_HOST and _PORT, the chart's serving pair where
// the Deployment mounts its Secret, each container at an address of its
// own on one docker network.
type chartPods struct {
	t        *testing.T
	b        *bed.Bed
	image    string
	network  string
	api      *neturl.URL
	pod      corev1.PodSpec
	saDir    string // host directories mounted into every container
	tlsDir   string
	tlsMount string
}

// newChartPods installs the chart with its webhook at url (the serving
// certificate naming san too) and prepares what the containers mount.
// The chart's own --set flags can be added.
func newChartPods(t *testing.T, b *bed.Bed, network, url, san string, sets ...string) *chartPods {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skipf("no usable docker engine (docker info: %v)", err)
	}
	image := os.Getenv("VMDRAIN_IMAGE")
	if image == "" {
		t.Fatal("VMDRAIN_IMAGE is not set: `make image` builds the image and prints its name; `make e2e` does both")
	}
	docker(t, "image", "inspect", "--format", "{{.Id}}", image)
	api, err := neturl.Parse(b.Env["VMDRAIN_APISERVER_DOCKER"])
	if err != nil || api.Hostname() == "" {
		t.Fatalf("the bed's API server address for containers %q: %v", b.Env["VMDRAIN_APISERVER_DOCKER"], err)
	}
	secret, _ := chartInstall(t, b, url, san, sets...)
	cp := &chartPods{t: t, b: b, image: image, network: network, api: api, pod: chartDeployment(t, b).Spec.Template.Spec}
	c := &cp.pod.Containers[0]
	if p := containerPort(t, c, "webhook"); p != 8443 {
		t.Fatalf("the chart's webhook port is %d; the test expects the default 8443", p)
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "tls" {
			cp.tlsMount = m.MountPath
		}
	}
	if cp.tlsMount == "" {
		t.Fatal("the chart's Deployment mounts no tls volume")
	}
	// What a kubelet would mount, readable by the container's user.
	dir := t.TempDir()
	cp.saDir, cp.tlsDir = filepath.Join(dir, "sa"), filepath.Join(dir, "tls")
	for _, d := range []string{dir, cp.saDir, cp.tlsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, cp.saDir, 0o644, map[string][]byte{"token": []byte(chartToken(t, b)),
		"ca.crt": b.Config.TLSClientConfig.CAData, "namespace": []byte(chartNS)})
	writeFiles(t, cp.tlsDir, 0o644, map[string][]byte{"tls.crt": secret.Data["tls.crt"], "tls.key": secret.Data["tls.key"]})
	if len(b.Config.TLSClientConfig.CAData) == 0 {
		t.Fatal("the bed's kubeconfig carries no CA data")
	}
	return cp
}

// chartPod is one running container.
type chartPod struct {
	name, ip, metrics, log string
}

// env is the container's environment as a kubelet sets it: plain values,
// and the downward API's pod name and namespace.
func (cp *chartPods) env(name string) []string {
	var args []string
	for _, e := range cp.pod.Containers[0].Env {
		v := e.Value
		if f := e.ValueFrom; f != nil && f.FieldRef != nil {
			switch f.FieldRef.FieldPath {
			case "metadata.name":
				v = name
			case "metadata.namespace":
				v = chartNS
			default:
				cp.t.Fatalf("the test does not know the field %s of env %s", f.FieldRef.FieldPath, e.Name)
			}
		}
		args = append(args, "-e", e.Name+"="+v)
	}
	return args
}

// runAs is the user and group container c of pod runs as: its own
// securityContext's, else the pod's, as a kubelet decides.
func runAs(pod *corev1.PodSpec, c *corev1.Container) (uid, gid *int64) {
	if ps := pod.SecurityContext; ps != nil {
		uid, gid = ps.RunAsUser, ps.RunAsGroup
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			uid = cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			gid = cs.RunAsGroup
		}
	}
	return uid, gid
}

// start runs a container named name at ip; it is removed when the test
// ends, and its log is printed when the test failed.
func (cp *chartPods) start(name, ip string) *chartPod {
	t := cp.t
	t.Helper()
	c, pod := &cp.pod.Containers[0], &cp.pod
	sc := c.SecurityContext
	uid, gid := runAs(pod, c)
	if sc == nil || uid == nil || gid == nil {
		t.Fatal("the chart's Deployment sets no user and group")
	}
	args := []string{"run", "-d", "--name", name, "--hostname", name, "--network", cp.network, "--ip", ip,
		"--user", fmt.Sprintf("%d:%d", *uid, *gid),
		"-e", "KUBERNETES_SERVICE_HOST=" + cp.api.Hostname(), "-e", "KUBERNETES_SERVICE_PORT=" + cp.api.Port(),
		"-v", cp.saDir + ":" + saDir + ":ro", "-v", cp.tlsDir + ":" + cp.tlsMount + ":ro"}
	args = append(args, cp.env(name)...)
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
	args = append(args, cp.image)
	args = append(args, c.Args...)
	docker(t, args...)
	p := &chartPod{name: name, ip: ip, metrics: net.JoinHostPort(ip, fmt.Sprint(containerPort(t, c, "metrics"))),
		log: filepath.Join(t.TempDir(), name+".log")}
	cp.follow(p, "")
	t.Logf("docker %s", strings.Join(args, " "))
	return p
}

// follow appends the container's log into p.log: all of it, or what it
// writes from since on (a restarted container's).
func (cp *chartPods) follow(p *chartPod, since string) {
	t := cp.t
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"logs", "-f", p.name}
	if since != "" {
		args = append(args, "--since", since)
	}
	follow := exec.Command("docker", args...)
	follow.Stdout, follow.Stderr = logFile, logFile
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", p.name).Run()
		_ = follow.Wait()
		logFile.Close()
		if t.Failed() && since == "" {
			data, _ := os.ReadFile(p.log)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 300 {
				lines = lines[len(lines)-300:]
			}
			t.Logf("container %s log (last lines):\n%s", p.name, strings.Join(lines, "\n"))
		}
	})
}

// grace is the pod's termination grace period.
func (cp *chartPods) grace() int64 {
	if g := cp.pod.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return 30
}

// containerUID is the real uid of the container's first process, read on
// the host (the image has no shell to ask in).
func containerUID(t *testing.T, name string) string {
	t.Helper()
	pid := docker(t, "inspect", "-f", "{{.State.Pid}}", name)
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	t.Fatalf("no Uid line in /proc/%s/status", pid)
	return ""
}

// TestChartImageInCluster: one container as the chart's pod (chartPods).
// The API server calls the webhook at the container's address. A taint
// drain and a kubectl drain pass with no refused request; SIGTERM ends it
// with exit 0.
func TestChartImageInCluster(t *testing.T) {
	b := bed.OpenT(t)
	network, ip := dockerNetwork(t)
	cp := newChartPods(t, b, network, fmt.Sprintf("https://%s/validate-eviction", net.JoinHostPort(ip, "8443")), ip)
	p := cp.start(uniq("vmdrain"), ip)
	waitReady(t, p.metrics, 60*time.Second)
	uid, _ := runAs(&cp.pod, &cp.pod.Containers[0])
	if got := containerUID(t, p.name); got != fmt.Sprint(*uid) {
		t.Errorf("the container runs as uid %s, want %d", got, *uid)
	}
	waitHolder(t, b, chartNS, chartRelease, p.name, 30*time.Second)

	chartDrains(t, b, "img", p.metrics)
	checkNotRefused(t, p.log, p.metrics)

	// SIGTERM, as a kubelet stops the pod: vmdrain ends cleanly, and
	// releases the Lease
	docker(t, "stop", "-t", fmt.Sprint(cp.grace()), p.name)
	if code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", p.name); code != "0" {
		t.Errorf("vmdrain's container exited %s after SIGTERM, want 0", code)
	}
	if h := leaseHolder(t, b, chartNS, chartRelease); h != "" {
		t.Errorf("after SIGTERM the Lease is still held by %q", h)
	}
	chartUninstall(t, b)
}
