package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"vmdrain.io/e2e/kubevirt"
)

// entry remembers when this process moved a migration into a phase; it is
// finer than the second-resolution phaseTransitionTimestamps.
type entry struct {
	phase string
	at    time.Time
}

// syncMigration drives one VirtualMachineInstanceMigration a step further
// and says when to look at it again.
func (c *Controller) syncMigration(ctx context.Context, key string) (time.Duration, error) {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	obj, err := c.migrations.ByNamespace(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	m := &kubevirt.Migration{}
	if err := kubevirt.FromUnstructured(obj, m); err != nil {
		return 0, err
	}
	vmi := c.vmi(ns, m.Spec.VMIName)

	switch {
	case m.DeletionTimestamp != nil:
		return 0, c.abortDeleted(ctx, m, vmi)
	case m.Final():
		c.forget(m.UID)
		return 0, c.setFinalizer(ctx, m, false)
	case !slices.Contains(m.Finalizers, kubevirt.MigrationFinalizer):
		return 0, c.setFinalizer(ctx, m, true)
	case vmi == nil:
		return 0, c.fail(ctx, m, nil, "VMI "+m.Spec.VMIName+" does not exist", false)
	}

	switch m.Status.Phase {
	case "":
		return 0, c.setPhase(ctx, m, kubevirt.PhasePending)
	case kubevirt.PhasePending:
		return 0, c.pending(ctx, m, vmi)
	case kubevirt.PhaseScheduling:
		return 0, c.scheduling(ctx, m, vmi)
	case kubevirt.PhaseScheduled, kubevirt.PhasePreparingTarget, kubevirt.PhaseTargetReady:
		return c.step(ctx, m, vmi)
	case kubevirt.PhaseRunning:
		return c.running(ctx, m, vmi)
	}
	return 0, nil
}

// pending admits the migration once the VMI can migrate and no other
// migration of the same VMI is ahead of it.
func (c *Controller) pending(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI) error {
	if vmi.Status.Phase != "Running" {
		return c.fail(ctx, m, vmi, "VMI is not running", false)
	}
	if cond := condition(vmi, kubevirt.ConditionMigratable); cond == nil || cond.Status != "True" {
		msg := "VMI is not live-migratable"
		if cond != nil && cond.Message != "" {
			msg += ": " + cond.Message
		}
		return c.fail(ctx, m, vmi, msg, false)
	}
	if other := c.migrationAhead(m); other != "" {
		return nil // requeued when the other one changes
	}
	return c.setPhase(ctx, m, kubevirt.PhaseScheduling)
}

// scheduling creates the target pod, binds it to a target node once one is
// available, and waits for it to run.
func (c *Controller) scheduling(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI) error {
	pod, err := c.targetPod(ctx, m)
	if err != nil {
		return err
	}
	if pod == nil {
		pod, err = c.clients.Kube.CoreV1().Pods(m.Namespace).Create(ctx, LauncherPod(vmi, "", string(m.UID)), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create target pod: %w", err)
		}
		c.log.Info("target pod created", "migration", m.Namespace+"/"+m.Name, "pod", pod.Name)
	}
	if pod.Spec.NodeName == "" {
		node := c.pickTarget(vmi, m)
		if node == "" {
			return nil // stays in Scheduling; node and VMI changes requeue it
		}
		binding := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}
		if err := c.clients.Kube.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("bind target pod %s to %s: %w", pod.Name, node, err)
		}
		c.log.Info("target pod scheduled", "migration", m.Namespace+"/"+m.Name, "pod", pod.Name, "node", node)
		return nil
	}
	if pod.Status.Phase != corev1.PodRunning {
		return nil // kwok will run it; the pod update requeues
	}
	return c.setPhase(ctx, m, kubevirt.PhaseScheduled)
}

