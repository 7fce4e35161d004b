package operator

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"vmdrain.io/e2e/bed"
)

// helmErr runs helm and returns its output and error (for renderings that
// must be refused).
func helmErr(b *bed.Bed, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return b.Run(ctx, "helm", args...)
}

// renderedDeployment renders the chart's Deployment with sets.
func renderedDeployment(t *testing.T, b *bed.Bed, sets ...string) *appsv1.Deployment {
	t.Helper()
	args := append([]string{"template", chartRelease, chartDir(), "-n", chartNS, "--show-only", "templates/deployment.yaml"}, sets...)
	var d appsv1.Deployment
	if err := yaml.Unmarshal([]byte(helm(t, b, args...)), &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// uninstallCleanup runs the command charts/vmdrain/README.md gives for
// what `helm uninstall` leaves behind (the second sh block of its
// "Uninstall" section) with the bed's kubectl, then checks that no Node
// and no VMI keeps a vmdrain.io/ mark and the MigrationPolicy is gone.
func uninstallCleanup(t *testing.T, b *bed.Bed) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sec := string(data)
	if i := strings.Index(sec, "## Uninstall\n"); i >= 0 {
		sec = sec[i:]
	}
	blocks := strings.Split(sec, "```sh\n")
	if len(blocks) < 3 {
		t.Fatal("charts/vmdrain/README.md's Uninstall section has no second sh block")
	}
	script := strings.SplitN(blocks[2], "```", 2)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig, "PATH="+filepath.Dir(b.Tool("kubectl"))+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's clean-up command: %v\n%s", err, out)
	}
	out := kubectl(t, b, "get", "nodes,vmi", "-A", "-o", "jsonpath={range .items[*]}{.kind} {.metadata.name} {.metadata.annotations} {.metadata.labels}{\"\\n\"}{end}")
	for _, l := range strings.Split(out, "\n") {
		for _, mark := range []string{`"vmdrain.io/state"`, `"vmdrain.io/progress"`, `"vmdrain.io/cordoned-by"`, `"vmdrain.io/trigger"`,
			`"vmdrain.io/evacuate-from"`, `"vmdrain.io/aborted"`, `"vmdrain.io/evacuating"`, `"vmdrain.io/started-at"`} {
			if strings.Contains(l, mark) {
				t.Errorf("after the README's clean-up %s is still there: %s", mark, l)
			}
		}
	}
	if out, err := b.Kubectl(context.Background(), "get", "migrationpolicies.migrations.kubevirt.io", chartPolicy); err == nil {
		t.Errorf("after the README's clean-up the MigrationPolicy is still there:\n%s", out)
	}
}

