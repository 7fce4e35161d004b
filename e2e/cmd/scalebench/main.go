// Command scalebench measures vmdrain's sync of a large cluster against a
// client-go peer (cmd/informerpeer) in the same run, on a running bed
// (scripts/bench-scale.sh starts one of its own and stops it after).
//
//	scalebench --vmdrain bin/vmdrain --peer PATH [--nodes N --pods N --vmis N
//	           --migrations N --reps N] [--large]
//
// It first drains a node of simulated VMs one migration at a time and
// prints the reaction time (reaction.go). Then it stops the bed's kwok and
// simulator (the objects are static: nothing but the programs measured
// talks to the apiserver), loads the objects (load.go) at a tenth of the
// size and at the size, counting the instructions of a VMI watch event at
// each (events.go), then starts, one after the other and in a rotating order,
// `vmdrain run`, the peer and the peer that strips managedFields, each
// until its caches have synced. For each it reads its CPU from /proc at the
// sync and its resident memory a second later, and the apiserver's CPU and
// request time from the apiserver's /metrics before and after. It prints
// the medians and vmdrain's ratio to each peer. Last, vmdrain's eviction
// webhook and the peer's, under the same load (webhook.go).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"vmdrain.io/e2e/bed"
)

type variant struct {
	name string
	argv func(b *bed.Bed, lease string) []string
	sync string // the line (substring) the program logs once its caches synced
}

type sample struct {
	rssMiB, cpuS, syncS, apiCPUS, apiReqS float64
	lists, streams                        float64
}