// step walks the short phases between a running target pod and the start of
// the transfer, StepDelay (scaled) each.
func (c *Controller) step(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI) (time.Duration, error) {
	if wait := c.scaled(c.cfg.StepDelay) - time.Since(c.enteredAt(m)); wait > 0 {
		return wait, nil
	}
	switch m.Status.Phase {
	case kubevirt.PhaseScheduled:
		state, err := c.state(ctx, m, vmi)
		if err != nil || state == nil {
			return 0, c.failOnMissingTarget(ctx, m, vmi, err)
		}
		if err := c.writeState(ctx, vmi, state); err != nil {
			return 0, err
		}
		return 0, c.setPhase(ctx, m, kubevirt.PhasePreparingTarget)
	case kubevirt.PhasePreparingTarget:
		return 0, c.setPhase(ctx, m, kubevirt.PhaseTargetReady)
	default: // TargetReady: the transfer starts as the VMI's next attempt
		attempt := atoi(m.Annotations[AttemptAnnotation])
		if attempt == 0 {
			attempt = atoi(vmi.Annotations[AttemptsAnnotation]) + 1
			return 0, c.annotate(ctx, kubevirt.MigrationResource, m.Namespace, m.Name, m.ResourceVersion, AttemptAnnotation, strconv.Itoa(attempt))
		}
		if atoi(vmi.Annotations[AttemptsAnnotation]) < attempt {
			if err := c.annotate(ctx, kubevirt.VMIResource, vmi.Namespace, vmi.Name, "", AttemptsAnnotation, strconv.Itoa(attempt)); err != nil {
				return 0, err
			}
		}
		if err := c.setPhase(ctx, m, kubevirt.PhaseRunning); err != nil {
			return 0, err
		}
		m.Status.PhaseTransitionTimestamps = append(m.Status.PhaseTransitionTimestamps,
			kubevirt.PhaseTransition{Phase: kubevirt.PhaseRunning, PhaseTransitionTimestamp: metav1.Now()})
		state, err := c.state(ctx, m, vmi)
		if err != nil || state == nil {
			return 0, c.failOnMissingTarget(ctx, m, vmi, err)
		}
		return 0, c.writeState(ctx, vmi, state)
	}
}

// running ends the transfer when its planned time has passed.
func (c *Controller) running(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI) (time.Duration, error) {
	out := c.plan(m, vmi)
	if left := c.scaled(out.After) - time.Since(c.enteredAt(m)); left > 0 {
		return left, nil
	}
	state, err := c.state(ctx, m, vmi)
	if err != nil || state == nil {
		return 0, c.failOnMissingTarget(ctx, m, vmi, err)
	}
	if !out.Succeeds {
		return 0, c.fail(ctx, m, vmi, out.Reason, out.Aborted)
	}

	// Success: the VMI now runs on the target; the source pod goes away.
	now := metav1.Now()
	state.Completed, state.EndTimestamp = true, &now
	target, err := c.targetPod(ctx, m)
	if err != nil || target == nil {
		return 0, c.failOnMissingTarget(ctx, m, vmi, err)
	}
	ops := []jsonPatchOp{
		{"add", "/status/nodeName", state.TargetNode},
		{"add", "/status/migrationState", state},
		{"add", "/status/activePods", map[string]string{string(target.UID): state.TargetNode}},
	}
	if err := c.jsonPatch(ctx, kubevirt.VMIResource, vmi.Namespace, vmi.Name, ops, "status"); err != nil {
		return 0, err
	}
	label, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{kubevirt.NodeNameLabel: state.TargetNode}}})
	if _, err := c.clients.Dynamic.Resource(kubevirt.VMIResource).Namespace(vmi.Namespace).Patch(ctx, vmi.Name, types.MergePatchType, label, metav1.PatchOptions{}); err != nil {
		return 0, err
	}
	pods, err := c.launcherPods(ctx, vmi)
	if err != nil {
		return 0, err
	}
	for _, p := range pods {
		if p.UID != target.UID {
			if err := c.deletePod(ctx, p); err != nil {
				return 0, err
			}
		}
	}
	c.log.Info("migration succeeded", "migration", m.Namespace+"/"+m.Name, "vmi", vmi.Name,
		"from", state.SourceNode, "to", state.TargetNode, "policy", state.MigrationPolicyName)
	return 0, c.setPhase(ctx, m, kubevirt.PhaseSucceeded)
}