// renderedObject is what the tests read of each rendered object.
type renderedObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// renderedObjects splits a rendering into its objects.
func renderedObjects(t *testing.T, out string) []renderedObject {
	t.Helper()
	var objs []renderedObject
	for _, doc := range strings.Split(out, "\n---") {
		var o renderedObject
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("a rendered object is not YAML: %v\n%s", err, doc)
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
	return objs
}

// TestChartConventions: the values every mature chart has render as they
// should, wrong types are refused by name, the chart renders as a subchart
// of an umbrella chart (with global values), and GitOps renderings with a
// Secret of one's own are the same every time.
func TestChartConventions(t *testing.T) {
	b := bed.OpenT(t)
	chart := chartDir()

	// defaults: the priority class, the kubeVersion, the image's own user
	helm(t, b, "lint", "--strict", chart, "--set", "global.x=1")
	d := renderedDeployment(t, b)
	spec := d.Spec.Template.Spec
	if spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("priorityClassName %q, want system-cluster-critical by default", spec.PriorityClassName)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("the default pod securityContext %+v does not run as 65532, non-root", sc)
	}
	if out, err := helmErr(b, "template", chartRelease, chart, "--kube-version", "1.27.0"); err == nil || !strings.Contains(out, "kubeVersion") {
		t.Errorf("Kubernetes 1.27 was not refused by the chart's kubeVersion: %v\n%s", err, out)
	}

	// OpenShift's restricted SCC picks the UID: the chart leaves it unset
	d = renderedDeployment(t, b, "--set", "podSecurityContext.runAsUser=null", "--set", "podSecurityContext.runAsGroup=null")
	if sc := d.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsUser != nil || sc.RunAsGroup != nil || sc.RunAsNonRoot == nil {
		t.Errorf("with runAsUser and runAsGroup null the pod securityContext is %+v", sc)
	}

	// every common value reaches the Deployment
	d = renderedDeployment(t, b, "--set", "fullnameOverride=vd", "--set", "nameOverride=nn",
		"--set", "image.digest=sha256:"+strings.Repeat("ab", 32), "--set", "serviceAccount.create=false",
		"--set", "serviceAccount.name=iam-vmdrain", "--set", "podAnnotations.a=b", "--set", "podLabels.team=virt",
		"--set", "extraArgs={--metrics-auth}", "--set-json", `env=[{"name":"TZ","value":"UTC"}]`,
		"--set-json", `extraVolumes=[{"name":"x","emptyDir":{}}]`, "--set-json", `extraVolumeMounts=[{"name":"x","mountPath":"/x"}]`,
		"--set", "hostNetwork=true", "--set", "priorityClassName=", "--set-json", `affinity={"nodeAffinity":{}}`)
	spec = d.Spec.Template.Spec
	c := spec.Containers[0]
	checks := map[string]bool{
		"fullnameOverride":        d.Name == "vd",
		"nameOverride":            d.Spec.Selector.MatchLabels["app.kubernetes.io/name"] == "nn",
		"image.digest":            c.Image == "vmdrain@sha256:"+strings.Repeat("ab", 32),
		"serviceAccount.name":     spec.ServiceAccountName == "iam-vmdrain",
		"podAnnotations":          d.Spec.Template.Annotations["a"] == "b",
		"podLabels":               d.Spec.Template.Labels["team"] == "virt",
		"extraArgs":               c.Args[len(c.Args)-1] == "--metrics-auth",
		"env":                     len(c.Env) > 0 && c.Env[len(c.Env)-1].Name == "TZ",
		"extraVolumes":            spec.Volumes[len(spec.Volumes)-1].Name == "x",
		"extraVolumeMounts":       c.VolumeMounts[len(c.VolumeMounts)-1].MountPath == "/x",
		"hostNetwork":             spec.HostNetwork,
		"dnsPolicy with the host": spec.DNSPolicy == corev1.DNSClusterFirstWithHostNet,
		"priorityClassName empty": spec.PriorityClassName == "",
		"affinity":                spec.Affinity != nil && spec.Affinity.NodeAffinity != nil && spec.Affinity.PodAntiAffinity == nil,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s does not reach the Deployment", what)
		}
	}
	out := helm(t, b, "template", chartRelease, chart, "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=iam",
		"--set", "rbac.create=false")
	for _, o := range renderedObjects(t, out) {
		if o.Metadata.Annotations["helm.sh/hook"] != "" {
			continue // the test hook's own account and Role
		}
		switch o.Kind {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			t.Errorf("serviceAccount.create=false and rbac.create=false still render %s %s", o.Kind, o.Metadata.Name)
		}
	}

	// refused, naming the value
	for _, bad := range []struct {
		sets []string
		want string
	}{
		{[]string{"--set", "replicas=two"}, "replicas"},
		{[]string{"--set", "hostNetwork=maybe"}, "hostNetwork"},
		{[]string{"--set-json", `extraArgs=[1]`}, "extraArgs"},
		{[]string{"--set", "dnsPolicy=Sometimes"}, "dnsPolicy"},
		{[]string{"--set", "image.digest=latest"}, "digest"},
		{[]string{"--set", "serviceAccount.create=false"}, "serviceAccount.name"},
		{[]string{"--set", "webhook.existingSecret=mine"}, "webhook.caBundle"},
		{[]string{"--set", "webhook.existingSecret=mine", "--set", "webhook.caBundle=Zm9v", "--set", "certManager.enabled=true"}, "exclude each other"},
	} {
		out, err := helmErr(b, append([]string{"template", chartRelease, chart}, bad.sets...)...)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("%v was not refused with a message naming %s: %v\n%s", bad.sets, bad.want, err, out)
		}
	}

	// a subchart of an umbrella chart, with global values
	umbrella := t.TempDir()
	writeFiles(t, umbrella, 0o644, map[string][]byte{
		"Chart.yaml":  []byte("apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: vmdrain\n    version: \">=0.0.0-0\"\n    repository: file://" + chart + "\n"),
		"values.yaml": []byte("global:\n  imageRegistry: registry.example\n  x: 1\nvmdrain:\n  replicas: 1\n"),
	})
	helm(t, b, "dependency", "build", umbrella)
	out = helm(t, b, "template", "platform", umbrella, "-n", chartNS, "--set", "global.x=2")
	if !strings.Contains(out, "kind: Deployment") || !strings.Contains(out, "name: platform-vmdrain\n") {
		t.Errorf("as a subchart vmdrain renders no Deployment platform-vmdrain:\n%.2000s", out)
	}

	// GitOps: helm template cannot look the kept pair up, so each rendering
	// makes a new one; a Secret of one's own renders the same every time
	first := helm(t, b, "template", chartRelease, chart, "-n", chartNS)
	if second := helm(t, b, "template", chartRelease, chart, "-n", chartNS); first == second {
		t.Error("two renderings without a cluster made the same pair: the documented GitOps caveat no longer holds, update the docs")
	}
	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	own := []string{"template", chartRelease, chart, "-n", chartNS, "--set", "webhook.existingSecret=vmdrain-own-tls", "--set", "webhook.caBundle=" + ca}
	r1, r2 := helm(t, b, own...), helm(t, b, own...)
	if r1 != r2 {
		t.Error("two renderings with webhook.existingSecret differ")
	}
	if strings.Contains(r1, "kind: Secret") || !strings.Contains(r1, "caBundle: "+ca) || !strings.Contains(r1, "secretName: vmdrain-own-tls") {
		t.Errorf("with webhook.existingSecret the chart renders its own Secret, or not the given caBundle and Secret:\n%.3000s", r1)
	}
	cm := helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--set", "certManager.enabled=true")
	if cm != helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--set", "certManager.enabled=true") {
		t.Error("two renderings with certManager.enabled differ")
	}

	// the API server takes the rendering with the common values set
	if _, err := b.Kubectl(context.Background(), "create", "namespace", chartNS); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	// (the test hook's pod needs its account, which a dry run does not make)
	full := helm(t, b, "template", chartRelease, chart, "-n", chartNS, "--skip-tests", "--set", "podLabels.team=virt",
		"--set-json", `env=[{"name":"TZ","value":"UTC"}]`, "--set", "hostNetwork=true",
		"--set", "podSecurityContext.runAsUser=null", "--set", "podSecurityContext.runAsGroup=null")
	manifest := filepath.Join(t.TempDir(), "chart.yaml")
	if err := os.WriteFile(manifest, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := kubectl(t, b, "apply", "--dry-run=server", "-f", manifest); !strings.Contains(out, "deployment.apps/vmdrain") {
		t.Errorf("server dry run: %s", out)
	}
}

