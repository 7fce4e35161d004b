package sim

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"vmdrain.io/e2e/kubevirt"
)

// syncVMI keeps a VMI's LiveMigratable condition and migrationMethod current
// (they depend on its spec and on its PVCs' access modes) and, once a VMI is
// gone, deletes its virt-launcher pods as garbage collection would.
func (c *Controller) syncVMI(ctx context.Context, key string) (after time.Duration, err error) {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	vmi := c.vmi(ns, name)
	if vmi == nil {
		// A new VM's pod event can come before its VMI's: only a VMI the
		// API server no longer has is gone.
		_, err := c.clients.Dynamic.Resource(kubevirt.VMIResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return 200 * time.Millisecond, nil
		}
		if !apierrors.IsNotFound(err) {
			return 0, err
		}
		return 0, c.deleteLaunchers(ctx, ns, name)
	}
	if vmi.Status.Phase != "Running" || vmi.DeletionTimestamp != nil {
		return 0, nil // not started (by the VM helper) yet, ended, or going away
	}
	if killed, err := c.launcherGone(ctx, vmi); err != nil || killed {
		return 0, err
	}
	m := kubevirt.Migratable(vmi, func(ns, name string) ([]corev1.PersistentVolumeAccessMode, bool) {
		pvc, err := c.pvcs.PersistentVolumeClaims(ns).Get(name)
		if err != nil {
			return nil, false
		}
		return pvc.Spec.AccessModes, true
	})
	want := m.Condition()
	old := condition(vmi, kubevirt.ConditionMigratable)
	if old != nil && old.Status == want.Status && old.Reason == want.Reason && old.Message == want.Message && vmi.Status.MigrationMethod == m.Method {
		return 0, nil
	}
	now := metav1.Now()
	want.LastTransitionTime = &now
	conds := []kubevirt.Condition{want}
	for _, cond := range vmi.Status.Conditions {
		if cond.Type != kubevirt.ConditionMigratable {
			conds = append(conds, cond)
		}
	}
	c.log.Info("LiveMigratable", "vmi", key, "status", want.Status, "reason", want.Reason, "method", m.Method)
	return 0, c.jsonPatch(ctx, kubevirt.VMIResource, ns, name, []jsonPatchOp{
		{"add", "/status/conditions", conds},
		{"add", "/status/migrationMethod", m.Method},
	}, "status")
}

// launcherGone ends a running VMI whose virt-launcher pod on its node was
// deleted (evicted, say) other than by a migration: the VM died with its pod,
// so the VMI goes to phase Failed as in KubeVirt. The VMI and its pods are
// read live, so a migration that just moved the VMI is not mistaken for it.
func (c *Controller) launcherGone(ctx context.Context, vmi *kubevirt.VMI) (bool, error) {
	obj, err := c.clients.Dynamic.Resource(kubevirt.VMIResource).Namespace(vmi.Namespace).Get(ctx, vmi.Name, metav1.GetOptions{})
	if err != nil {
		return false, ignoreNotFound(err)
	}
	live := &kubevirt.VMI{}
	if err := kubevirt.FromUnstructured(obj, live); err != nil || live.Status.Phase != "Running" {
		return false, err
	}
	pods, err := c.launcherPods(ctx, live)
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		if p.Spec.NodeName == live.Status.NodeName {
			return false, nil
		}
	}
	c.log.Info("launcher pod gone: VMI failed", "vmi", vmi.Namespace+"/"+vmi.Name, "node", live.Status.NodeName)
	return true, c.jsonPatch(ctx, kubevirt.VMIResource, vmi.Namespace, vmi.Name, []jsonPatchOp{
		{"test", "/metadata/resourceVersion", live.ResourceVersion},
		{"add", "/status/phase", "Failed"},
		{"add", "/status/activePods", map[string]string{}},
	}, "status")
}

func (c *Controller) deleteLaunchers(ctx context.Context, ns, vmiName string) error {
	pods, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, p := range pods {
		if p.Annotations[kubevirt.DomainAnnotation] == vmiName && p.DeletionTimestamp == nil {
			if err := c.deletePod(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncNamespace gives every namespace its "default" service account, as
// kube-controller-manager would; pods cannot be created without it.
func (c *Controller) syncNamespace(ctx context.Context, name string) (time.Duration, error) {
	ns, err := c.namespaces.Get(name)
	if err != nil || ns.DeletionTimestamp != nil {
		return 0, nil
	}
	return 0, EnsureServiceAccount(ctx, c.clients.Kube, name)
}

// writeState replaces the VMI's status.migrationState.
func (c *Controller) writeState(ctx context.Context, vmi *kubevirt.VMI, s *kubevirt.MigrationState) error {
	return c.jsonPatch(ctx, kubevirt.VMIResource, vmi.Namespace, vmi.Name, []jsonPatchOp{{"add", "/status/migrationState", s}}, "status")
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// jsonPatch applies a JSON patch; an object that is gone is not an error.
func (c *Controller) jsonPatch(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, ops []jsonPatchOp, sub ...string) error {
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = c.clients.Dynamic.Resource(gvr).Namespace(ns).Patch(ctx, name, types.JSONPatchType, data, metav1.PatchOptions{}, sub...)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// annotate sets one annotation; a non-empty resourceVersion is a precondition.
func (c *Controller) annotate(ctx context.Context, gvr schema.GroupVersionResource, ns, name, resourceVersion, key, value string) error {
	meta := map[string]any{"annotations": map[string]string{key: value}}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	data, _ := json.Marshal(map[string]any{"metadata": meta})
	_, err := c.clients.Dynamic.Resource(gvr).Namespace(ns).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
