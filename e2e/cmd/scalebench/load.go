// load.go — the objects the scale benchmark puts on the bed: Nodes,
// virt-launcher Pods and VMIs shaped as KubeVirt and a kubelet leave them
// (spec from one field manager, status from a second, so managedFields holds
// two entries), and finished migrations (KubeVirt keeps several per VMI).
package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
)

const (
	benchNS       = "vmdrain-scale"
	configNS      = "vmdrain-system" // vmdrain's configuration ConfigMap, which both programs watch
	configName    = "vmdrain-config"
	specManager   = "scale-virt-controller" // writes spec and metadata
	statusManager = "scale-virt-handler"    // writes status, as a kubelet or virt-handler does
)

type sizes struct{ nodes, pods, vmis, migrations int }

func nodeName(i int) string { return fmt.Sprintf("scale-node-%05d", i) }

// nodeOf places VMI i: the same number of VMIs on every node at any size,
// and a smaller load is a prefix of a larger one.
func (sz sizes) nodeOf(vmi int) string {
	per := max(sz.vmis/max(sz.nodes, 1), 1)
	return nodeName(vmi / per % max(sz.nodes, 1))
}

// scaled is sz divided by n (each at least 1).
func (sz sizes) scaled(n int) sizes {
	return sizes{max(sz.nodes/n, 1), max(sz.pods/n, 1), max(sz.vmis/n, 1), sz.migrations / n}
}
func vmName(i int) string { return fmt.Sprintf("vm-%06d", i) }

// parallel runs fn(0..n-1) on workers goroutines; the first error wins.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil && !apierrors.IsAlreadyExists(err) {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// pad is an annotation value that brings an object near its target size.
func pad(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("x", n)
}

// ensureBase creates the namespaces and vmdrain's configuration ConfigMap:
// one migration at a time in the cluster (the reaction time needs a start
// to wait for an end; the sync does not depend on the limits).
func ensureBase(ctx context.Context, b *bed.Bed) error {
	for _, name := range []string{benchNS, configNS, reactNS} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if _, err := b.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: configName, Namespace: configNS},
		Data: map[string]string{"feature-gates": "LiveMigration",
			"migrations": "parallelMigrationsPerCluster: 1\nparallelOutboundMigrationsPerNode: 1\n"}}
	if _, err := b.Kube.CoreV1().ConfigMaps(configNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("ConfigMap %s/%s: %w", configNS, configName, err)
	}
	return nil
}

// load creates what sz holds beyond what from held (a smaller load).
func load(ctx context.Context, b *bed.Bed, from, sz sizes, workers int) error {
	steps := []struct {
		what     string
		from, to int
		fn       func(i int) error
	}{
		{"nodes", from.nodes, sz.nodes, func(i int) error { return createNode(ctx, b, i) }},
		{"pods", from.pods, sz.pods, func(i int) error { return createPod(ctx, b, i, sz) }},
		{"VMIs", from.vmis, sz.vmis, func(i int) error { return createVMI(ctx, b, i, sz) }},
		{"migrations", from.migrations, sz.migrations, func(i int) error { return createMigration(ctx, b, i, sz) }},
	}
	for _, st := range steps {
		if err := parallel(st.to-st.from, workers, func(i int) error { return st.fn(st.from + i) }); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

func createNode(ctx context.Context, b *bed.Bed, i int) error {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(i), Labels: map[string]string{
		"kubernetes.io/hostname": nodeName(i), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"kubevirt.io/schedulable": "true", "topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%3),
	}}}
	created, err := b.Kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{FieldManager: specManager})
	if err != nil {
		return err
	}
	q := resource.MustParse
	created.Status = corev1.NodeStatus{
		Capacity:    corev1.ResourceList{"cpu": q("64"), "memory": q("512Gi"), "pods": q("250"), "devices.kubevirt.io/kvm": q("1k")},
		Allocatable: corev1.ResourceList{"cpu": q("63"), "memory": q("500Gi"), "pods": q("250"), "devices.kubevirt.io/kvm": q("1k")},
		Conditions: []corev1.NodeCondition{
			{Type: "Ready", Status: "True", Reason: "KubeletReady", Message: "kubelet is posting ready status"},
			{Type: "MemoryPressure", Status: "False", Reason: "KubeletHasSufficientMemory"},
			{Type: "DiskPressure", Status: "False", Reason: "KubeletHasNoDiskPressure"},
			{Type: "PIDPressure", Status: "False", Reason: "KubeletHasSufficientPID"},
		},
		Addresses: []corev1.NodeAddress{{Type: "InternalIP", Address: fmt.Sprintf("10.%d.%d.%d", i/65536%256, i/256%256, i%256)}},
		NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian GNU/Linux 12", ContainerRuntimeVersion: "containerd://2.1.0", Architecture: "amd64", OperatingSystem: "linux"},
	}
	_, err = b.Kube.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: statusManager})
	return err
}

