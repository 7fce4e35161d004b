// Command sim is the bed's KubeVirt migration simulator and its VM helper.
//
//	sim run [flags]              run the simulator until SIGTERM
//	sim vm create [flags]        create a simulated VM (VMI + virt-launcher pod)
//	sim free-ports N             print N free TCP ports (one a line)
//	sim webhooks --in F --url U --ca F
//	                             print KubeVirt's webhook configurations
//	                             pointed at virt-api on U
//
// Every subcommand reads the cluster from --kubeconfig or $KUBECONFIG.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "vm":
		if len(os.Args) < 3 || os.Args[2] != "create" {
			usage()
		}
		err = createVM(os.Args[3:])
	case "free-ports":
		err = freePorts(os.Args[2:])
	case "webhooks":
		err = webhooks(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: sim run [flags] | sim vm create [flags] | sim free-ports N | sim webhooks [flags]")
	os.Exit(2)
}

func clients(kubeconfig string) (sim.Clients, error) {
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return sim.Clients{}, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return sim.Clients{}, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	return sim.Clients{Kube: kube, Dynamic: dyn}, err
}

// envFloat and envDuration let the bed's environment override flag defaults.
func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (default $KUBECONFIG)")
	scale := fs.Float64("time-scale", envFloat("VMDRAIN_SIM_TIME_SCALE", 1), "multiply every simulated duration by this (env VMDRAIN_SIM_TIME_SCALE)")
	bandwidth := fs.String("bandwidth", "64Mi", "default bandwidthPerMigration in bytes/s when no MigrationPolicy sets one")
	perGiB := fs.Int64("completion-timeout-per-gib", 800, "default completionTimeoutPerGiB in seconds")
	progress := fs.Duration("progress-timeout", 150*time.Second, "abort a transfer without progress for this long (simulated time)")
	step := fs.Duration("step-delay", time.Second, "simulated time spent in each of Scheduled, PreparingTarget, TargetReady")
	health := fs.String("health-addr", "127.0.0.1:0", "serve /healthz here")
	verbose := fs.Bool("v", false, "log every phase change")
	mode := fs.String("mode", "all", "all: play all of KubeVirt; node: only virt-handler and virt-launcher, beside the real virt-controller and virt-api")
	handlerKubeconfig := fs.String("handler-kubeconfig", "", "kubeconfig of virt-handler's identity (node mode)")
	fs.Parse(args)
	if *mode != "all" && *mode != "node" {
		return fmt.Errorf("--mode %q: want all or node", *mode)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	bw, err := kubevirt.ParseQuantity(*bandwidth)
	if err != nil {
		return fmt.Errorf("--bandwidth: %w", err)
	}
	c, err := clients(*kubeconfig)
	if err != nil {
		return err
	}
	if *mode == "node" {
		if *handlerKubeconfig == "" {
			return errors.New("--mode node needs --handler-kubeconfig")
		}
		h, err := clients(*handlerKubeconfig)
		if err != nil {
			return err
		}
		c.Handler, c.HandlerKube = h.Dynamic, h.Kube
	}
	ctl := sim.New(c, sim.Config{
		TimeScale:       *scale,
		StepDelay:       *step,
		Defaults:        kubevirt.MigrationSettings{Bandwidth: bw, CompletionTimeoutPerGiB: *perGiB},
		ProgressTimeout: *progress,
		Mode:            *mode,
	}, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", *health)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", ctl.Healthz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	log.Info("health endpoint", "addr", ln.Addr().String())
	return ctl.Run(ctx)
}

// kvFlag collects repeated key=value flags.
type kvFlag map[string]string

func (f kvFlag) String() string { return fmt.Sprint(map[string]string(f)) }
func (f kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want key=value")
	}
	f[k] = v
	return nil
}

func createVM(args []string) error {
	fs := flag.NewFlagSet("vm create", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig (default $KUBECONFIG)")
	var vm sim.VM
	fs.StringVar(&vm.Name, "name", "", "VMI name (required)")
	fs.StringVar(&vm.Namespace, "namespace", "default", "namespace (created if missing)")
	fs.StringVar(&vm.Node, "node", "", "node the VM runs on (required)")
	fs.StringVar(&vm.Memory, "memory", "1Gi", "guest memory")
	fs.StringVar(&vm.EvictionStrategy, "strategy", "", "spec.evictionStrategy: None, LiveMigrate, LiveMigrateIfPossible, External (default unset)")
	fs.StringVar(&vm.Disk, "disk", sim.DiskRWX, "root disk: rwx (shared PVC), rwo (node-local PVC: not migratable), container (copied: BlockMigration), none")
	rwo := fs.Bool("pvc-rwo", false, "shorthand for --disk rwo")
	fs.BoolVar(&vm.Bridge, "bridge", false, "bridge binding on the pod network (not migratable) instead of masquerade")
	vm.Labels, vm.Annotations = kvFlag{}, kvFlag{}
	fs.Var(kvFlag(vm.Labels), "label", "VMI label key=value (repeatable)")
	fs.Var(kvFlag(vm.Annotations), "annotation", "VMI annotation key=value (repeatable), e.g. sim.vmdrain.io/fail-attempts=1")
	wait := fs.Bool("wait", true, "wait until the launcher pod is Running")
	fs.Parse(args)
	if vm.Name == "" || vm.Node == "" {
		return errors.New("vm create: --name and --node are required")
	}
	if *rwo {
		vm.Disk = sim.DiskRWO
	}
	c, err := clients(*kubeconfig)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if os.Getenv("VMDRAIN_KUBEVIRT") == "real" {
		// KubeVirt's virt-controller creates the pod; this waits for the VMI to run.
		vmi, pod, err := sim.CreateVMReal(ctx, c, vm, 2*time.Minute)
		if err != nil {
			return err
		}
		fmt.Printf("virtualmachineinstance/%s created on %s (pod %s, real KubeVirt)\n", vmi.Name, vmi.Status.NodeName, pod.Name)
		return nil
	}
	vmi, pod, err := sim.CreateVM(ctx, c, vm)
	if err != nil {
		return err
	}
	if *wait {
		if err := sim.WaitPodRunning(ctx, c.Kube, pod.Namespace, pod.Name, time.Minute); err != nil {
			return err
		}
	}
	cond := "unknown"
	for _, x := range vmi.Status.Conditions {
		if x.Type == kubevirt.ConditionMigratable {
			cond = x.Status
		}
	}
	fmt.Printf("virtualmachineinstance/%s created on %s (pod %s, LiveMigratable=%s, %s)\n", vmi.Name, vm.Node, pod.Name, cond, vmi.Status.MigrationMethod)
	return nil
}

// freePorts binds N listeners at once (so the ports differ), prints and
// releases them.
func freePorts(args []string) error {
	n := 1
	if len(args) > 0 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil {
			return err
		}
	}
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			return err
		}
		lns = append(lns, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

func webhooks(args []string) error {
	fs := flag.NewFlagSet("webhooks", flag.ExitOnError)
	in := fs.String("in", "", "webhook configurations (YAML) as virt-operator installs them")
	url := fs.String("url", "", "virt-api's base URL")
	ca := fs.String("ca", "", "PEM file of the CA that signed virt-api's serving certificate")
	fs.Parse(args)
	if *in == "" || *url == "" || *ca == "" {
		return errors.New("webhooks: --in, --url and --ca are required")
	}
	data, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(*ca)
	if err != nil {
		return err
	}
	out, err := sim.RewriteWebhooks(data, *url, pem)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
