package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"vmdrain.io/e2e/kubevirt"
)

// Fault-injection and bookkeeping annotations on a VMI.
const (
	// FailAttemptsAnnotation: the first N migration attempts of the VMI fail while Running.
	FailAttemptsAnnotation = "sim.vmdrain.io/fail-attempts"
	// TargetUnschedulableAnnotation: "true" keeps its migrations in Scheduling.
	TargetUnschedulableAnnotation = "sim.vmdrain.io/target-unschedulable"
	// DirtyRateAnnotation: a quantity of bytes/s the guest dirties (e.g. "128Mi").
	DirtyRateAnnotation = "sim.vmdrain.io/dirty-rate"
	// AttemptsAnnotation counts the VMI's migration attempts that reached Running (written by the simulator).
	AttemptsAnnotation = "sim.vmdrain.io/attempts"
	// AttemptAnnotation on a migration: which attempt of its VMI it is (written by the simulator).
	AttemptAnnotation = "sim.vmdrain.io/attempt"
)

// Clients bundles the API clients the simulator and the VM helper use.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Handler and HandlerKube act as virt-handler's service account (node
	// mode): virt-api accepts VMI status changes only from KubeVirt's own.
	Handler     dynamic.Interface
	HandlerKube kubernetes.Interface
}

// Disk kinds for a simulated VM.
const (
	DiskRWX       = "rwx"       // PVC with ReadWriteMany: shared, live-migratable
	DiskRWO       = "rwo"       // PVC with ReadWriteOnce: not live-migratable
	DiskContainer = "container" // containerDisk: migratable, copied (BlockMigration)
	DiskNone      = "none"
)

// VM describes a simulated virtual machine: a VMI and its virt-launcher pod.
type VM struct {
	Namespace        string
	Name             string
	Node             string
	Memory           string // guest memory, e.g. "2Gi"
	EvictionStrategy string // "" leaves spec.evictionStrategy unset
	Disk             string // DiskRWX (default), DiskRWO, DiskContainer or DiskNone
	Bridge           bool   // bridge binding on the pod network (not migratable) instead of masquerade
	Labels           map[string]string
	Annotations      map[string]string
}