func createPod(ctx context.Context, b *bed.Bed, i int, sz sizes) error {
	vmi := i % max(sz.vmis, 1) // more pods than VMIs: finished launchers of earlier migrations
	vm, node := vmName(vmi), sz.nodeOf(vmi)
	env := []corev1.EnvVar{{Name: "XDG_CACHE_HOME", Value: "/var/run/kubevirt-private"},
		{Name: "XDG_CONFIG_HOME", Value: "/var/run/kubevirt-private"}, {Name: "XDG_RUNTIME_DIR", Value: "/var/run"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	mounts := []corev1.VolumeMount{{Name: "private", MountPath: "/var/run/kubevirt-private"},
		{Name: "public", MountPath: "/var/run/kubevirt"}, {Name: "ephemeral-disks", MountPath: "/var/run/kubevirt-ephemeral-disks"},
		{Name: "container-disks", MountPath: "/var/run/kubevirt/container-disks"}, {Name: "libvirt-runtime", MountPath: "/var/run/libvirt"},
		{Name: "sockets", MountPath: "/var/run/kubevirt/sockets"}, {Name: "hotplug-disks", MountPath: "/var/run/kubevirt/hotplug-disks"}}
	q := resource.MustParse
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "virt-launcher-" + vm + fmt.Sprintf("-%05d", i), Namespace: benchNS,
			Labels: map[string]string{kubevirt.AppLabel: kubevirt.LauncherValue, "kubevirt.io/created-by": fmt.Sprintf("uid-%06d", i),
				"vm.kubevirt.io/name": vm, "kubevirt.io/nodeName": node},
			Annotations: map[string]string{"kubevirt.io/domain": vm, "kubectl.kubernetes.io/default-container": "compute",
				"post.hook.backup.velero.io/command": `["/usr/bin/virt-freezer", "--unfreeze", "--name", "` + vm + `"]`,
				"scale.vmdrain.io/pad":               pad(5200)}},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "default",
			TerminationGracePeriodSeconds: ptr(int64(210)), AutomountServiceAccountToken: ptr(false),
			Containers: []corev1.Container{
				{Name: "compute", Image: "quay.io/kubevirt/virt-launcher:v1.8.2", Command: []string{"/usr/bin/virt-launcher-monitor",
					"--qemu-timeout", "321s", "--name", vm, "--uid", fmt.Sprintf("uid-%06d", i), "--namespace", benchNS,
					"--kubevirt-share-dir", "/var/run/kubevirt", "--ephemeral-disk-dir", "/var/run/kubevirt-ephemeral-disks",
					"--container-disk-dir", "/var/run/kubevirt/container-disks", "--grace-period-seconds", "195",
					"--hook-sidecars", "0", "--ovmf-path", "/usr/share/OVMF"}, Env: env, VolumeMounts: mounts,
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("100m"), "memory": q("1290Mi"), "devices.kubevirt.io/kvm": q("1")},
						Limits: corev1.ResourceList{"devices.kubevirt.io/kvm": q("1")}}},
				{Name: "guest-console-log", Image: "quay.io/kubevirt/virt-launcher:v1.8.2", Command: []string{"/usr/bin/virt-tail"},
					Args: []string{"--logfile", "/var/run/kubevirt-private/" + vm + "/virt-serial0-log"}, VolumeMounts: mounts[:1]},
			},
			Volumes: []corev1.Volume{{Name: "private", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "public", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "ephemeral-disks", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "container-disks", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "libvirt-runtime", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "sockets", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "hotplug-disks", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	created, err := b.Kube.CoreV1().Pods(benchNS).Create(ctx, p, metav1.CreateOptions{FieldManager: specManager})
	if err != nil {
		return err
	}
	now := metav1.Now()
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.%d.%d", i/256%256, i%256),
		HostIP: fmt.Sprintf("10.0.%d.%d", i/256%256, i%256), QOSClass: corev1.PodQOSBurstable, StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: "Initialized", Status: "True", LastTransitionTime: now},
			{Type: "Ready", Status: "True", LastTransitionTime: now}, {Type: "ContainersReady", Status: "True", LastTransitionTime: now},
			{Type: "PodScheduled", Status: "True", LastTransitionTime: now}},
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "compute", Ready: true, Image: "quay.io/kubevirt/virt-launcher:v1.8.2", ImageID: "quay.io/kubevirt/virt-launcher@sha256:" + strings.Repeat("ab", 32),
				ContainerID: fmt.Sprintf("containerd://%064x", i), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}},
			{Name: "guest-console-log", Ready: true, Image: "quay.io/kubevirt/virt-launcher:v1.8.2", ImageID: "quay.io/kubevirt/virt-launcher@sha256:" + strings.Repeat("ab", 32),
				ContainerID: fmt.Sprintf("containerd://%064x", i+1), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}},
	}
	_, err = b.Kube.CoreV1().Pods(benchNS).UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: statusManager})
	return err
}

func ptr[T any](v T) *T { return &v }