// plan computes how the running transfer ends.
func (c *Controller) plan(m *kubevirt.Migration, vmi *kubevirt.VMI) kubevirt.Outcome {
	dirty, _ := kubevirt.ParseQuantity(vmi.Annotations[DirtyRateAnnotation])
	return kubevirt.Transfer{
		Bytes:           kubevirt.GuestMemory(vmi),
		DirtyRate:       dirty,
		Settings:        c.settings(vmi),
		ProgressTimeout: c.cfg.ProgressTimeout,
		FailAttempt:     atoi(m.Annotations[AttemptAnnotation]) <= atoi(vmi.Annotations[FailAttemptsAnnotation]),
	}.Plan()
}

// settings resolves the MigrationPolicy matching the VMI over the defaults.
func (c *Controller) settings(vmi *kubevirt.VMI) kubevirt.MigrationSettings {
	var policies []*kubevirt.MigrationPolicy
	objs, _ := c.policies.List(labels.Everything())
	for _, o := range objs {
		p := &kubevirt.MigrationPolicy{}
		if kubevirt.FromUnstructured(o, p) == nil {
			policies = append(policies, p)
		}
	}
	var nsLabels map[string]string
	if ns, err := c.namespaces.Get(vmi.Namespace); err == nil {
		nsLabels = ns.Labels
	}
	return kubevirt.Settings(kubevirt.MatchPolicy(policies, vmi.Labels, nsLabels), c.cfg.Defaults)
}

// state builds the VMI's migrationState for m from the migration and its
// target pod (nil when the target pod is gone or not scheduled).
func (c *Controller) state(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI) (*kubevirt.MigrationState, error) {
	pod, err := c.targetPod(ctx, m)
	if err != nil || pod == nil || pod.Spec.NodeName == "" {
		return nil, err
	}
	s := &kubevirt.MigrationState{
		MigrationUID:        string(m.UID),
		SourceNode:          vmi.Status.NodeName,
		TargetNode:          pod.Spec.NodeName,
		TargetPod:           pod.Name,
		Mode:                "PreCopy",
		MigrationPolicyName: c.settings(vmi).Policy,
	}
	if vmi.Status.MigrationState != nil && vmi.Status.MigrationState.MigrationUID == s.MigrationUID && vmi.Status.MigrationState.SourceNode != "" {
		s.SourceNode = vmi.Status.MigrationState.SourceNode
	}
	for _, t := range m.Status.PhaseTransitionTimestamps {
		if t.Phase == kubevirt.PhaseRunning {
			ts := t.PhaseTransitionTimestamp
			s.StartTimestamp = &ts
		}
	}
	return s, nil
}

// fail ends the migration as Failed: the target pod is removed and, when the
// VMI's migrationState belongs to this migration, it records the failure.
func (c *Controller) fail(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI, reason string, aborted bool) error {
	if err := c.finishFailed(ctx, m, vmi, reason, aborted, false); err != nil {
		return err
	}
	c.log.Info("migration failed", "migration", m.Namespace+"/"+m.Name, "vmi", m.Spec.VMIName, "reason", reason)
	return c.setPhase(ctx, m, kubevirt.PhaseFailed)
}

func (c *Controller) failOnMissingTarget(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI, err error) error {
	if err != nil {
		return err
	}
	return c.fail(ctx, m, vmi, "target pod disappeared", false)
}

// abortDeleted handles a deleted migration object: an unfinished migration is
// aborted (KubeVirt's "cancel by deleting"), then the finalizer is released.
func (c *Controller) abortDeleted(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI) error {
	if !slices.Contains(m.Finalizers, kubevirt.MigrationFinalizer) {
		return nil
	}
	if !m.Final() {
		if err := c.finishFailed(ctx, m, vmi, "migration aborted: the migration object was deleted", true, true); err != nil {
			return err
		}
		c.log.Info("migration aborted by deletion", "migration", m.Namespace+"/"+m.Name, "vmi", m.Spec.VMIName, "phase", m.Status.Phase)
	}
	c.forget(m.UID)
	return c.setFinalizer(ctx, m, false)
}