// hookPod plays the kubelet for a `helm test` pod the scheduler cannot
// place (its nodeSelector names no node): it runs the pod's container with
// docker, with the pod's service account token mounted, and then writes the
// pod's phase from the exit code, as a kubelet does.
func hookPod(t *testing.T, b *bed.Bed, cp *chartPods, name string, timeout time.Duration) (string, int) {
	t.Helper()
	ctx := context.Background()
	var pod *corev1.Pod
	err := bed.Eventually(ctx, timeout, func(ctx context.Context) (bool, error) {
		p, err := b.Kube.CoreV1().Pods(chartNS).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodPending {
			pod = p
		}
		return pod != nil, nil
	})
	if err != nil {
		t.Fatalf("no pending test pod %s within %s", name, timeout)
	}
	dir := t.TempDir()
	sa, tls := filepath.Join(dir, "sa"), filepath.Join(dir, "tls")
	for _, d := range []string{dir, sa, tls} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, sa, 0o644, map[string][]byte{"token": []byte(tokenOf(t, b, chartNS, pod.Spec.ServiceAccountName, 600)),
		"ca.crt": b.Config.TLSClientConfig.CAData, "namespace": []byte(chartNS)})
	c := pod.Spec.Containers[0]
	uid, gid := runAs(&pod.Spec, &c)
	if uid == nil || gid == nil {
		t.Fatal("the test pod sets no user and group")
	}
	cname := uniq("vmdrain-test")
	args := []string{"run", "--name", cname, "--network", cp.network,
		"--user", fmt.Sprintf("%d:%d", *uid, *gid),
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"-e", "KUBERNETES_SERVICE_HOST=" + cp.api.Hostname(), "-e", "KUBERNETES_SERVICE_PORT=" + cp.api.Port(),
		"-v", sa + ":" + saDir + ":ro", "-v", tls + ":/tls:ro", cp.image}
	args = append(args, c.Args...)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", cname).Run() })
	out, err := exec.Command("docker", args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	phase := corev1.PodSucceeded
	if code != 0 {
		phase = corev1.PodFailed
	}
	now := metav1.Now()
	// the scheduler writes the pod's conditions meanwhile: on a conflict,
	// read it again and write again
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := b.Kube.CoreV1().Pods(chartNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.Phase = phase
		cur.Status.StartTime = &now
		cur.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: c.Name, Image: c.Image, ImageID: "docker://" + cp.image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), StartedAt: now, FinishedAt: now}}}}
		_, err = b.Kube.CoreV1().Pods(chartNS).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("the test pod's status: %v", err)
	}
	return string(out), code
}

