// events.go — what one watch event costs vmdrain, in instructions
// (callgrind: the machine's load does not change the count): vmdrain runs
// under `valgrind --tool=callgrind --instr-atstart=no`; once its caches
// synced and the first reconciles settled, instrumentation is switched on
// for an idle window and, after a dump, for a window of the same length in
// which VMIs are patched one after another (each patch is a watch event,
// the reconcile of its node and a dispatch). The idle window's count, per
// second, is taken off; what remains is divided by the patches.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
)

type eventCost struct {
	vmis, events     int
	idleIr, eventsIr float64 // instructions in each window
	idleS, eventsS   float64 // the windows' lengths
	perEvent         float64
}

var totalsRE = regexp.MustCompile(`(?m)^(?:summary|totals):\s+(\d+)`)

// callgrindTotal reads the instruction count of one callgrind dump.
func callgrindTotal(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	m := totalsRE.FindSubmatch(data)
	if m == nil {
		return 0, fmt.Errorf("%s: no totals line", path)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func callgrindControl(args ...string) error {
	out, err := exec.Command("callgrind_control", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("callgrind_control %v: %v: %s", args, err, out)
	}
	return nil
}

// measureEvents runs vmdrain under callgrind and patches n VMIs of sz.
func measureEvents(ctx context.Context, b *bed.Bed, vmdrain string, sz sizes, n int, lease string) (eventCost, error) {
	ec := eventCost{vmis: sz.vmis, events: n}
	dir, err := os.MkdirTemp("", "scalebench-callgrind-")
	if err != nil {
		return ec, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "callgrind.out")
	logPath := filepath.Join(dir, "vmdrain.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return ec, err
	}
	defer logf.Close()
	cmd := exec.Command("valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file="+out,
		vmdrain, "--kubeconfig", b.Kubeconfig, "run", "--config", configNS+"/"+configName,
		"--metrics-listen", "127.0.0.1:0", "--leader-elect-lease", configNS+"/"+lease)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return ec, fmt.Errorf("valgrind: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitForLine(logPath, "caches synced", 15*time.Minute); err != nil {
		return ec, err
	}
	time.Sleep(5 * time.Second) // the first reconcile of every node
	pid := strconv.Itoa(cmd.Process.Pid)
	window := max(time.Duration(n)*20*time.Millisecond, 2*time.Second)

	if err := callgrindControl("-i", "on", pid); err != nil {
		return ec, err
	}
	t := time.Now()
	time.Sleep(window)
	if err := callgrindControl("-d", "idle", pid); err != nil {
		return ec, err
	}
	ec.idleS = time.Since(t).Seconds()
	t = time.Now()
	for i := 0; i < n; i++ {
		vm := vmName(i * max(sz.vmis/n, 1) % sz.vmis)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"scale.vmdrain.io/touched":"%d-%d"}}}`, time.Now().UnixNano(), i)
		if _, err := b.Dynamic.Resource(kubevirt.VMIResource).Namespace(benchNS).Patch(ctx, vm,
			types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return ec, fmt.Errorf("patch VMI %s: %w", vm, err)
		}
		time.Sleep(time.Until(t.Add(time.Duration(i+1) * window / time.Duration(n+n/4))))
	}
	time.Sleep(time.Until(t.Add(window)))
	if err := waitIdle(cmd.Process.Pid, 5*time.Minute); err != nil { // slow under callgrind: let it catch up
		return ec, err
	}
	if err := callgrindControl("-d", "events", pid); err != nil {
		return ec, err
	}
	ec.eventsS = time.Since(t).Seconds()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	dumps, _ := filepath.Glob(out + ".*")
	if len(dumps) < 2 {
		return ec, fmt.Errorf("callgrind wrote %d dumps, want 2: %v", len(dumps), dumps)
	}
	if ec.idleIr, err = callgrindTotal(dumps[0]); err != nil {
		return ec, err
	}
	if ec.eventsIr, err = callgrindTotal(dumps[1]); err != nil {
		return ec, err
	}
	ec.perEvent = (ec.eventsIr - ec.idleIr*ec.eventsS/ec.idleS) / float64(n)
	return ec, nil
}

// waitIdle waits until a process used under 4% of a core for half a second.
func waitIdle(pid int, timeout time.Duration) error {
	_, last, err := procFigures(pid)
	for deadline := time.Now().Add(timeout); err == nil && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		var cpu float64
		if _, cpu, err = procFigures(pid); err == nil && cpu-last < 0.02 {
			return nil
		}
		last = cpu
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("pid %d still busy after %s", pid, timeout)
}

func printEventCost(ec eventCost) {
	fmt.Printf("  %6d VMIs: %d VMI watch events: %.0f instructions (idle window %.0f in %.1f s, taken off): %.0f per event\n",
		ec.vmis, ec.events, ec.eventsIr, ec.idleIr, ec.idleS, ec.perEvent)
}
