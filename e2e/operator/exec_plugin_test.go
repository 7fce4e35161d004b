package operator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
)

// These tests give vmdrain and the kubectl plugin a kubeconfig whose user
// is an exec credential plugin: a shell script written by the test that
// prints an ExecCredential with a real service account token of the bed.

// execAccount makes service account ns/name bound to cluster-admin and
// returns a token of it, valid for ten minutes.
func execAccount(t *testing.T, b *bed.Bed, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := b.Kube.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}
	if _, err := b.Kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
	return tokenOf(t, b, ns, name, 600)
}

// execPlugin writes dir/plugin.sh: each run is counted in dir/runs and
// saves its KUBERNETES_EXEC_INFO in dir/info.N; run N prints what
// body(N) says (shell, $n is N).
func execPlugin(t *testing.T, dir, body string) {
	t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
d='%s'
n=$(($(cat "$d/runs" 2>/dev/null || echo 0) + 1))
echo $n > "$d/runs"
printf '%%s' "$KUBERNETES_EXEC_INFO" > "$d/info.$n"
%s
`, dir, body)
	if err := os.WriteFile(filepath.Join(dir, "plugin.sh"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
}

// execCred is the shell command printing an ExecCredential with the token
// of file tokenFile that expires life seconds from now (never when 0).
func execCred(tokenFile string, life int) string {
	exp := ""
	if life > 0 {
		exp = fmt.Sprintf(`,"expirationTimestamp":"'"$(date -u -d '+%d seconds' +%%Y-%%m-%%dT%%H:%%M:%%SZ)"'"`, life)
	}
	return fmt.Sprintf(`printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%%s"%s}}\n' "$(cat '%s')"`,
		exp, tokenFile)
}

// execRuns is how often the plugin of dir ran.
func execRuns(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "runs"))
	if os.IsNotExist(err) {
		return 0
	}
	n, err2 := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || err2 != nil {
		t.Fatalf("runs of the plugin: %v %v", err, err2)
	}
	return n
}