// CreateVM creates the namespace's default service account if missing, the
// VM's PVC (named <vm>-disk) if it has one, the VMI with status Running on
// vm.Node, and its virt-launcher pod bound to that node. It returns the VMI
// as created and its launcher pod.
func CreateVM(ctx context.Context, c Clients, vm VM) (*kubevirt.VMI, *corev1.Pod, error) {
	if vm.Namespace == "" {
		vm.Namespace = "default"
	}
	if vm.Memory == "" {
		vm.Memory = "1Gi"
	}
	if vm.Disk == "" {
		vm.Disk = DiskRWX
	}
	mem, err := resource.ParseQuantity(vm.Memory)
	if err != nil {
		return nil, nil, fmt.Errorf("memory %q: %w", vm.Memory, err)
	}
	if vm.Node == "" {
		return nil, nil, fmt.Errorf("VM %s has no node", vm.Name)
	}
	if err := EnsureServiceAccount(ctx, c.Kube, vm.Namespace); err != nil {
		return nil, nil, err
	}

	vmi := &kubevirt.VMI{
		TypeMeta: metav1.TypeMeta{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: vm.Namespace, Name: vm.Name,
			Labels: map[string]string{}, Annotations: vm.Annotations,
		},
		Spec: kubevirt.VMISpec{
			EvictionStrategy: vm.EvictionStrategy,
			Domain: kubevirt.Domain{
				Memory:    &kubevirt.Memory{Guest: &mem},
				Resources: kubevirt.Resources{Requests: map[string]resource.Quantity{"memory": mem}},
				Devices:   kubevirt.Devices{Interfaces: []kubevirt.Interface{{Name: "default"}}},
			},
			Networks: []kubevirt.Network{{Name: "default", Pod: &struct{}{}}},
		},
	}
	for k, v := range vm.Labels {
		vmi.Labels[k] = v
	}
	vmi.Labels[kubevirt.NodeNameLabel] = vm.Node
	if vm.Bridge {
		vmi.Spec.Domain.Devices.Interfaces[0].Bridge = &struct{}{}
	} else {
		vmi.Spec.Domain.Devices.Interfaces[0].Masquerade = &struct{}{}
	}

	switch vm.Disk {
	case DiskRWX, DiskRWO:
		mode := corev1.ReadWriteMany
		if vm.Disk == DiskRWO {
			mode = corev1.ReadWriteOnce
		}
		claim := vm.Name + "-disk"
		if err := ensurePVC(ctx, c.Kube, vm.Namespace, claim, mode); err != nil {
			return nil, nil, err
		}
		vmi.Spec.Volumes = []kubevirt.Volume{{Name: "rootdisk", PersistentVolumeClaim: &kubevirt.ClaimRef{ClaimName: claim}}}
	case DiskContainer:
		vmi.Spec.Volumes = []kubevirt.Volume{{Name: "rootdisk", ContainerDisk: &struct{}{}}}
	case DiskNone:
	default:
		return nil, nil, fmt.Errorf("unknown disk kind %q (want rwx, rwo, container or none)", vm.Disk)
	}
	for _, v := range vmi.Spec.Volumes {
		vmi.Spec.Domain.Devices.Disks = append(vmi.Spec.Domain.Devices.Disks, kubevirt.Disk{Name: v.Name})
	}

	obj, err := kubevirt.ToUnstructured(vmi)
	if err != nil {
		return nil, nil, err
	}
	vmis := c.Dynamic.Resource(kubevirt.VMIResource).Namespace(vm.Namespace)
	created, err := vmis.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("create VMI %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	if err := kubevirt.FromUnstructured(created, vmi); err != nil {
		return nil, nil, err
	}

	pod, err := c.Kube.CoreV1().Pods(vm.Namespace).Create(ctx, LauncherPod(vmi, vm.Node, ""), metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("create launcher pod of %s/%s: %w", vm.Namespace, vm.Name, err)
	}

	m := kubevirt.Migratable(vmi, PVCLookup(ctx, c.Kube))
	cond := m.Condition()
	now := metav1.Now()
	cond.LastTransitionTime = &now
	vmi.Status = kubevirt.VMIStatus{
		Phase:           "Running",
		NodeName:        vm.Node,
		Conditions:      []kubevirt.Condition{cond, {Type: "Ready", Status: "True", LastTransitionTime: &now}},
		MigrationMethod: m.Method,
		ActivePods:      map[string]string{string(pod.UID): vm.Node},
	}
	patch, _ := json.Marshal(map[string]any{"status": vmi.Status})
	updated, err := vmis.Patch(ctx, vm.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return nil, nil, fmt.Errorf("set status of VMI %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	return vmi, pod, kubevirt.FromUnstructured(updated, vmi)
}

// LauncherPod returns a virt-launcher pod for vmi bound to node ("" leaves it
// unscheduled). migrationUID, if set, marks it as a migration's target pod.
func LauncherPod(vmi *kubevirt.VMI, node, migrationUID string) *corev1.Pod {
	no := false
	yes := true
	labels := map[string]string{kubevirt.AppLabel: kubevirt.LauncherValue, "vm.kubevirt.io/name": vmi.Name}
	if migrationUID != "" {
		labels[kubevirt.MigrationJobLabel] = migrationUID
	}
	req := corev1.ResourceList{}
	if mem := kubevirt.GuestMemory(vmi); mem > 0 {
		req[corev1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    vmi.Namespace,
			GenerateName: "virt-launcher-" + vmi.Name + "-",
			Labels:       labels,
			Annotations:  map[string]string{kubevirt.DomainAnnotation: vmi.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance",
				Name: vmi.Name, UID: vmi.UID, Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			AutomountServiceAccountToken:  &no,
			TerminationGracePeriodSeconds: func() *int64 { v := int64(30); return &v }(),
			Containers: []corev1.Container{{
				Name:      "compute",
				Image:     "quay.io/kubevirt/virt-launcher:simulated",
				Resources: corev1.ResourceRequirements{Requests: req},
			}},
		},
	}
}

func ensurePVC(ctx context.Context, kube kubernetes.Interface, ns, name string, mode corev1.PersistentVolumeAccessMode) error {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{mode},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			},
		},
	}
	_, err := kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// EnsureServiceAccount creates the namespace (if missing) and its "default"
// service account, which the ServiceAccount admission plugin requires for
// every pod. Without kube-controller-manager nothing else creates it.
func EnsureServiceAccount(ctx context.Context, kube kubernetes.Interface, ns string) error {
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	_, err = kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/default: %w", ns, err)
	}
	return nil
}

// PVCLookup reads PVC access modes from the API.
func PVCLookup(ctx context.Context, kube kubernetes.Interface) kubevirt.ClaimLookup {
	return func(ns, name string) ([]corev1.PersistentVolumeAccessMode, bool) {
		pvc, err := kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, false
		}
		return pvc.Spec.AccessModes, true
	}
}

// WaitPodRunning waits until the pod ns/name is Running.
func WaitPodRunning(ctx context.Context, kube kubernetes.Interface, ns, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pod, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && pod.Status.Phase == corev1.PodRunning {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s/%s not Running after %s (last error: %v)", ns, name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