func main() {
	vmdrain := flag.String("vmdrain", "bin/vmdrain", "the vmdrain binary")
	peer := flag.String("peer", "", "the informerpeer binary")
	sz := sizes{}
	flag.IntVar(&sz.nodes, "nodes", 500, "Nodes")
	flag.IntVar(&sz.pods, "pods", 10000, "virt-launcher Pods")
	flag.IntVar(&sz.vmis, "vmis", 5000, "VMIs")
	flag.IntVar(&sz.migrations, "migrations", -1, "finished migrations (default: one for every 5 VMIs)")
	reps := flag.Int("reps", 5, "repetitions of each program")
	large := flag.Bool("large", false, "5,000 Nodes, 100,000 Pods, 50,000 VMIs")
	workers := flag.Int("workers", 16, "concurrent creates while loading")
	whRequests := flag.Int("webhook-requests", 4000, "dry-run eviction reviews per webhook run (0: no webhook runs)")
	whClients := flag.Int("webhook-clients", 16, "reviews in flight")
	reactN := flag.Int("reaction", 25, "VMs drained one migration at a time for the reaction time (0: none)")
	events := flag.Int("events", 300, "VMI patches for the instructions per event, at a tenth of the size and at the size (0: none)")
	flag.Parse()
	if *large {
		sz = sizes{nodes: 5000, pods: 100000, vmis: 50000, migrations: -1}
	}
	if sz.migrations < 0 {
		sz.migrations = sz.vmis / 5
	}
	if *peer == "" || sz.nodes < 1 || sz.vmis < 1 || *reps < 1 {
		fmt.Fprintln(os.Stderr, "scalebench: --peer is required; --nodes, --vmis and --reps must be at least 1")
		os.Exit(2)
	}
	if err := run(*vmdrain, *peer, sz, *reps, *workers, *events, *reactN, *whRequests, *whClients); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

func run(vmdrain, peer string, sz sizes, reps, workers, events, reactN, whRequests, whClients int) error {
	ctx := context.Background()
	b, err := bed.Open()
	if err != nil {
		return err
	}
	b.Config.QPS, b.Config.Burst = 2000, 4000
	b.Config.WarningHandler = rest.NoWarnings{} // KubeVirt's own finalizer names draw one per create
	if b, err = reopen(b); err != nil {
		return err
	}
	if err := ensureBase(ctx, b); err != nil {
		return err
	}
	if reactN > 0 { // needs kwok and the simulator: before they stop
		if err := reaction(ctx, b, vmdrain, reactN); err != nil {
			return fmt.Errorf("reaction time: %w", err)
		}
	}
	for _, d := range []string{"kwok", "sim"} {
		stopDaemon(b, d)
	}
	var costs []eventCost
	loaded := sizes{}
	steps := []sizes{sz}
	if events > 0 {
		steps = []sizes{sz.scaled(10), sz}
	}
	for i, step := range steps {
		t0 := time.Now()
		if err := load(ctx, b, loaded, step, workers); err != nil {
			return err
		}
		loaded = step
		if i == 0 {
			if err := printSizes(ctx, b); err != nil {
				return err
			}
		}
		fmt.Printf("loaded %d Nodes, %d virt-launcher Pods, %d VMIs, %d finished migrations (%.0f s)\n",
			step.nodes, step.pods, step.vmis, step.migrations, time.Since(t0).Seconds())
		if events > 0 {
			ec, err := measureEvents(ctx, b, vmdrain, step, events, fmt.Sprintf("scale-events-%d", i))
			if err != nil {
				return fmt.Errorf("instructions per event at %d VMIs: %w", step.vmis, err)
			}
			printEventCost(ec)
			costs = append(costs, ec)
		}
	}
	variants := []variant{
		{"vmdrain", func(b *bed.Bed, lease string) []string {
			return []string{vmdrain, "--kubeconfig", b.Kubeconfig, "run", "--config", configNS + "/" + configName,
				"--metrics-listen", "127.0.0.1:0", "--leader-elect-lease", configNS + "/" + lease}
		}, "caches synced"},
		{"client-go", func(b *bed.Bed, _ string) []string {
			return []string{peer, "--kubeconfig", b.Kubeconfig, "--config", configNS + "/" + configName}
		}, "caches synced"},
		{"client-go, managedFields stripped", func(b *bed.Bed, _ string) []string {
			return []string{peer, "--kubeconfig", b.Kubeconfig, "--config", configNS + "/" + configName, "--strip-managed-fields"}
		}, "caches synced"},
	}
	results := make([][]sample, len(variants))
	for r := 0; r < reps; r++ {
		for k := range variants {
			v := (r + k) % len(variants)
			s, err := measure(ctx, b, variants[v], fmt.Sprintf("scale-%d-%d", r, v))
			if err != nil {
				return fmt.Errorf("%s, repetition %d: %w", variants[v].name, r+1, err)
			}
			fmt.Printf("  run %d %-34s rss %6.1f MiB  cpu %6.2f s  synced %6.2f s  apiserver cpu %6.2f s  request time %6.2f s  LISTs %3.0f  streamed lists %3.0f\n",
				r+1, variants[v].name, s.rssMiB, s.cpuS, s.syncS, s.apiCPUS, s.apiReqS, s.lists, s.streams)
			results[v] = append(results[v], s)
		}
	}
	report(variants, results, reps)
	if whRequests > 0 {
		fmt.Println()
		if err := benchWebhook(b, vmdrain, peer, reps, whClients, whRequests, min(100, sz.vmis, sz.pods)); err != nil {
			return err
		}
	}
	if len(costs) == 2 {
		fmt.Printf("\ninstructions per VMI watch event (with its reconcile and dispatch), callgrind:\n")
		fmt.Printf("%8d VMIs %12.0f\n%8d VMIs %12.0f\nratio %.2f (flat: under 2)\n",
			costs[0].vmis, costs[0].perEvent, costs[1].vmis, costs[1].perEvent, ratio(costs[1].perEvent, costs[0].perEvent))
	}
	return nil
}

// reopen rebuilds the bed's clients after its rest.Config changed.
func reopen(b *bed.Bed) (*bed.Bed, error) {
	var err error
	if b.Kube, err = kubernetes.NewForConfig(b.Config); err != nil {
		return nil, err
	}
	if b.Dynamic, err = dynamic.NewForConfig(b.Config); err != nil {
		return nil, err
	}
	return b, nil
}

// stopDaemon stops one of the bed's processes (SIGTERM) by its pid file.
func stopDaemon(b *bed.Bed, name string) {
	data, err := os.ReadFile(filepath.Join(b.Dir, "pids", name+".pid"))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid > 0 && syscall.Kill(pid, syscall.SIGTERM) == nil {
		fmt.Printf("stopped the bed's %s (pid %d): the objects stay as loaded\n", name, pid)
	}
}

// measure runs one program until it synced and reads its figures.
func measure(ctx context.Context, b *bed.Bed, v variant, lease string) (sample, error) {
	var s sample
	idle, err := idleCPU(ctx, b)
	if err != nil {
		return s, err
	}
	before, err := scrape(ctx, b)
	if err != nil {
		return s, err
	}
	logf, err := os.CreateTemp("", "scalebench-*.log")
	if err != nil {
		return s, err
	}
	defer os.Remove(logf.Name())
	defer logf.Close()
	argv := v.argv(b, lease)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitForLine(logf.Name(), v.sync, 10*time.Minute); err != nil {
		return s, err
	}
	s.syncS = time.Since(start).Seconds()
	// its CPU at the sync (polled every 10 ms), its memory a second later
	if _, s.cpuS, err = procFigures(cmd.Process.Pid); err != nil {
		return s, err
	}
	time.Sleep(time.Second)
	if s.rssMiB, _, err = procFigures(cmd.Process.Pid); err != nil {
		return s, err
	}
	window := time.Since(start).Seconds()
	after, err := scrape(ctx, b)
	if err != nil {
		return s, err
	}
	s.apiCPUS = max(after.cpu-before.cpu-idle*window, 0)
	s.apiReqS = after.reqTime - before.reqTime
	s.lists, s.streams = after.lists-before.lists, after.streams-before.streams
	_ = cmd.Process.Signal(syscall.SIGTERM)
	return s, nil
}

// waitForLine polls a log file until a line holds want.
func waitForLine(path, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), want) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return fmt.Errorf("no %q in its log within %s; last lines:\n%s", want, timeout,
		strings.Join(lines[max(len(lines)-20, 0):], "\n"))
}

