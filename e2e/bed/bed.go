// Package bed gives Go tests access to a running test bed (started with
// `e2e/bed.sh up`): API clients, the real kubectl and helm, kwok nodes and
// simulated VMs.
//
// The bed is found through $KUBECONFIG, else the bed directory of
// $VMDRAIN_BED (default "default"): ${TMPDIR:-/tmp}/vmdrain-bed-<name>, or
// $VMDRAIN_BED_DIR when set.
package bed

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

// Bed is a running test bed.
type Bed struct {
	Name       string
	Dir        string
	Kubeconfig string
	Env        map[string]string // the bed's <dir>/env file
	Config     *rest.Config
	Kube       kubernetes.Interface
	Dynamic    dynamic.Interface
}

// Name returns the bed name in use: $VMDRAIN_BED or "default".
func Name() string {
	if n := os.Getenv("VMDRAIN_BED"); n != "" {
		return n
	}
	return "default"
}

// DirOf returns the directory of the named bed.
func DirOf(name string) string {
	if d := os.Getenv("VMDRAIN_BED_DIR"); d != "" && name == Name() {
		return d
	}
	return filepath.Join(os.TempDir(), "vmdrain-bed-"+name)
}

// Open connects to the bed.
func Open() (*Bed, error) {
	b := &Bed{Name: Name()}
	b.Dir = DirOf(b.Name)
	env, err := readEnv(filepath.Join(b.Dir, "env"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	b.Env = env
	b.Kubeconfig = os.Getenv("KUBECONFIG")
	if b.Kubeconfig == "" {
		b.Kubeconfig = env["KUBECONFIG"]
	}
	if b.Kubeconfig == "" {
		return nil, fmt.Errorf("no bed: neither $KUBECONFIG nor %s/env is set (run e2e/bed.sh up)", b.Dir)
	}
	b.Config, err = clientcmd.BuildConfigFromFlags("", b.Kubeconfig)
	if err != nil {
		return nil, err
	}
	b.Config.QPS, b.Config.Burst = 100, 200
	if b.Kube, err = kubernetes.NewForConfig(b.Config); err != nil {
		return nil, err
	}
	if b.Dynamic, err = dynamic.NewForConfig(b.Config); err != nil {
		return nil, err
	}
	return b, nil
}

// OpenT opens the bed or fails the test.
func OpenT(t testing.TB) *Bed {
	t.Helper()
	b, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readEnv(path string) (map[string]string, error) {
	env := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return env, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(s.Text()), "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, "'")
		}
		env[k] = v
	}
	return env, s.Err()
}

// Clients returns the clients the simulator package takes.
func (b *Bed) Clients() sim.Clients {
	return sim.Clients{Kube: b.Kube, Dynamic: b.Dynamic}
}

// Tool returns the path of a bed binary (kubectl, helm, kwok, etcd,
// kube-apiserver, sim): from the bed's bin directory, else from $PATH.
func (b *Bed) Tool(name string) string {
	p := filepath.Join(b.Dir, "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// Run runs a bed tool against the bed and returns its combined output.
func (b *Bed) Run(ctx context.Context, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.Tool(tool), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// Kubectl runs the bed's kubectl.
func (b *Bed) Kubectl(ctx context.Context, args ...string) (string, error) {
	return b.Run(ctx, "kubectl", args...)
}

// KubectlStdin runs the bed's kubectl with stdin as its input ("-f -").
func (b *Bed) KubectlStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.Tool("kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.Kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), err
}

// CreateNode creates a node that kwok manages (it becomes Ready by itself).
func (b *Bed) CreateNode(ctx context.Context, name string, labels map[string]string) error {
	l := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}
	for k, v := range labels {
		l[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}},
		Status:     corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	_, err := b.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	return err
}

// WaitNodesReady waits until every named node reports Ready=True.
func (b *Bed) WaitNodesReady(ctx context.Context, timeout time.Duration, names ...string) error {
	return Eventually(ctx, timeout, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			node, err := b.Kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil || !nodeReady(node) {
				return false, nil
			}
		}
		return true, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Real reports whether the bed runs KubeVirt's real virt-controller and
// virt-api (VMDRAIN_KUBEVIRT=real), the simulator only playing the node.
func (b *Bed) Real() bool {
	return b.Env["VMDRAIN_KUBEVIRT"] == "real"
}

// CreateVM creates a simulated VM and waits until its launcher pod runs. In
// a real bed the VMI goes through KubeVirt's own virt-api and
// virt-controller (sim.CreateVMReal) and this waits until it runs.
func (b *Bed) CreateVM(ctx context.Context, vm sim.VM) (*kubevirt.VMI, *corev1.Pod, error) {
	if b.Real() {
		return sim.CreateVMReal(ctx, b.Clients(), vm, 2*time.Minute)
	}
	vmi, pod, err := sim.CreateVM(ctx, b.Clients(), vm)
	if err != nil {
		return nil, nil, err
	}
	return vmi, pod, sim.WaitPodRunning(ctx, b.Kube, pod.Namespace, pod.Name, time.Minute)
}

// VMI reads a VirtualMachineInstance.
func (b *Bed) VMI(ctx context.Context, ns, name string) (*kubevirt.VMI, error) {
	obj, err := b.Dynamic.Resource(kubevirt.VMIResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	vmi := &kubevirt.VMI{}
	return vmi, kubevirt.FromUnstructured(obj, vmi)
}

// Migration reads a VirtualMachineInstanceMigration.
func (b *Bed) Migration(ctx context.Context, ns, name string) (*kubevirt.Migration, error) {
	obj, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	m := &kubevirt.Migration{}
	return m, kubevirt.FromUnstructured(obj, m)
}

// CreateMigration posts a VirtualMachineInstanceMigration for a VMI.
func (b *Bed) CreateMigration(ctx context.Context, ns, name, vmi string) (*kubevirt.Migration, error) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "VirtualMachineInstanceMigration",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"vmiName": vmi},
	}}
	created, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	m := &kubevirt.Migration{}
	return m, kubevirt.FromUnstructured(created, m)
}

// LauncherPods lists the virt-launcher pods of a VMI.
func (b *Bed) LauncherPods(ctx context.Context, ns, vmi string) ([]corev1.Pod, error) {
	list, err := b.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubevirt.AppLabel + "=" + kubevirt.LauncherValue})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Annotations[kubevirt.DomainAnnotation] == vmi {
			out = append(out, p)
		}
	}
	return out, nil
}

// Namespace creates a fresh namespace (with its default service account)
// named after the test. The bed has no namespace controller, so it is not
// deleted afterwards: the bed itself is thrown away.
func (b *Bed) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("%s-%d", strings.Trim(name, "-"), time.Now().UnixNano()%100000)
	if err := sim.EnsureServiceAccount(context.Background(), b.Kube, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// Eventually polls cond every 100 ms until it is true, fails, or timeout passes.
func Eventually(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, cond)
}

// Script returns the path of e2e/bed.sh.
func Script() string {
	if s := os.Getenv("VMDRAIN_BED_SH"); s != "" {
		return s
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "bed.sh")
}

// Processes lists the pids of processes whose command line mentions dir:
// every daemon of a bed names its bed directory in its arguments.
func Processes(dir string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(dir+"/")) || bytes.HasSuffix(bytes.TrimRight(cmdline, "\x00"), []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Running reports whether the process pid exists and is not a zombie.
func Running(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && len(stat) > i+2 && stat[i+2] != 'Z'
}
