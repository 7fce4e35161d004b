package kubevirt

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ClaimLookup returns the access modes of the PVC ns/name, and whether it exists.
type ClaimLookup func(namespace, name string) ([]corev1.PersistentVolumeAccessMode, bool)

// Migratability is the outcome of the LiveMigratable computation.
type Migratability struct {
	Migratable bool
	Reason     string // DisksNotLiveMigratable or InterfaceNotLiveMigratable when not migratable
	Message    string
	Method     string // BlockMigration or LiveMigration
}

// Migratable decides, as KubeVirt does, whether a VMI can be live-migrated:
//   - every PVC (or DataVolume's PVC) must be ReadWriteMany: shared storage;
//   - a host disk must be marked shared;
//   - a bridge binding on the pod network is not migratable (masquerade is);
//   - node-local disks (containerDisk, emptyDisk, ephemeral) are copied, which
//     makes the migration a BlockMigration rather than a LiveMigration.
//
// Config volumes (cloud-init, configMap, secret, ...) are recreated on the
// target and count for nothing.
func Migratable(vmi *VMI, claims ClaimLookup) Migratability {
	block := false
	for _, v := range vmi.Spec.Volumes {
		claim := ""
		switch {
		case v.PersistentVolumeClaim != nil:
			claim = v.PersistentVolumeClaim.ClaimName
		case v.DataVolume != nil:
			claim = v.DataVolume.Name
		case v.HostDisk != nil:
			if v.HostDisk.Shared == nil || !*v.HostDisk.Shared {
				return notMigratable(ReasonDisksNotLM, "cannot migrate VMI with non-shared HostDisk")
			}
		case v.ContainerDisk != nil, v.EmptyDisk != nil, v.Ephemeral != nil:
			block = true
		}
		if claim == "" {
			continue
		}
		modes, ok := claims(vmi.Namespace, claim)
		if !ok {
			return notMigratable(ReasonDisksNotLM, fmt.Sprintf("cannot migrate VMI: PVC %s not found", claim))
		}
		if !hasMode(modes, corev1.ReadWriteMany) {
			return notMigratable(ReasonDisksNotLM, fmt.Sprintf(
				"cannot migrate VMI: PVC %s is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)", claim))
		}
	}

	podNetworks := map[string]bool{}
	for _, n := range vmi.Spec.Networks {
		if n.Pod != nil {
			podNetworks[n.Name] = true
		}
	}
	for _, iface := range vmi.Spec.Domain.Devices.Interfaces {
		if iface.Bridge != nil && podNetworks[iface.Name] {
			return notMigratable(ReasonInterfaceNotLM, "cannot migrate VMI which does not use masquerade to connect to the pod network")
		}
	}

	m := Migratability{Migratable: true, Method: MethodLive}
	if block {
		m.Method = MethodBlock
	}
	return m
}

func notMigratable(reason, msg string) Migratability {
	return Migratability{Reason: reason, Message: msg, Method: MethodLive}
}

func hasMode(modes []corev1.PersistentVolumeAccessMode, want corev1.PersistentVolumeAccessMode) bool {
	for _, m := range modes {
		if m == want {
			return true
		}
	}
	return false
}

// GuestMemory is the memory a migration has to copy: spec.domain.memory.guest,
// else spec.domain.resources.requests.memory, else 0.
func GuestMemory(vmi *VMI) int64 {
	if m := vmi.Spec.Domain.Memory; m != nil && m.Guest != nil {
		return m.Guest.Value()
	}
	if q, ok := vmi.Spec.Domain.Resources.Requests["memory"]; ok {
		return q.Value()
	}
	return 0
}

// Condition returns the LiveMigratable condition for a migratability result
// (timestamps left for the caller).
func (m Migratability) Condition() Condition {
	if m.Migratable {
		return Condition{Type: ConditionMigratable, Status: "True"}
	}
	return Condition{Type: ConditionMigratable, Status: "False", Reason: m.Reason, Message: m.Message}
}

// MatchPolicy returns the MigrationPolicy that applies to a VMI, or nil.
//
// KubeVirt's rule: a policy matches when every label of its
// virtualMachineInstanceSelector is on the VMI and every label of its
// namespaceSelector is on the VMI's namespace (a policy without selectors
// matches nothing; empty selectors match everything). Among matching
// policies the one with more matching labels wins; on a tie, the one with
// more matching VMI labels; then the lexicographically smallest name.
func MatchPolicy(policies []*MigrationPolicy, vmiLabels, nsLabels map[string]string) *MigrationPolicy {
	type scored struct {
		p       *MigrationPolicy
		vmi, ns int
	}
	var best []scored
	for _, p := range policies {
		if p.Spec.Selectors == nil {
			continue
		}
		vmiN, ok1 := countMatches(p.Spec.Selectors.VirtualMachineInstanceSelector, vmiLabels)
		nsN, ok2 := countMatches(p.Spec.Selectors.NamespaceSelector, nsLabels)
		if ok1 && ok2 {
			best = append(best, scored{p, vmiN, nsN})
		}
	}
	if len(best) == 0 {
		return nil
	}
	sort.Slice(best, func(i, j int) bool {
		a, b := best[i], best[j]
		if a.vmi+a.ns != b.vmi+b.ns {
			return a.vmi+a.ns > b.vmi+b.ns
		}
		if a.vmi != b.vmi {
			return a.vmi > b.vmi
		}
		return a.p.Name < b.p.Name
	})
	return best[0].p
}

func countMatches(selector, labels map[string]string) (int, bool) {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return 0, false
		}
	}
	return len(selector), true
}

// MigrationSettings are the settings that govern one migration.
type MigrationSettings struct {
	Policy                  string // name of the matching MigrationPolicy, "" for none
	Bandwidth               int64  // bytes per second
	CompletionTimeoutPerGiB int64  // seconds
	AllowConvergence        bool   // auto-converge or post-copy allowed: a dirty rate cannot stall it
}

// Settings applies a matching policy (may be nil) over cluster defaults.
func Settings(p *MigrationPolicy, defaults MigrationSettings) MigrationSettings {
	s := defaults
	if p == nil {
		return s
	}
	s.Policy = p.Name
	if q := p.Spec.BandwidthPerMigration; q != nil {
		s.Bandwidth = q.Value() // 0 means unlimited, as in KubeVirt
	}
	if t := p.Spec.CompletionTimeoutPerGiB; t != nil {
		s.CompletionTimeoutPerGiB = *t
	}
	if (p.Spec.AllowAutoConverge != nil && *p.Spec.AllowAutoConverge) || (p.Spec.AllowPostCopy != nil && *p.Spec.AllowPostCopy) {
		s.AllowConvergence = true
	}
	return s
}

// ParseQuantity parses a quantity like "64Mi" into its integer value.
func ParseQuantity(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, err
	}
	return q.Value(), nil
}