func createVMI(ctx context.Context, b *bed.Bed, i int, sz sizes) error {
	vm, node := vmName(i), sz.nodeOf(i)
	disks := []any{map[string]any{"name": "rootdisk", "disk": map[string]any{"bus": "virtio"}, "bootOrder": int64(1)},
		map[string]any{"name": "cloudinit", "disk": map[string]any{"bus": "virtio"}}}
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
		"metadata": map[string]any{"name": vm, "namespace": benchNS,
			"labels":      map[string]any{"kubevirt.io/nodeName": node, "kubevirt.io/vm": vm, "app": "scale"},
			"annotations": map[string]any{"kubevirt.io/latest-observed-api-version": "v1", "kubevirt.io/storage-observed-api-version": "v1", "scale.vmdrain.io/pad": pad(3000)},
			"finalizers":  []any{"kubevirt.io/virtualMachineControllerFinalize", "foregroundDeleteVirtualMachine"}},
		"spec": map[string]any{"evictionStrategy": "LiveMigrate", "terminationGracePeriodSeconds": int64(180),
			"domain": map[string]any{"cpu": map[string]any{"cores": int64(2), "sockets": int64(1), "threads": int64(1), "model": "host-model"},
				"memory":    map[string]any{"guest": "4Gi"},
				"machine":   map[string]any{"type": "q35"},
				"resources": map[string]any{"requests": map[string]any{"memory": "4Gi"}},
				"devices": map[string]any{"disks": disks, "interfaces": []any{map[string]any{"name": "default", "masquerade": map[string]any{},
					"macAddress": fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16&255, i>>8&255, i&255)}}},
				"features": map[string]any{"acpi": map[string]any{"enabled": true}}},
			"networks": []any{map[string]any{"name": "default", "pod": map[string]any{}}},
			"volumes": []any{map[string]any{"name": "rootdisk", "containerDisk": map[string]any{"image": "quay.io/containerdisks/fedora:41"}},
				map[string]any{"name": "cloudinit", "cloudInitNoCloud": map[string]any{"userData": "#cloud-config\npassword: fedora\nchpasswd: { expire: False }\n"}}}},
	}}
	created, err := b.Dynamic.Resource(kubevirt.VMIResource).Namespace(benchNS).Create(ctx, o, metav1.CreateOptions{FieldManager: specManager})
	if err != nil {
		return err
	}
	created.Object["status"] = map[string]any{"phase": "Running", "nodeName": node, "qosClass": "Burstable",
		"migrationMethod": "BlockMigration", "migrationTransport": "Unix", "launcherContainerImageVersion": "quay.io/kubevirt/virt-launcher:v1.8.2",
		"activePods": map[string]any{fmt.Sprintf("uid-%06d", i): node},
		"conditions": []any{map[string]any{"type": "Ready", "status": "True"}, map[string]any{"type": "LiveMigratable", "status": "True"},
			map[string]any{"type": "AgentConnected", "status": "True"}},
		"interfaces": []any{map[string]any{"name": "default", "ipAddress": fmt.Sprintf("10.244.%d.%d", i/256%256, i%256),
			"mac": fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16&255, i>>8&255, i&255), "interfaceName": "eth0", "infoSource": "domain, guest-agent"}},
		"guestOSInfo":        map[string]any{"id": "fedora", "name": "Fedora Linux", "version": "41", "kernelRelease": "6.11.4-301.fc41.x86_64"},
		"volumeStatus":       []any{map[string]any{"name": "rootdisk", "target": "vda"}, map[string]any{"name": "cloudinit", "target": "vdb", "size": int64(1048576)}},
		"currentCPUTopology": map[string]any{"cores": int64(2), "sockets": int64(1), "threads": int64(1)},
		"memory":             map[string]any{"guestAtBoot": "4Gi", "guestCurrent": "4Gi", "guestRequested": "4Gi"}}
	_, err = b.Dynamic.Resource(kubevirt.VMIResource).Namespace(benchNS).UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: statusManager})
	return err
}

func createMigration(ctx context.Context, b *bed.Bed, i int, sz sizes) error {
	vm := vmName(i % max(sz.vmis, 1))
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
		"metadata": map[string]any{"name": fmt.Sprintf("%s-migration-%05d", vm, i), "namespace": benchNS,
			"labels": map[string]any{"kubevirt.io/vmi-name": vm}},
		"spec": map[string]any{"vmiName": vm},
	}}
	created, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(benchNS).Create(ctx, o, metav1.CreateOptions{FieldManager: specManager})
	if err != nil {
		return err
	}
	created.Object["status"] = map[string]any{"phase": "Succeeded", "phaseTransitionTimestamps": []any{
		map[string]any{"phase": "Pending", "phaseTransitionTimestamp": "2026-12-01T10:00:00Z"},
		map[string]any{"phase": "Scheduling", "phaseTransitionTimestamp": "2026-12-01T10:00:01Z"},
		map[string]any{"phase": "Running", "phaseTransitionTimestamp": "2026-12-01T10:00:05Z"},
		map[string]any{"phase": "Succeeded", "phaseTransitionTimestamp": "2026-12-01T10:00:40Z"}}}
	_, err = b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(benchNS).UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: statusManager})
	return err
}
