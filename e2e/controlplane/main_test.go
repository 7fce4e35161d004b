package main

import (
	"encoding/json"
	"slices"
	"testing"
)

// The shape `go mod edit -json` prints for Kubernetes' go.mod, abridged.
const kubeGoMod = `{
	"Go": "1.26.0",
	"Require": [
		{"Path": "k8s.io/api", "Version": "v0.0.0"},
		{"Path": "k8s.io/client-go", "Version": "v0.0.0"},
		{"Path": "k8s.io/klog/v2", "Version": "v2.140.0"},
		{"Path": "k8s.io/utils", "Version": "v0.0.0-20260210185600-b8788abfbbc2"},
		{"Path": "example.com/pinned", "Version": "v0.0.0"}
	],
	"Replace": [
		{"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
		{"Old": {"Path": "k8s.io/client-go"}, "New": {"Path": "./staging/src/k8s.io/client-go"}},
		{"Old": {"Path": "k8s.io/sample-controller"}, "New": {"Path": "./staging/src/k8s.io/sample-controller"}},
		{"Old": {"Path": "example.com/pinned"}, "New": {"Path": "example.com/fork", "Version": "v1.0.0"}}
	]
}`

func TestStagingReplaces(t *testing.T) {
	var mod goModFile
	if err := json.Unmarshal([]byte(kubeGoMod), &mod); err != nil {
		t.Fatal(err)
	}
	got := stagingReplaces(&mod, "v1.37.2")
	want := [][3]string{
		{"k8s.io/api", "k8s.io/api", "v0.37.2"},
		{"k8s.io/client-go", "k8s.io/client-go", "v0.37.2"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.26.0", "1.26.8", -1},
		{"1.26", "1.26.0", 0},
		{"1.27", "1.26.8", 1},
		{"1.26.10", "1.26.8", 1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestKubeLDFlags(t *testing.T) {
	flags := kubeLDFlags("v1.37.2")
	for _, want := range []string{
		"k8s.io/component-base/version.gitVersion=v1.37.2",
		"k8s.io/component-base/version.gitMajor=1",
		"k8s.io/component-base/version.gitMinor=37",
		"k8s.io/client-go/pkg/version.gitVersion=v1.37.2",
		"k8s.io/client-go/pkg/version.gitTreeState=clean",
	} {
		if !slices.Contains(flags, want) {
			t.Errorf("ldflags lack %s", want)
		}
	}
}

func TestHelmKubeLDFlags(t *testing.T) {
	mod := &goModFile{Require: []struct{ Path, Version string }{{"k8s.io/api", "v0.37.0"}, {"k8s.io/client-go", "v0.37.0"}}}
	flags := helmKubeLDFlags(mod)
	for _, want := range []string{
		"helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
		"helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37",
		"helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
		"helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37",
	} {
		if !slices.Contains(flags, want) {
			t.Errorf("helm's ldflags lack %s: %q", want, flags)
		}
	}
	if f := helmKubeLDFlags(&goModFile{}); f != nil {
		t.Errorf("without client-go: %q, want none", f)
	}
}