// procFigures reads a process's resident memory (MiB) and CPU (s).
func procFigures(pid int) (rssMiB, cpuS float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(status)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			rssMiB = kb / 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// the fields after the command name, which is in parentheses
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return rssMiB, (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func report(variants []variant, results [][]sample, reps int) {
	rows := []struct {
		name, unit string
		target     float64
		get        func(sample) float64
	}{
		{"resident memory after sync", "MiB", 0.05, func(s sample) float64 { return s.rssMiB }},
		{"own CPU for the sync", "s", 0.2, func(s sample) float64 { return s.cpuS }},
		{"time to synced caches", "s", 0.5, func(s sample) float64 { return s.syncS }},
		{"apiserver CPU serving the sync", "s", 1.0, func(s sample) float64 { return s.apiCPUS }},
		{"apiserver request time", "s", 0, func(s sample) float64 { return s.apiReqS }},
	}
	fmt.Printf("\nmedians of %d runs each; ratio = vmdrain / peer (target: at most the figure given)\n", reps)
	fmt.Printf("%-32s %12s %12s %7s %14s %7s %8s\n", "", "vmdrain", "client-go", "ratio", "cg stripped", "ratio", "target")
	for _, row := range rows {
		m := make([]float64, len(variants))
		for v := range variants {
			var xs []float64
			for _, s := range results[v] {
				xs = append(xs, row.get(s))
			}
			m[v] = median(xs)
		}
		target := "-"
		if row.target > 0 {
			verdict := "met"
			if ratio(m[0], m[1]) > row.target {
				verdict = "missed"
			}
			target = fmt.Sprintf("%.2f %s", row.target, verdict)
		}
		fmt.Printf("%-32s %8.2f %-3s %8.2f %-3s %7s %10.2f %-3s %7s %8s\n", row.name, m[0], row.unit, m[1], row.unit,
			fmtRatio(m[0], m[1]), m[2], row.unit, fmtRatio(m[0], m[2]), target)
	}
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func fmtRatio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", a/b)
}
