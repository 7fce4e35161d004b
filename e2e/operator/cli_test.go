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
		// the global options after the command
		{[]string{"run", "--config", "a/b", "--log-level", "loud"}, "--log-level wants debug, info, warn or error, not 'loud'"},
		{[]string{"run", "--config", "a/b", "--context"}, "missing argument for option '--context'"},
		{[]string{"check"}, "nothing to check: give --readyz, --eviction or both"},
		{[]string{"check", "--eviction", "default"}, "--eviction wants NAMESPACE/NAME, not 'default'"},
		{[]string{"check", "--eviction", "a/B\"x"}, "--eviction wants NAMESPACE/NAME of lower-case letters"},
		{[]string{"check", "--readyz", "localhost:8080"}, "--readyz wants http://HOST:PORT/PATH"},
		{[]string{"check", "--eviction", "a/b", "--timeout", "soon"}, "--timeout wants a duration such as 30s, not 'soon'"},
		{[]string{"version", "--short"}, "vmdrain version: takes no arguments, not '--short'"},
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
	// good flags: now the missing kubeconfig is the error, exit 1, with
	// --kubeconfig before or after the command
	for _, args := range [][]string{{"--kubeconfig", missing, "run", "--config", "a/b"},
		{"run", "--config", "a/b", "--kubeconfig", missing}, {"run", "--config", "a/b", "--kubeconfig=" + missing},
		{"check", "--eviction", "a/b", "--kubeconfig", missing}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "no-kubeconfig") {
			t.Errorf("%v (good flags, no kubeconfig): %v\n%s", args, err, out)
		}
	}
	// version: the version, the revision, the build date and the libraries
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("vmdrain version: %v\n%s", err, out)
	}
	for _, want := range []string{"vmdrain ", "\nrevision: ", "\nbuilt: ", "\nlibraries: libcurl ", "OpenSSL", "libyaml", "yajl", "libev", "http-parser"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("vmdrain version lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "revision: unknown") {
		t.Errorf("vmdrain version knows no revision (built from a git checkout):\n%s", out)
	}
}
