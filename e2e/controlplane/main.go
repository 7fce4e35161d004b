// Command controlplane builds the test bed's real binaries (kube-apiserver,
// kubectl, etcd, kwok, helm) from Go modules into a version-keyed cache.
//
// Each tool is built inside a throw-away wrapper module that requires the
// tool's module, so the tool's dependency versions never meet those of any
// other tool or of the tests. A cached binary is never rebuilt; a new one is
// written to a temporary file and renamed into place.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// tool describes one module to build.
type tool struct {
	name    string            // cache key prefix, e.g. "kube" → kube-v1.37.2/
	module  string            // module path
	pkgs    map[string]string // binary name → package path
	ldflags func(version string) []string
	// extra writes further files next to the binaries from the module's
	// source directory; extraFiles names them for the cache check.
	extra      func(modDir, dir string) error
	extraFiles []string
}

var tools = map[string]tool{
	"kube": {
		name:   "kube",
		module: "k8s.io/kubernetes",
		pkgs: map[string]string{
			"kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
			"kubectl":        "k8s.io/kubernetes/cmd/kubectl",
		},
		ldflags: kubeLDFlags,
	},
	"etcd": {
		name:   "etcd",
		module: "go.etcd.io/etcd/server/v3",
		pkgs:   map[string]string{"etcd": "go.etcd.io/etcd/server/v3"},
		ldflags: func(v string) []string {
			return []string{"-X", "go.etcd.io/etcd/api/v3/version.GitSHA=" + v}
		},
	},
	"kwok": {
		name:   "kwok",
		module: "sigs.k8s.io/kwok",
		pkgs:   map[string]string{"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
		ldflags: func(v string) []string {
			return []string{"-X", "sigs.k8s.io/kwok/pkg/consts.Version=" + strings.TrimPrefix(v, "v")}
		},
		extra:      kwokStages,
		extraFiles: []string{"stages.yaml"},
	},
	"helm": {
		name:   "helm",
		module: "helm.sh/helm/v3",
		pkgs:   map[string]string{"helm": "helm.sh/helm/v3/cmd/helm"},
		ldflags: func(v string) []string {
			return []string{
				"-X", "helm.sh/helm/v3/internal/version.version=" + v,
				"-X", "helm.sh/helm/v3/internal/version.gitTreeState=clean",
			}
		},
	},
}

func kubeLDFlags(v string) []string {
	major, minor := "1", ""
	if parts := strings.Split(strings.TrimPrefix(v, "v"), "."); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	vars := map[string]string{
		"gitVersion":   v,
		"gitMajor":     major,
		"gitMinor":     minor,
		"gitCommit":    "0000000000000000000000000000000000000000",
		"gitTreeState": "clean",
		"buildDate":    time.Now().UTC().Format("2006-01-02T15:04:05Z"),
	}
	var out []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		for k, val := range vars {
			out = append(out, "-X", pkg+"."+k+"="+val)
		}
	}
	return out
}

// modInfo is the part of `go mod download -json` output used here.
type modInfo struct {
	Dir     string
	Version string
	GoMod   string
	Error   string
}

// goModFile is the part of `go mod edit -json` output used here.
type goModFile struct {
	Go      string
	Require []struct{ Path, Version string }
	Replace []struct {
		Old struct{ Path, Version string }
		New struct{ Path, Version string }
	}
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("controlplane: ")
	cache := flag.String("cache", "", "cache directory (binaries go to <cache>/<tool>-<version>/)")
	name := flag.String("tool", "", "kube, etcd, kwok or helm")
	versions := flag.String("versions", "", "space-separated candidate versions, newest first; the first that builds with this Go wins")
	flag.Parse()
	t, ok := tools[*name]
	if *cache == "" || !ok || *versions == "" {
		flag.Usage()
		os.Exit(2)
	}
	var errs []string
	for _, v := range strings.Fields(*versions) {
		dir := filepath.Join(*cache, t.name+"-"+v)
		if cached(dir, t) {
			log.Printf("%s %s: cached in %s", t.module, v, dir)
		} else if err := build(t, v, dir); err != nil {
			log.Printf("%s %s: %v", t.module, v, err)
			errs = append(errs, fmt.Sprintf("%s@%s: %v", t.module, v, err))
			continue
		}
		if err := extras(t, v, dir); err != nil {
			log.Fatalf("%s %s: %v", t.module, v, err)
		}
		fmt.Println(dir)
		return
	}
	log.Fatalf("no candidate version of %s builds:\n  %s", t.module, strings.Join(errs, "\n  "))
}

// extras writes the tool's extra files when they are missing.
func extras(t tool, version, dir string) error {
	missing := false
	for _, f := range t.extraFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	info, err := download(t.module + "@" + version)
	if err != nil {
		return err
	}
	return t.extra(info.Dir, dir)
}

