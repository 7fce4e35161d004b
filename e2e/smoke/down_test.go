package smoke

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"vmdrain.io/e2e/bed"
)

// TestSecondBedUpAndDown starts a second, separately named bed next to the
// one under test, checks it works, takes it down and checks that none of
// its processes or files are left.
func TestSecondBedUpAndDown(t *testing.T) {
	name := fmt.Sprintf("smoke-second-%d", os.Getpid())
	dir := bed.DirOf(name)
	run := func(verb string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bed.Script(), verb)
		cmd.Env = append(os.Environ(), "VMDRAIN_BED="+name, "VMDRAIN_BED_DIR=", "KUBECONFIG=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("bed.sh %s: %v\n%s", verb, err, stderr.String())
		}
		return stdout.String()
	}
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			run("down")
		}
	})

	out := run("up")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	kubeconfig := lines[len(lines)-1]
	if kubeconfig != dir+"/kubeconfig" {
		t.Fatalf("up printed %q last, want %s/kubeconfig", kubeconfig, dir)
	}
	if kubeconfig == b.Kubeconfig {
		t.Fatal("second bed shares the first bed's kubeconfig")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ready, err := exec.CommandContext(ctx, b.Tool("kubectl"), "--kubeconfig", kubeconfig, "get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(ready)) != "ok" {
		t.Fatalf("second bed not ready: %v %s", err, ready)
	}
	pids, err := bed.Processes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) < 4 { // etcd, kube-apiserver, kwok, sim
		t.Fatalf("second bed runs %d processes, want at least 4: %v", len(pids), pids)
	}
	t.Logf("second bed %s: processes %v", name, pids)

	run("down")
	left, _ := bed.Processes(dir)
	for _, pid := range pids {
		if bed.Running(pid) {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		t.Errorf("processes left after down: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("bed directory %s left after down (%v)", dir, err)
	}
}
