// Package kubevirt holds the small part of KubeVirt's API that the test bed
// reads and writes, and the pure rules the simulator applies to it
// (LiveMigratable, migration method, migration policy matching).
//
// The types mirror KubeVirt's JSON field names; only the fields the bed uses
// are declared. Objects travel as unstructured data and are converted with
// FromUnstructured, so fields not declared here are never lost: every write
// is a merge patch of the fields that change.
package kubevirt

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group versions and resources of the fixture CRDs.
var (
	VMIResource       = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstances"}
	MigrationResource = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstancemigrations"}
	PolicyResource    = schema.GroupVersionResource{Group: "migrations.kubevirt.io", Version: "v1alpha1", Resource: "migrationpolicies"}
	KubeVirtResource  = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "kubevirts"}
)

// Labels, annotations and other names KubeVirt uses.
const (
	AppLabel             = "kubevirt.io"                 // pod label, value virt-launcher
	LauncherValue        = "virt-launcher"               // value of AppLabel on launcher pods
	DomainAnnotation     = "kubevirt.io/domain"          // launcher pod → VMI name
	NodeNameLabel        = "kubevirt.io/nodeName"        // on the VMI
	MigrationJobLabel    = "kubevirt.io/migrationJobUID" // on a migration target pod
	MigrationFinalizer   = "kubevirt.io/migrationJobFinalize"
	ConditionMigratable  = "LiveMigratable"
	ReasonDisksNotLM     = "DisksNotLiveMigratable"
	ReasonInterfaceNotLM = "InterfaceNotLiveMigratable"
	MethodBlock          = "BlockMigration"
	MethodLive           = "LiveMigration"
)

// Eviction strategies.
const (
	EvictionNone                  = "None"
	EvictionLiveMigrate           = "LiveMigrate"
	EvictionLiveMigrateIfPossible = "LiveMigrateIfPossible"
	EvictionExternal              = "External"
)

// Migration phases, in the order a successful migration passes them.
const (
	PhasePending         = "Pending"
	PhaseScheduling      = "Scheduling"
	PhaseScheduled       = "Scheduled"
	PhasePreparingTarget = "PreparingTarget"
	PhaseTargetReady     = "TargetReady"
	PhaseRunning         = "Running"
	PhaseSucceeded       = "Succeeded"
	PhaseFailed          = "Failed"
)

// VMI is a VirtualMachineInstance.
type VMI struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VMISpec   `json:"spec"`
	Status            VMIStatus `json:"status,omitempty"`
}

type VMISpec struct {
	EvictionStrategy string            `json:"evictionStrategy,omitempty"`
	NodeSelector     map[string]string `json:"nodeSelector,omitempty"`
	Domain           Domain            `json:"domain"`
	Volumes          []Volume          `json:"volumes,omitempty"`
	Networks         []Network         `json:"networks,omitempty"`
}

type Domain struct {
	Memory    *Memory   `json:"memory,omitempty"`
	Resources Resources `json:"resources,omitempty"`
	Devices   Devices   `json:"devices"`
}

type Memory struct {
	Guest *resource.Quantity `json:"guest,omitempty"`
}

type Resources struct {
	Requests map[string]resource.Quantity `json:"requests,omitempty"`
}

