package kubevirt

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func claims(modes map[string]corev1.PersistentVolumeAccessMode) ClaimLookup {
	return func(_, name string) ([]corev1.PersistentVolumeAccessMode, bool) {
		m, ok := modes[name]
		return []corev1.PersistentVolumeAccessMode{m}, ok
	}
}

func TestMigratable(t *testing.T) {
	pvcs := claims(map[string]corev1.PersistentVolumeAccessMode{
		"shared": corev1.ReadWriteMany,
		"local":  corev1.ReadWriteOnce,
	})
	yes := true
	podNet := []Network{{Name: "default", Pod: &struct{}{}}}
	cases := []struct {
		name    string
		spec    VMISpec
		ok      bool
		reason  string
		method  string
		message string
	}{
		{name: "no volumes", ok: true, method: MethodLive},
		{name: "rwx pvc", spec: VMISpec{Volumes: []Volume{{Name: "d", PersistentVolumeClaim: &ClaimRef{"shared"}}}}, ok: true, method: MethodLive},
		{name: "rwo pvc", spec: VMISpec{Volumes: []Volume{{Name: "d", PersistentVolumeClaim: &ClaimRef{"local"}}}},
			reason: ReasonDisksNotLM, message: "PVC local is not shared"},
		{name: "rwo data volume", spec: VMISpec{Volumes: []Volume{{Name: "d", DataVolume: &NameRef{"local"}}}}, reason: ReasonDisksNotLM},
		{name: "missing pvc", spec: VMISpec{Volumes: []Volume{{Name: "d", PersistentVolumeClaim: &ClaimRef{"gone"}}}},
			reason: ReasonDisksNotLM, message: "not found"},
		{name: "container disk copies", spec: VMISpec{Volumes: []Volume{{Name: "d", ContainerDisk: &struct{}{}}}}, ok: true, method: MethodBlock},
		{name: "cloud-init does not", spec: VMISpec{Volumes: []Volume{{Name: "c", CloudInitNoCloud: &struct{}{}}}}, ok: true, method: MethodLive},
		{name: "local host disk", spec: VMISpec{Volumes: []Volume{{Name: "h", HostDisk: &HostDisk{Path: "/x"}}}}, reason: ReasonDisksNotLM},
		{name: "shared host disk", spec: VMISpec{Volumes: []Volume{{Name: "h", HostDisk: &HostDisk{Path: "/x", Shared: &yes}}}}, ok: true, method: MethodLive},
		{name: "bridge on pod network", spec: VMISpec{Networks: podNet,
			Domain: Domain{Devices: Devices{Interfaces: []Interface{{Name: "default", Bridge: &struct{}{}}}}}},
			reason: ReasonInterfaceNotLM, message: "masquerade"},
		{name: "masquerade on pod network", spec: VMISpec{Networks: podNet,
			Domain: Domain{Devices: Devices{Interfaces: []Interface{{Name: "default", Masquerade: &struct{}{}}}}}}, ok: true, method: MethodLive},
		{name: "bridge on secondary network", spec: VMISpec{Networks: []Network{{Name: "sec"}},
			Domain: Domain{Devices: Devices{Interfaces: []Interface{{Name: "sec", Bridge: &struct{}{}}}}}}, ok: true, method: MethodLive},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vmi := &VMI{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "vm"}, Spec: c.spec}
			got := Migratable(vmi, pvcs)
			if got.Migratable != c.ok || got.Reason != c.reason {
				t.Fatalf("got %+v, want migratable=%v reason=%q", got, c.ok, c.reason)
			}
			if c.ok && got.Method != c.method {
				t.Errorf("method %q, want %q", got.Method, c.method)
			}
			if !strings.Contains(got.Message, c.message) {
				t.Errorf("message %q does not contain %q", got.Message, c.message)
			}
			cond := got.Condition()
			if want := map[bool]string{true: "True", false: "False"}[c.ok]; cond.Status != want || cond.Type != ConditionMigratable {
				t.Errorf("condition %+v", cond)
			}
		})
	}
}

func policy(name string, vmiSel, nsSel map[string]string) *MigrationPolicy {
	p := &MigrationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if vmiSel != nil || nsSel != nil {
		p.Spec.Selectors = &Selectors{VirtualMachineInstanceSelector: vmiSel, NamespaceSelector: nsSel}
	}
	return p
}