func (c *Controller) finishFailed(ctx context.Context, m *kubevirt.Migration, vmi *kubevirt.VMI, reason string, aborted, requested bool) error {
	started := slices.Contains([]string{kubevirt.PhasePreparingTarget, kubevirt.PhaseTargetReady, kubevirt.PhaseRunning}, m.Status.Phase)
	if vmi != nil && started {
		state, err := c.state(ctx, m, vmi)
		if err != nil {
			return err
		}
		if state != nil {
			now := metav1.Now()
			state.Completed, state.Failed, state.EndTimestamp, state.FailureReason = true, true, &now, reason
			state.AbortRequested = requested
			if aborted {
				state.AbortStatus = "Succeeded"
			}
			if err := c.writeState(ctx, vmi, state); err != nil {
				return err
			}
		}
	}
	pod, err := c.targetPod(ctx, m)
	if err != nil || pod == nil {
		return err
	}
	return c.deletePod(ctx, pod)
}

// migrationAhead names another unfinished migration of the same VMI that
// goes first (it started, or was created earlier), or "".
func (c *Controller) migrationAhead(m *kubevirt.Migration) string {
	objs, _ := c.migrations.ByNamespace(m.Namespace).List(labels.Everything())
	var others []*kubevirt.Migration
	for _, o := range objs {
		x := &kubevirt.Migration{}
		if kubevirt.FromUnstructured(o, x) != nil || x.UID == m.UID || x.Spec.VMIName != m.Spec.VMIName || x.Final() || x.DeletionTimestamp != nil {
			continue
		}
		others = append(others, x)
	}
	for _, x := range others {
		if x.Status.Phase != "" && x.Status.Phase != kubevirt.PhasePending {
			return x.Name
		}
	}
	for _, x := range others {
		if x.CreationTimestamp.Before(&m.CreationTimestamp) || (x.CreationTimestamp.Equal(&m.CreationTimestamp) && x.Name < m.Name) {
			return x.Name
		}
	}
	return ""
}

// pickTarget chooses a node for the target pod: Ready, schedulable, without
// NoSchedule/NoExecute taints, not the source, matching the VMI's node
// selector and the migration's addedNodeSelector; the one running the fewest
// virt-launcher pods wins (then by name). "" when none qualifies or the VMI
// asks for it with sim.vmdrain.io/target-unschedulable.
func (c *Controller) pickTarget(vmi *kubevirt.VMI, m *kubevirt.Migration) string {
	if vmi.Annotations[TargetUnschedulableAnnotation] == "true" {
		return ""
	}
	nodes, _ := c.nodes.List(labels.Everything())
	pods, _ := c.pods.List(labels.Everything())
	load := map[string]int{}
	for _, p := range pods {
		load[p.Spec.NodeName]++
	}
	selector := labels.Set{}
	for k, v := range m.Spec.AddedNodeSelector {
		selector[k] = v
	}
	for k, v := range vmi.Spec.NodeSelector {
		selector[k] = v
	}
	var candidates []string
	for _, n := range nodes {
		if n.Name == vmi.Status.NodeName || !NodeSchedulable(n) || !labels.SelectorFromSet(selector).Matches(labels.Set(n.Labels)) {
			continue
		}
		candidates = append(candidates, n.Name)
	}
	sort.Slice(candidates, func(i, j int) bool {
		a, b := candidates[i], candidates[j]
		if load[a] != load[b] {
			return load[a] < load[b]
		}
		return a < b
	})
	if len(candidates) == 0 {
		return ""
	}
	return candidates[0]
}