// helmTest runs `helm test` while hookPod plays the test pod's kubelet.
func helmTest(t *testing.T, b *bed.Bed, cp *chartPods) (helmOut string, helmErr error, podOut string, code int) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := b.Run(ctx, "helm", "test", chartRelease, "-n", chartNS, "--timeout", "2m")
		done <- result{out, err}
	}()
	podOut, code = hookPod(t, b, cp, chartRelease+"-test", time.Minute)
	r := <-done
	return r.out, r.err, podOut, code
}

// TestChartHelmTest: `helm test` on the bed, the test pod's container run
// from vmdrain's image: it passes while vmdrain answers (/readyz, and the
// dry-run eviction answered by its webhook through the real API server),
// and fails once vmdrain is stopped.
func TestChartHelmTest(t *testing.T) {
	b := bed.OpenT(t)
	network, ip := dockerNetwork(t)
	cp := newChartPods(t, b, network, fmt.Sprintf("https://%s/validate-eviction", net.JoinHostPort(ip, "8443")), ip,
		"--set", fmt.Sprintf("tests.readyzURL=http://%s/readyz", net.JoinHostPort(ip, "8080")),
		"--set", "tests.nodeSelector.vmdrain\\.io/e2e-kubelet=docker")
	p := cp.start(uniq("vmdrain"), ip)
	waitReady(t, p.metrics, 60*time.Second)

	out, err, podOut, code := helmTest(t, b, cp)
	t.Logf("helm test:\n%s\ntest pod:\n%s", out, podOut)
	if err != nil || code != 0 || !strings.Contains(out, "Phase:          Succeeded") {
		t.Errorf("helm test did not pass (exit %d, %v)", code, err)
	}
	for _, want := range []string{"readyz ok: http://" + net.JoinHostPort(ip, "8080") + "/readyz answered 200",
		"eviction ok: vmdrain's webhook answered the dry run of " + chartNS + "/virt-launcher-" + chartRelease + "-check: vmdrain (dry run) allowed"} {
		if !strings.Contains(podOut, want) {
			t.Errorf("the test pod's output lacks %q", want)
		}
	}
	// passed: helm removes the pod and its account
	if _, err := b.Kube.CoreV1().ServiceAccounts(chartNS).Get(context.Background(), chartRelease+"-test", metav1.GetOptions{}); err == nil {
		t.Error("the test's ServiceAccount is still there after a passed test")
	}

	// vmdrain stopped: the webhook (failurePolicy Fail) cannot answer
	docker(t, "stop", "-t", "10", p.name)
	out, err, podOut, code = helmTest(t, b, cp)
	t.Logf("helm test with vmdrain stopped:\n%s\ntest pod:\n%s", out, podOut)
	if err == nil || code == 0 || !strings.Contains(podOut, "readyz FAIL") || !strings.Contains(podOut, "eviction FAIL") {
		t.Errorf("helm test passed, or the pod named no failed check, with vmdrain stopped (exit %d, %v)", code, err)
	}
	chartUninstall(t, b)
}