func TestMatchPolicy(t *testing.T) {
	vmiLabels := map[string]string{"tier": "db", "os": "linux"}
	nsLabels := map[string]string{"team": "a"}
	empty := map[string]string{}
	cases := []struct {
		name     string
		policies []*MigrationPolicy
		want     string
	}{
		{"none", nil, ""},
		{"no selectors matches nothing", []*MigrationPolicy{policy("p", nil, nil)}, ""},
		{"empty selectors match all", []*MigrationPolicy{policy("p", empty, nil)}, "p"},
		{"mismatching label", []*MigrationPolicy{policy("p", map[string]string{"tier": "web"}, nil)}, ""},
		{"missing label", []*MigrationPolicy{policy("p", map[string]string{"zone": "x"}, nil)}, ""},
		{"namespace mismatch", []*MigrationPolicy{policy("p", nil, map[string]string{"team": "b"})}, ""},
		{"more labels win", []*MigrationPolicy{
			policy("a-one", map[string]string{"tier": "db"}, nil),
			policy("z-two", map[string]string{"tier": "db", "os": "linux"}, nil),
		}, "z-two"},
		{"vmi and namespace labels add up", []*MigrationPolicy{
			policy("a-vmi", map[string]string{"tier": "db"}, nil),
			policy("b-both", map[string]string{"tier": "db"}, map[string]string{"team": "a"}),
		}, "b-both"},
		{"tie: more vmi labels win", []*MigrationPolicy{
			policy("a-ns", nil, map[string]string{"team": "a"}),
			policy("b-vmi", map[string]string{"os": "linux"}, nil),
		}, "b-vmi"},
		{"full tie: smallest name", []*MigrationPolicy{
			policy("b", map[string]string{"os": "linux"}, nil),
			policy("a", map[string]string{"tier": "db"}, nil),
		}, "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := MatchPolicy(c.policies, vmiLabels, nsLabels)
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != c.want {
				t.Fatalf("matched %q, want %q", name, c.want)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	def := MigrationSettings{Bandwidth: 64 << 20, CompletionTimeoutPerGiB: 800}
	if s := Settings(nil, def); s != def {
		t.Fatalf("no policy: %+v", s)
	}
	bw := resource.MustParse("128Mi")
	per := int64(10)
	yes := true
	p := &MigrationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "fast"},
		Spec: MigrationPolicySpec{BandwidthPerMigration: &bw, CompletionTimeoutPerGiB: &per, AllowPostCopy: &yes}}
	want := MigrationSettings{Policy: "fast", Bandwidth: 128 << 20, CompletionTimeoutPerGiB: 10, AllowConvergence: true}
	if s := Settings(p, def); s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestGuestMemory(t *testing.T) {
	g := resource.MustParse("2Gi")
	vmi := &VMI{Spec: VMISpec{Domain: Domain{
		Memory:    &Memory{Guest: &g},
		Resources: Resources{Requests: map[string]resource.Quantity{"memory": resource.MustParse("3Gi")}},
	}}}
	if got := GuestMemory(vmi); got != 2<<30 {
		t.Fatalf("guest: %d", got)
	}
	vmi.Spec.Domain.Memory = nil
	if got := GuestMemory(vmi); got != 3<<30 {
		t.Fatalf("requests: %d", got)
	}
}

func TestPlan(t *testing.T) {
	mi := int64(1 << 20)
	set := MigrationSettings{Bandwidth: 64 * mi, CompletionTimeoutPerGiB: 800}
	cases := []struct {
		name     string
		tr       Transfer
		succeeds bool
		aborted  bool
		after    time.Duration
	}{
		{"memory over bandwidth", Transfer{Bytes: 2 << 30, Settings: set, ProgressTimeout: 150 * time.Second}, true, false, 32 * time.Second},
		{"dirty rate slows", Transfer{Bytes: 2 << 30, DirtyRate: 32 * mi, Settings: set, ProgressTimeout: 150 * time.Second}, true, false, 64 * time.Second},
		{"never converges: progress timeout", Transfer{Bytes: 2 << 30, DirtyRate: 64 * mi, Settings: set, ProgressTimeout: 150 * time.Second}, false, true, 150 * time.Second},
		{"never converges: completion first", Transfer{Bytes: 1 << 30, DirtyRate: 100 * mi,
			Settings: MigrationSettings{Bandwidth: 64 * mi, CompletionTimeoutPerGiB: 60}, ProgressTimeout: 150 * time.Second}, false, true, 60 * time.Second},
		{"too slow for completion timeout", Transfer{Bytes: 4 << 30, Settings: MigrationSettings{Bandwidth: mi, CompletionTimeoutPerGiB: 800}, ProgressTimeout: 150 * time.Second}, false, true, 3200 * time.Second},
		{"post-copy converges", Transfer{Bytes: 2 << 30, DirtyRate: 128 * mi,
			Settings: MigrationSettings{Bandwidth: 64 * mi, CompletionTimeoutPerGiB: 800, AllowConvergence: true}, ProgressTimeout: time.Second}, true, false, 32 * time.Second},
		{"injected failure halfway", Transfer{Bytes: 2 << 30, Settings: set, ProgressTimeout: 150 * time.Second, FailAttempt: true}, false, false, 16 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.tr.Plan()
			if o.Succeeds != c.succeeds || o.Aborted != c.aborted || o.After != c.after {
				t.Fatalf("got %+v, want succeeds=%v aborted=%v after=%s", o, c.succeeds, c.aborted, c.after)
			}
			if !o.Succeeds && o.Reason == "" {
				t.Error("failure without reason")
			}
		})
	}
}