// execKubeconfig writes dir/kubeconfig for the bed: tokenKubeconfig's,
// whose user "sa" runs ./plugin.sh (relative to the kubeconfig's
// directory) with the cluster's details instead of reading a token file.
func execKubeconfig(t *testing.T, b *bed.Bed, dir string) string {
	t.Helper()
	const mark = "@token-file@"
	base, err := os.ReadFile(tokenKubeconfig(t, b, mark))
	if err != nil {
		t.Fatal(err)
	}
	kc := strings.Replace(string(base), "    tokenFile: "+mark+"\n", `    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./plugin.sh
      args: [get-token]
      provideClusterInfo: true
      interactiveMode: Never
      installHint: the test writes plugin.sh
`, 1)
	if kc == string(base) {
		t.Fatalf("no tokenFile line to replace in:\n%s", base)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startExecVmdrain runs vmdrain with the kubeconfig, on a Lease of its own,
// and returns it with its metrics address.
func startExecVmdrain(t *testing.T, kubeconfig string) (*proc, string) {
	t.Helper()
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startVmdrainAs(t, kubeconfig, cfgNS+"/"+cfgName, "--metrics-listen", metrics,
		"--leader-elect-lease", fmt.Sprintf("%s/vmdrain-e2e-%d-%d", cfgNS, os.Getpid(), leaseSeq.Add(1)))
	return p, metrics
}

// TestExecPluginTokenIsRefreshedBeforeItExpires: vmdrain gets its token
// from the plugin (credentials that expire every 8 s), becomes ready and
// lists, runs the plugin again before each expiry; the kubectl plugin and
// `vmdrain debug list` work with the same kubeconfig.
func TestExecPluginTokenIsRefreshedBeforeItExpires(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	setConfig(t, b, "LiveMigration", "")
	dir := t.TempDir()
	tok := execAccount(t, b, ns, "exec-user")
	writeFiles(t, dir, 0o600, map[string][]byte{"token": []byte(tok)})
	execPlugin(t, dir, `[ "$1" = get-token ] || exit 9
`+execCred(filepath.Join(dir, "token"), 8))
	kc := execKubeconfig(t, b, dir)

	p, metrics := startExecVmdrain(t, kc)
	waitReady(t, metrics, 90*time.Second)
	waitLog(t, p.log, 30*time.Second, "configuration applied")
	ran := execRuns(t, dir)
	// the Lease is renewed every 2 s: each renewal is a request, and the
	// credential is fetched again once fewer than 4 s (half of 8) remain
	waitLog(t, p.log, 60*time.Second, "exec credential plugin refreshed the credential",
		"command=./plugin.sh", "trigger=expiry", "changed=false")
	if err := bed.Eventually(context.Background(), 60*time.Second, func(context.Context) (bool, error) {
		return execRuns(t, dir) >= ran+3, nil
	}); err != nil {
		t.Fatalf("the plugin ran %d times in all, %d since vmdrain was ready; want 3 more runs after expiries",
			execRuns(t, dir), execRuns(t, dir)-ran)
	}
	info, err := os.ReadFile(filepath.Join(dir, "info.1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"spec":{"interactive":false,"cluster":{"server":%q`, strings.TrimRight(b.Config.Host, "/")); !strings.Contains(string(info), want) {
		t.Errorf("KUBERNETES_EXEC_INFO %s lacks %s", info, want)
	}
	select {
	case err := <-p.done:
		t.Fatalf("vmdrain ended: %v", err)
	default:
	}
	if data, _ := os.ReadFile(p.log); strings.Contains(string(data), tok) {
		t.Error("the token appears in vmdrain's log")
	}

	before := execRuns(t, dir)
	r := runCmd(t, exec.Command(pluginBin(t), "--kubeconfig", kc, "status"))
	if r.code != 0 || execRuns(t, dir) <= before {
		t.Errorf("kubectl-vmdrain status with the exec user: exit %d, plugin runs %d → %d\n%s%s",
			r.code, before, execRuns(t, dir), r.stdout, r.stderr)
	}
	out, errOut, err := debugRun(t, kc, "list", "configmaps", "-n", cfgNS)
	if err != nil || !strings.Contains(out, cfgName) {
		t.Errorf("vmdrain debug list configmaps with the exec user: %v\n%s%s", err, out, errOut)
	}
}

// TestExecPluginRunsAgainAfterA401: the plugin's first credential is not a
// token the API server knows (and never expires); the 401 it earns makes
// vmdrain run the plugin again, whose real token makes it ready.
func TestExecPluginRunsAgainAfterA401(t *testing.T) {
	b := bed.OpenT(t)
	ns := b.Namespace(t)
	setConfig(t, b, "LiveMigration", "")
	dir := t.TempDir()
	writeFiles(t, dir, 0o600, map[string][]byte{
		"token": []byte(execAccount(t, b, ns, "exec-401")),
		"bogus": []byte("not-a-token-of-this-cluster-0123456789")})
	execPlugin(t, dir, fmt.Sprintf("if [ $n = 1 ]; then %s; else %s; fi",
		execCred(filepath.Join(dir, "bogus"), 0), execCred(filepath.Join(dir, "token"), 0)))
	p, metrics := startExecVmdrain(t, execKubeconfig(t, b, dir))
	waitReady(t, metrics, 90*time.Second)
	waitLog(t, p.log, 5*time.Second, "exec credential plugin refreshed the credential",
		"expires=never", "trigger=401", "changed=true")
	if n := execRuns(t, dir); n != 2 {
		t.Errorf("the plugin ran %d times, want 2 (at start, after the 401)", n)
	}
}

// TestExecPluginFailureStopsVmdrain: a plugin that exits 1 stops vmdrain
// (and the kubectl plugin) at start with a message naming the command,
// its exit code and what it said on stderr.
func TestExecPluginFailureStopsVmdrain(t *testing.T) {
	b := bed.OpenT(t)
	dir := t.TempDir()
	execPlugin(t, dir, "echo 'no credentials for the e2e user' >&2\nexit 1")
	kc := execKubeconfig(t, b, dir)
	want := `exec credential plugin \"./plugin.sh\": exit code 1: no credentials for the e2e user`

	p, _ := startExecVmdrain(t, kc)
	select {
	case err := <-p.done:
		if err == nil {
			t.Error("vmdrain exited 0")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("vmdrain still runs with a failing exec plugin")
	}
	data, _ := os.ReadFile(p.log)
	if !strings.Contains(string(data), want) || !strings.Contains(string(data), `user \"sa\"`) {
		t.Errorf("vmdrain's log lacks %s:\n%s", want, data)
	}

	r := runCmd(t, exec.Command(pluginBin(t), "--kubeconfig", kc, "status"))
	if r.code != 1 || !strings.Contains(r.stderr, strings.ReplaceAll(want, `\"`, `"`)) &&
		!strings.Contains(r.stderr, want) {
		t.Errorf("kubectl-vmdrain status: exit %d, want 1 with %s:\n%s", r.code, want, r.stderr)
	}
	if n := execRuns(t, dir); n != 2 {
		t.Errorf("the plugin ran %d times, want once per program", n)
	}
}