func cached(dir string, t tool) bool {
	for bin := range t.pkgs {
		if st, err := os.Stat(filepath.Join(dir, bin)); err != nil || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

func build(t tool, version, dir string) error {
	start := time.Now()
	info, err := download(t.module + "@" + version)
	if err != nil {
		return err
	}
	mod, err := readGoMod(info.GoMod)
	if err != nil {
		return err
	}
	if !goSupports(mod.Go) {
		return fmt.Errorf("go.mod requires go %s, this is %s", mod.Go, runtime.Version())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Leftovers of an interrupted build (bed.sh serialises builds with a lock).
	if old, _ := filepath.Glob(filepath.Join(dir, ".build-*")); len(old) > 0 {
		for _, o := range old {
			os.RemoveAll(o)
		}
	}
	work, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	var gomod bytes.Buffer
	fmt.Fprintf(&gomod, "module vmdrain.io/e2e/controlplane/wrapper\n\ngo %s\n\nrequire %s %s\n", mod.Go, t.module, version)
	for _, r := range stagingReplaces(mod, version) {
		fmt.Fprintf(&gomod, "\nreplace %s => %s %s\n", r[0], r[1], r[2])
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), gomod.Bytes(), 0o644); err != nil {
		return err
	}
	ldflags := strings.Join(append([]string{"-s", "-w"}, quote(t.ldflags(version))...), " ")
	for bin, pkg := range t.pkgs {
		log.Printf("building %s from %s@%s ...", bin, t.module, version)
		tmp := filepath.Join(work, bin)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, pkg)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %v", pkg, err)
		}
		// The work directory is inside dir, so this rename is atomic.
		if err := os.Rename(tmp, filepath.Join(dir, bin)); err != nil {
			return err
		}
	}
	log.Printf("built %s %s in %s", t.module, version, time.Since(start).Round(time.Second))
	return nil
}

// quote wraps -X values containing spaces so the linker flag parser keeps them whole.
func quote(flags []string) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		if strings.ContainsAny(f, " \t") {
			f = "'" + f + "'"
		}
		out[i] = f
	}
	return out
}

// stagingReplaces returns, for every module required at v0.0.0 and replaced
// by a local path in the tool's go.mod (Kubernetes' staging repositories),
// a replacement with its published tag: k8s.io/kubernetes v1.X.Y publishes
// its staging modules as v0.X.Y.
func stagingReplaces(mod *goModFile, version string) [][3]string {
	local := map[string]bool{}
	for _, r := range mod.Replace {
		if r.New.Version == "" && (strings.HasPrefix(r.New.Path, "./") || strings.HasPrefix(r.New.Path, "../")) {
			local[r.Old.Path] = true
		}
	}
	tag := "v0" + strings.TrimPrefix(version, "v1")
	var out [][3]string
	for _, req := range mod.Require {
		if req.Version == "v0.0.0" && local[req.Path] {
			out = append(out, [3]string{req.Path, req.Path, tag})
		}
	}
	return out
}

func download(modVersion string) (*modInfo, error) {
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	cmd.Stderr = os.Stderr
	cmd.Dir = os.TempDir()
	out, err := cmd.Output()
	var info modInfo
	if jerr := json.Unmarshal(out, &info); jerr != nil {
		return nil, fmt.Errorf("go mod download %s: %v %v", modVersion, err, jerr)
	}
	if info.Error != "" {
		return nil, fmt.Errorf("go mod download %s: %s", modVersion, info.Error)
	}
	return &info, err
}

func readGoMod(path string) (*goModFile, error) {
	out, err := exec.Command("go", "mod", "edit", "-json", path).Output()
	if err != nil {
		return nil, fmt.Errorf("go mod edit -json %s: %v", path, err)
	}
	var f goModFile
	return &f, json.Unmarshal(out, &f)
}

// goSupports reports whether this Go toolchain can build a module declaring "go want".
func goSupports(want string) bool {
	have := strings.TrimPrefix(runtime.Version(), "go")
	return compareVersions(want, have) <= 0
}

// compareVersions compares dotted numeric versions like 1.26.0 and 1.26.8.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			fmt.Sscanf(pa[i], "%d", &x)
		}
		if i < len(pb) {
			fmt.Sscanf(pb[i], "%d", &y)
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// kwokStages writes stages.yaml: kwok's own default stages of this version
// (node: initialize + heartbeat; pod: ready, complete, delete), so that nodes
// become Ready, pods on them Running, and every deletion, graceful or not,
// completes.
func kwokStages(modDir, dir string) error {
	var out bytes.Buffer
	for _, f := range []string{
		"kustomize/stage/node/fast/node-initialize.yaml",
		"kustomize/stage/node/heartbeat/node-heartbeat.yaml",
		"kustomize/stage/pod/fast/pod-ready.yaml",
		"kustomize/stage/pod/fast/pod-complete.yaml",
		"kustomize/stage/pod/fast/pod-delete.yaml",
	} {
		data, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "---\n# from sigs.k8s.io/kwok %s\n%s\n", f, bytes.TrimSpace(data))
	}
	return writeAtomic(filepath.Join(dir, "stages.yaml"), out.Bytes())
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