type Devices struct {
	Disks      []Disk      `json:"disks,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
}

type Disk struct {
	Name string `json:"name"`
}

// Interface binds a guest NIC to a network; exactly one binding is set.
type Interface struct {
	Name       string    `json:"name"`
	Bridge     *struct{} `json:"bridge,omitempty"`
	Masquerade *struct{} `json:"masquerade,omitempty"`
	SRIOV      *struct{} `json:"sriov,omitempty"`
}

type Network struct {
	Name   string    `json:"name"`
	Pod    *struct{} `json:"pod,omitempty"`
	Multus *struct {
		NetworkName string `json:"networkName"`
	} `json:"multus,omitempty"`
}

// Volume is a VMI volume; exactly one source is set.
type Volume struct {
	Name                  string     `json:"name"`
	PersistentVolumeClaim *ClaimRef  `json:"persistentVolumeClaim,omitempty"`
	DataVolume            *NameRef   `json:"dataVolume,omitempty"`
	ContainerDisk         *struct{}  `json:"containerDisk,omitempty"`
	EmptyDisk             *struct{}  `json:"emptyDisk,omitempty"`
	Ephemeral             *struct{}  `json:"ephemeral,omitempty"`
	HostDisk              *HostDisk  `json:"hostDisk,omitempty"`
	CloudInitNoCloud      *struct{}  `json:"cloudInitNoCloud,omitempty"`
	CloudInitConfigDrive  *struct{}  `json:"cloudInitConfigDrive,omitempty"`
	ConfigMap             *NameRef   `json:"configMap,omitempty"`
	Secret                *SecretRef `json:"secret,omitempty"`
	ServiceAccount        *struct{}  `json:"serviceAccount,omitempty"`
	DownwardAPI           *struct{}  `json:"downwardAPI,omitempty"`
}

type ClaimRef struct {
	ClaimName string `json:"claimName"`
}

type NameRef struct {
	Name string `json:"name"`
}

type SecretRef struct {
	SecretName string `json:"secretName"`
}

type HostDisk struct {
	Path   string `json:"path"`
	Type   string `json:"type,omitempty"`
	Shared *bool  `json:"shared,omitempty"`
}

type VMIStatus struct {
	NodeName        string            `json:"nodeName,omitempty"`
	Phase           string            `json:"phase,omitempty"`
	Conditions      []Condition       `json:"conditions,omitempty"`
	MigrationMethod string            `json:"migrationMethod,omitempty"`
	MigrationState  *MigrationState   `json:"migrationState,omitempty"`
	ActivePods      map[string]string `json:"activePods,omitempty"`
	// EvacuationNodeName is set by virt-api's eviction interceptor: the
	// node the VMI is to leave (real KubeVirt only).
	EvacuationNodeName string `json:"evacuationNodeName,omitempty"`
	SelinuxContext     string `json:"selinuxContext,omitempty"`
}

type Condition struct {
	Type               string       `json:"type"`
	Status             string       `json:"status"`
	Reason             string       `json:"reason,omitempty"`
	Message            string       `json:"message,omitempty"`
	LastProbeTime      *metav1.Time `json:"lastProbeTime"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// MigrationState is VMI status.migrationState.
type MigrationState struct {
	MigrationUID        string       `json:"migrationUid,omitempty"`
	SourceNode          string       `json:"sourceNode,omitempty"`
	TargetNode          string       `json:"targetNode,omitempty"`
	TargetPod           string       `json:"targetPod,omitempty"`
	StartTimestamp      *metav1.Time `json:"startTimestamp,omitempty"`
	EndTimestamp        *metav1.Time `json:"endTimestamp,omitempty"`
	Completed           bool         `json:"completed,omitempty"`
	Failed              bool         `json:"failed,omitempty"`
	AbortRequested      bool         `json:"abortRequested,omitempty"`
	AbortStatus         string       `json:"abortStatus,omitempty"`
	FailureReason       string       `json:"failureReason,omitempty"`
	Mode                string       `json:"mode,omitempty"`
	MigrationPolicyName string       `json:"migrationPolicyName,omitempty"`

	// Written by the real virt-controller and (played by the simulator's
	// node agent) virt-handler.
	TargetNodeAddress              string                  `json:"targetNodeAddress,omitempty"`
	TargetNodeDomainDetected       bool                    `json:"targetNodeDomainDetected,omitempty"`
	TargetNodeDomainReadyTimestamp *metav1.Time            `json:"targetNodeDomainReadyTimestamp,omitempty"`
	MigrationConfiguration         *MigrationConfiguration `json:"migrationConfiguration,omitempty"`
}

// MigrationConfiguration is the part of KubeVirt's migration configuration
// (the KubeVirt CR's, under a matching MigrationPolicy) virt-controller
// copies into the VMI's migrationState.
type MigrationConfiguration struct {
	BandwidthPerMigration   *resource.Quantity `json:"bandwidthPerMigration,omitempty"`
	CompletionTimeoutPerGiB *int64             `json:"completionTimeoutPerGiB,omitempty"`
	ProgressTimeout         *int64             `json:"progressTimeout,omitempty"`
	AllowAutoConverge       *bool              `json:"allowAutoConverge,omitempty"`
	AllowPostCopy           *bool              `json:"allowPostCopy,omitempty"`
}

// Migration is a VirtualMachineInstanceMigration.
type Migration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MigrationSpec   `json:"spec"`
	Status            MigrationStatus `json:"status,omitempty"`
}

type MigrationSpec struct {
	VMIName           string            `json:"vmiName"`
	AddedNodeSelector map[string]string `json:"addedNodeSelector,omitempty"`
}

type MigrationStatus struct {
	Phase                     string            `json:"phase,omitempty"`
	PhaseTransitionTimestamps []PhaseTransition `json:"phaseTransitionTimestamps,omitempty"`
	MigrationState            *MigrationState   `json:"migrationState,omitempty"`
}

type PhaseTransition struct {
	Phase                    string      `json:"phase"`
	PhaseTransitionTimestamp metav1.Time `json:"phaseTransitionTimestamp"`
}

// Final reports whether the migration has ended.
func (m *Migration) Final() bool {
	return m.Status.Phase == PhaseSucceeded || m.Status.Phase == PhaseFailed
}

// MigrationPolicy is a migrations.kubevirt.io/v1alpha1 MigrationPolicy.
type MigrationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MigrationPolicySpec `json:"spec"`
}

type MigrationPolicySpec struct {
	Selectors               *Selectors         `json:"selectors,omitempty"`
	AllowAutoConverge       *bool              `json:"allowAutoConverge,omitempty"`
	AllowPostCopy           *bool              `json:"allowPostCopy,omitempty"`
	BandwidthPerMigration   *resource.Quantity `json:"bandwidthPerMigration,omitempty"`
	CompletionTimeoutPerGiB *int64             `json:"completionTimeoutPerGiB,omitempty"`
}

// Selectors are plain label maps: every listed label must match.
type Selectors struct {
	NamespaceSelector              map[string]string `json:"namespaceSelector,omitempty"`
	VirtualMachineInstanceSelector map[string]string `json:"virtualMachineInstanceSelector,omitempty"`
}

// FromUnstructured converts an unstructured object (as the dynamic client and
// informers deliver it) into one of the types above.
func FromUnstructured(obj any, into any) error {
	u, ok := obj.(runtime.Unstructured)
	if !ok {
		return errNotUnstructured
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), into)
}

// ToUnstructured converts one of the types above into unstructured content.
func ToUnstructured(obj any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
}

type convError string

func (e convError) Error() string { return string(e) }

const errNotUnstructured = convError("object is not unstructured")
