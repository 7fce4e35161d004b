package sim

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"vmdrain.io/e2e/kubevirt"
)

// ContainerDiskImage is the image of a simulated VM's containerDisk (never
// pulled: the bed's kubelets run no containers).
const ContainerDiskImage = "quay.io/containerdisks/fedora:latest"

// CreateVMReal creates a VM the way a user does with KubeVirt's real
// virt-controller and virt-api in the bed: the VMI goes through virt-api's
// webhooks, virt-controller creates its virt-launcher pod, kube-scheduler
// places it and the node agent starts it. The VMI prefers vm.Node (a
// preferred node affinity, weight 100, which migration target pods inherit
// harmlessly: they never go back to the source); with the annotation
// sim.vmdrain.io/target-unschedulable=true the VMI also requires a node
// label of its own (PlacementLabel), which only its node carries until the
// annotation goes: then the node agent puts it on every node, and target
// pods can be scheduled again (by the real scheduler). Annotating a VMI
// created without it has no effect in real mode. A PVC disk gets a
// PersistentVolume bound to it, so the scheduler can place the pods.
// It waits until the VMI is Running on vm.Node and returns it and its pod.
func CreateVMReal(ctx context.Context, c Clients, vm VM, timeout time.Duration) (*kubevirt.VMI, *corev1.Pod, error) {
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
	if err := waitNodeSchedulable(ctx, c.Kube, vm.Node, timeout); err != nil {
		return nil, nil, err
	}

	disk := map[string]any{"name": "rootdisk", "disk": map[string]any{"bus": "virtio"}}
	var volumes []any
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
		if err := ensurePV(ctx, c.Kube, vm.Namespace, claim, mode); err != nil {
			return nil, nil, err
		}
		volumes = []any{map[string]any{"name": "rootdisk", "persistentVolumeClaim": map[string]any{"claimName": claim}}}
	case DiskContainer:
		volumes = []any{map[string]any{"name": "rootdisk", "containerDisk": map[string]any{"image": ContainerDiskImage}}}
	case DiskNone:
		disk = nil
	default:
		return nil, nil, fmt.Errorf("unknown disk kind %q (want rwx, rwo, container or none)", vm.Disk)
	}
	binding := map[string]any{"masquerade": map[string]any{}}
	if vm.Bridge {
		binding = map[string]any{"bridge": map[string]any{}}
	}
	iface := map[string]any{"name": "default"}
	for k, v := range binding {
		iface[k] = v
	}
	devices := map[string]any{"interfaces": []any{iface}}
	if disk != nil {
		devices["disks"] = []any{disk}
	}
	term := map[string]any{"matchExpressions": []any{map[string]any{
		"key": "kubernetes.io/hostname", "operator": "In", "values": []any{vm.Node},
	}}}
	affinity := map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{
		map[string]any{"weight": int64(100), "preference": term},
	}}
	placement := ""
	if vm.Annotations[TargetUnschedulableAnnotation] == "true" {
		placement = PlacementLabel(vm.Namespace, vm.Name)
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{placement: "true"}}})
		if _, err := c.Kube.CoreV1().Nodes().Patch(ctx, vm.Node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return nil, nil, err
		}
		affinity["requiredDuringSchedulingIgnoredDuringExecution"] = map[string]any{
			"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{
				"key": placement, "operator": "In", "values": []any{"true"},
			}}}},
		}
	}
	labels := map[string]any{}
	for k, v := range vm.Labels {
		labels[k] = v
	}
	annotations := map[string]any{}
	for k, v := range vm.Annotations {
		annotations[k] = v
	}
	if placement != "" {
		annotations[PlacementAnnotation] = placement
	}
	spec := map[string]any{
		"domain": map[string]any{
			// host-passthrough: no host-model CPU labels needed on the nodes.
			"cpu":       map[string]any{"model": "host-passthrough"},
			"memory":    map[string]any{"guest": mem.String()},
			"resources": map[string]any{"requests": map[string]any{"memory": mem.String()}},
			"devices":   devices,
		},
		"networks": []any{map[string]any{"name": "default", "pod": map[string]any{}}},
		"affinity": map[string]any{"nodeAffinity": affinity},
	}
	if volumes != nil {
		spec["volumes"] = volumes
	}
	if vm.EvictionStrategy != "" {
		spec["evictionStrategy"] = vm.EvictionStrategy
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "VirtualMachineInstance",
		"metadata":   map[string]any{"name": vm.Name, "namespace": vm.Namespace, "labels": labels, "annotations": annotations},
		"spec":       spec,
	}}
	vmis := c.Dynamic.Resource(kubevirt.VMIResource).Namespace(vm.Namespace)
	if _, err := vmis.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return nil, nil, fmt.Errorf("create VMI %s/%s: %w", vm.Namespace, vm.Name, err)
	}

	var vmi *kubevirt.VMI
	var pod *corev1.Pod
	deadline := time.Now().Add(timeout)
	for {
		got, err := vmis.Get(ctx, vm.Name, metav1.GetOptions{})
		if err == nil {
			vmi = &kubevirt.VMI{}
			if err := kubevirt.FromUnstructured(got, vmi); err != nil {
				return nil, nil, err
			}
			if vmi.Status.Phase == "Running" {
				pods, err := c.Kube.CoreV1().Pods(vm.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubevirt.io/created-by=" + string(vmi.UID)})
				if err != nil {
					return nil, nil, err
				}
				for i := range pods.Items {
					if p := &pods.Items[i]; p.Spec.NodeName == vmi.Status.NodeName && p.DeletionTimestamp == nil {
						pod = p
					}
				}
				if pod != nil {
					break
				}
			}
			if vmi.Status.Phase == "Failed" || vmi.Status.Phase == "Succeeded" {
				return nil, nil, fmt.Errorf("VMI %s/%s ended in phase %s before it ran", vm.Namespace, vm.Name, vmi.Status.Phase)
			}
		}
		if time.Now().After(deadline) {
			phase := ""
			if vmi != nil {
				phase = vmi.Status.Phase
			}
			return nil, nil, fmt.Errorf("VMI %s/%s not Running after %s (phase %q, last error: %v)", vm.Namespace, vm.Name, timeout, phase, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if vmi.Status.NodeName != vm.Node {
		return vmi, pod, fmt.Errorf("VMI %s/%s was scheduled to %s, not %s", vm.Namespace, vm.Name, vmi.Status.NodeName, vm.Node)
	}
	return vmi, pod, nil
}

// PlacementAnnotation on a VMI names the node label its pods require
// (real mode, sim.vmdrain.io/target-unschedulable).
const PlacementAnnotation = "sim.vmdrain.io/placement-label"

// PlacementLabel is the node label a VMI created with
// sim.vmdrain.io/target-unschedulable=true requires in real mode.
func PlacementLabel(ns, name string) string {
	return fmt.Sprintf("sim.vmdrain.io/vm-%x", sha256.Sum256([]byte(ns+"/"+name)))[:len("sim.vmdrain.io/vm-")+16]
}

// ensurePV creates a PersistentVolume bound in advance to the claim
// (kube-controller-manager completes the binding).
func ensurePV(ctx context.Context, kube kubernetes.Interface, ns, claim string, mode corev1.PersistentVolumeAccessMode) error {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + claim},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes:                   []corev1.PersistentVolumeAccessMode{mode},
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: claim},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/vmdrain-bed/" + ns + "/" + claim},
			},
		},
	}
	_, err := kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// waitNodeSchedulable waits until the node agent has marked the node
// schedulable for VMIs (launcher pods select kubevirt.io/schedulable=true
// and request virt-handler's devices).
// placeable: the node can take a new VM's launcher pod now.
func placeable(node *corev1.Node) bool {
	if _, kvm := node.Status.Allocatable["devices.kubevirt.io/kvm"]; !kvm || node.Labels[SchedulableLabel] != "true" ||
		node.Spec.Unschedulable {
		return false
	}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	return true
}

func waitNodeSchedulable(ctx context.Context, kube kubernetes.Interface, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		node, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		// kwok's node initialization may replace the resources the node
		// agent advertised: wait until both the label and the devices are
		// there; and until kube-controller-manager has lifted the taints a
		// new node starts with (node.kubernetes.io/not-ready), or the
		// scheduler puts the VM on another node despite its preference
		if err == nil && placeable(node) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s cannot take a VM after %s: want %s=true, KubeVirt's devices, no cordon and no NoSchedule taint (last error: %v)",
				name, timeout, SchedulableLabel, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
