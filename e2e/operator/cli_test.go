package operator

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagErrorsComeBeforeTheCluster: a bad flag of `vmdrain run` is
// reported, naming the input, with the usage exit code 2, before any
// kubeconfig is looked for (none exists here).
func TestFlagErrorsComeBeforeTheCluster(t *testing.T) {
	bin := vmdrainBin(t)
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--config", "nope"}, "--config wants NAMESPACE/NAME, not 'nope'"},
		{[]string{"run", "--config", "a/b", "--kubevirt", "kubevirt"}, "--kubevirt wants NAMESPACE/NAME, not 'kubevirt'"},
		{[]string{"run", "--config", "a/b", "--kube-api-qps", "fast"}, "--kube-api-qps wants a number"},
		{[]string{"run", "--config", "a/b", "--leader-elect=maybe"}, "--leader-elect wants true or false, not 'maybe'"},
		{[]string{"run", "--config", "a/b", "--leader-elect-lease", "vmdrain"}, "--leader-elect-lease wants NAMESPACE/NAME, not 'vmdrain'"},
		{[]string{"run", "--config", "a/b", "--leader-elect-retry-period", "1m30s"}, "--leader-elect-retry-period wants a duration"},
		{[]string{"run", "--config", "a/b", "--leader-elect-renew-deadline", "20s"},
			"the lease duration (15s) must be longer than the renew deadline (20s)"},
	} {
		cmd := exec.Command(bin, append([]string{"--kubeconfig", missing}, c.args...)...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit status 2\n%s", c.args, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%v: output lacks %q:\n%s", c.args, c.want, out)
		}
		if strings.Contains(string(out), "cluster configuration") {
			t.Errorf("%v: the kubeconfig was read before the flags were checked:\n%s", c.args, out)
		}
	}
	// good flags: now the missing kubeconfig is the error, exit 1
	out, err := exec.Command(bin, "--kubeconfig", missing, "run", "--config", "a/b").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "no-kubeconfig") {
		t.Errorf("good flags, no kubeconfig: %v\n%s", err, out)
	}
}