// NodeSchedulable reports whether a new pod may land on n.
func NodeSchedulable(n *corev1.Node) bool {
	if n.Spec.Unschedulable || n.DeletionTimestamp != nil {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setPhase moves m to phase, appending a phase transition timestamp; the
// resourceVersion makes a stale cache fail with a conflict instead of
// repeating a step.
func (c *Controller) setPhase(ctx context.Context, m *kubevirt.Migration, phase string) error {
	ts := append(slices.Clone(m.Status.PhaseTransitionTimestamps), kubevirt.PhaseTransition{Phase: phase, PhaseTransitionTimestamp: metav1.Now()})
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": m.ResourceVersion},
		"status":   map[string]any{"phase": phase, "phaseTransitionTimestamps": ts},
	})
	_, err := c.clients.Dynamic.Resource(kubevirt.MigrationResource).Namespace(m.Namespace).
		Patch(ctx, m.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.entered[m.UID] = entry{phase, time.Now()}
	c.mu.Unlock()
	c.log.Debug("phase", "migration", m.Namespace+"/"+m.Name, "phase", phase)
	return nil
}

// enteredAt is when m entered its current phase: as remembered by this
// process, else from its phase transition timestamps.
func (c *Controller) enteredAt(m *kubevirt.Migration) time.Time {
	c.mu.Lock()
	e, ok := c.entered[m.UID]
	c.mu.Unlock()
	if ok && e.phase == m.Status.Phase {
		return e.at
	}
	for i := len(m.Status.PhaseTransitionTimestamps) - 1; i >= 0; i-- {
		if t := m.Status.PhaseTransitionTimestamps[i]; t.Phase == m.Status.Phase {
			return t.PhaseTransitionTimestamp.Time
		}
	}
	return time.Now()
}

func (c *Controller) forget(uid types.UID) {
	c.mu.Lock()
	delete(c.entered, uid)
	c.mu.Unlock()
}

func (c *Controller) setFinalizer(ctx context.Context, m *kubevirt.Migration, present bool) error {
	has := slices.Contains(m.Finalizers, kubevirt.MigrationFinalizer)
	if has == present {
		return nil
	}
	fins := slices.DeleteFunc(slices.Clone(m.Finalizers), func(f string) bool { return f == kubevirt.MigrationFinalizer })
	if present {
		fins = append(fins, kubevirt.MigrationFinalizer)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": m.ResourceVersion, "finalizers": fins}})
	_, err := c.clients.Dynamic.Resource(kubevirt.MigrationResource).Namespace(m.Namespace).
		Patch(ctx, m.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// targetPod finds m's target pod with a live list (the cache may lag behind
// a pod this process just created).
func (c *Controller) targetPod(ctx context.Context, m *kubevirt.Migration) (*corev1.Pod, error) {
	list, err := c.clients.Kube.CoreV1().Pods(m.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: kubevirt.MigrationJobLabel + "=" + string(m.UID),
	})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp == nil {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// launcherPods lists the virt-launcher pods of vmi (live).
func (c *Controller) launcherPods(ctx context.Context, vmi *kubevirt.VMI) ([]*corev1.Pod, error) {
	list, err := c.clients.Kube.CoreV1().Pods(vmi.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: kubevirt.AppLabel + "=" + kubevirt.LauncherValue,
	})
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for i := range list.Items {
		if p := &list.Items[i]; p.Annotations[kubevirt.DomainAnnotation] == vmi.Name && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func (c *Controller) deletePod(ctx context.Context, p *corev1.Pod) error {
	err := c.clients.Kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Controller) vmi(ns, name string) *kubevirt.VMI {
	obj, err := c.vmis.ByNamespace(ns).Get(name)
	if err != nil {
		return nil
	}
	vmi := &kubevirt.VMI{}
	if kubevirt.FromUnstructured(obj, vmi) != nil {
		return nil
	}
	return vmi
}

func condition(vmi *kubevirt.VMI, typ string) *kubevirt.Condition {
	for i := range vmi.Status.Conditions {
		if vmi.Status.Conditions[i].Type == typ {
			return &vmi.Status.Conditions[i]
		}
	}
	return nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
