package sim

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"vmdrain.io/e2e/kubevirt"
)

// Node mode: beside KubeVirt's real virt-controller and virt-api, the
// simulator plays only what runs on a node, virt-handler and virt-launcher.
// It reports what virt-handler reports on the VMI (as virt-handler's service
// account: virt-api's VMI mutator drops status changes from anyone else):
//
//   - a VMI virt-controller has Scheduled on a node becomes Running, with
//     the LiveMigratable condition, migrationMethod and selinuxContext;
//   - the target of a migration prepares (targetNodeAddress: TargetReady),
//     the source starts the transfer (startTimestamp: Running) and ends it
//     after memory ÷ bandwidth (scaled), or fails it (fault annotations,
//     dirty-rate non-convergence, abort on request), as migrationState
//     completed / failed;
//   - after a success the VMI runs on the target (nodeName, label,
//     evacuationNodeName cleared) and the source launcher pod is gone; after
//     a failure the target launcher pod is gone (a launcher whose domain
//     ended exits; the bed's kubelets cannot exit a container, so the agent
//     deletes the pod).
//
// It also labels every node kubevirt.io/schedulable=true and writes the
// kubevirt.io/heartbeat annotation, as virt-handler does. Migration phases,
// target pods, evacuation, admission and everything else are KubeVirt's.

// Node-agent bookkeeping annotations and settings.
const (
	// SchedulableLabel is the node label virt-handler sets and launcher pods select.
	SchedulableLabel = "kubevirt.io/schedulable"
	// HeartbeatAnnotation is virt-handler's heartbeat on its node.
	HeartbeatAnnotation = "kubevirt.io/heartbeat"
	// MigrationTargetNodeLabel is set on a migrating VMI by virt-controller.
	MigrationTargetNodeLabel = "kubevirt.io/migrationTargetNodeName"
	heartbeatPeriod          = 30 * time.Second
)

// nodeState remembers when this process saw a migration reach a step.
type nodeState struct {
	mu   sync.Mutex
	seen map[string]time.Time // migrationUID/step → first seen
}

func (s *nodeState) since(uid, step string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := uid + "/" + step
	t, ok := s.seen[k]
	if !ok {
		t = time.Now()
		s.seen[k] = t
	}
	return time.Since(t)
}

func (s *nodeState) forget(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.seen {
		if len(k) > len(uid) && k[:len(uid)+1] == uid+"/" {
			delete(s.seen, k)
		}
	}
}

// runNode is Run in node mode.
func (c *Controller) runNode(ctx context.Context) error {
	if c.clients.Handler == nil {
		return fmt.Errorf("node mode needs virt-handler's clients")
	}
	c.nodeSeen = &nodeState{seen: map[string]time.Time{}}
	core := informers.NewSharedInformerFactory(c.clients.Kube, 0)
	launchers := informers.NewSharedInformerFactoryWithOptions(c.clients.Kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = kubevirt.AppLabel + "=" + kubevirt.LauncherValue
		}))
	dyn := dynamicinformer.NewDynamicSharedInformerFactory(c.clients.Dynamic, 0)
	nodeInf := core.Core().V1().Nodes()
	podInf := launchers.Core().V1().Pods()
	pvcInf := core.Core().V1().PersistentVolumeClaims()
	nsInf := core.Core().V1().Namespaces()
	vmiInf := dyn.ForResource(kubevirt.VMIResource)
	migInf := dyn.ForResource(kubevirt.MigrationResource)
	c.nodes, c.pods, c.pvcs, c.namespaces = nodeInf.Lister(), podInf.Lister(), pvcInf.Lister(), nsInf.Lister()
	c.vmis, c.migrations = vmiInf.Lister(), migInf.Lister()

	on := func(inf cache.SharedIndexInformer, h cache.ResourceEventHandlerFuncs) {
		if _, err := inf.AddEventHandler(h); err != nil {
			utilruntime.HandleError(err)
		}
		c.synced = append(c.synced, inf.HasSynced)
	}
	on(vmiInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueue(c.vmiQ, o) },
		UpdateFunc: func(_, o any) { c.enqueue(c.vmiQ, o) },
	})
	on(migInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueueMigrationVMI(o) },
		UpdateFunc: func(_, o any) { c.enqueueMigrationVMI(o) },
		DeleteFunc: func(o any) { c.enqueueMigrationVMI(o) },
	})
	podChanged := func(o any) {
		if pod, ok := tombstone(o).(*corev1.Pod); ok {
			if name := launcherVMI(pod); name != "" {
				c.vmiQ.Add(pod.Namespace + "/" + name)
			}
		}
	}
	on(podInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc: podChanged, UpdateFunc: func(_, o any) { podChanged(o) }, DeleteFunc: podChanged,
	})
	on(nodeInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueue(c.nodeQ, o) },
		UpdateFunc: func(_, o any) { c.enqueue(c.nodeQ, o) },
	})
	pvcChanged := func(o any) {
		if pvc, ok := tombstone(o).(*corev1.PersistentVolumeClaim); ok {
			c.enqueueVMIsIn(pvc.Namespace)
		}
	}
	on(pvcInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc: pvcChanged, UpdateFunc: func(_, o any) { pvcChanged(o) }, DeleteFunc: pvcChanged,
	})
	on(nsInf.Informer(), cache.ResourceEventHandlerFuncs{})

	core.Start(ctx.Done())
	launchers.Start(ctx.Done())
	dyn.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("informer caches did not sync")
	}
	c.log.Info("node agent running (virt-handler, virt-launcher)", "timeScale", c.cfg.TimeScale)
	close(c.up)

	var wg sync.WaitGroup
	work := func(q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string) (time.Duration, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.process(ctx, q, sync) {
			}
		}()
	}
	for i := 0; i < c.cfg.Workers; i++ {
		work(c.vmiQ, c.syncNodeVMI)
	}
	work(c.nodeQ, c.syncHandlerNode)
	<-ctx.Done()
	c.vmiQ.ShutDown()
	c.nodeQ.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) enqueueMigrationVMI(o any) {
	var m kubevirt.Migration
	if kubevirt.FromUnstructured(tombstone(o), &m) == nil && m.Spec.VMIName != "" {
		c.vmiQ.Add(m.Namespace + "/" + m.Spec.VMIName)
	}
}

// launcherVMI names the VMI of a virt-launcher pod: KubeVirt's pods carry
// the vm.kubevirt.io/name label; the simulator's also the domain annotation.
func launcherVMI(pod *corev1.Pod) string {
	if n := pod.Annotations[kubevirt.DomainAnnotation]; n != "" {
		return n
	}
	return pod.Labels["vm.kubevirt.io/name"]
}

// Node resources and labels launcher pods need, and who provides them on a
// real node: virt-handler's device plugins and node labeller, the kubelet
// (played by kwok, which sets neither).
var (
	handlerDevices = corev1.ResourceList{
		"devices.kubevirt.io/kvm":       resource.MustParse("1k"),
		"devices.kubevirt.io/tun":       resource.MustParse("1k"),
		"devices.kubevirt.io/vhost-net": resource.MustParse("1k"),
	}
	kubeletEphemeralStorage = resource.MustParse("100Gi")
	handlerLabels           = map[string]string{
		SchedulableLabel:                    "true",
		"machine-type.node.kubevirt.io/q35": "true",
	}
)

// syncHandlerNode: virt-handler marks its node schedulable for VMIs,
// advertises its devices and machine types and heartbeats there. The
// kubelet's kubernetes.io/arch label and ephemeral-storage capacity are set
// too when kwok left them out.
func (c *Controller) syncHandlerNode(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if node.DeletionTimestamp != nil {
		return 0, nil
	}
	status := map[string]any{}
	for _, field := range []struct {
		name string
		list corev1.ResourceList
	}{{"capacity", node.Status.Capacity}, {"allocatable", node.Status.Allocatable}} {
		add := map[string]string{}
		for res, q := range handlerDevices {
			if _, ok := field.list[res]; !ok {
				add[string(res)] = q.String()
			}
		}
		if _, ok := field.list[corev1.ResourceEphemeralStorage]; !ok {
			add[string(corev1.ResourceEphemeralStorage)] = kubeletEphemeralStorage.String()
		}
		if len(add) > 0 {
			status[field.name] = add
		}
	}
	if len(status) > 0 {
		patch, _ := json.Marshal(map[string]any{"status": status})
		if _, err := c.clients.Kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			return 0, ignoreNotFound(err)
		}
	}
	labels := map[string]string{}
	for k, v := range handlerLabels {
		if node.Labels[k] != v {
			labels[k] = v
		}
	}
	if node.Labels[corev1.LabelArchStable] == "" {
		labels[corev1.LabelArchStable] = "amd64"
	}
	if last, err := time.Parse(time.RFC3339, node.Annotations[HeartbeatAnnotation]); err == nil &&
		len(labels) == 0 && time.Since(last) < heartbeatPeriod {
		return heartbeatPeriod - time.Since(last), nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      labels,
		"annotations": map[string]string{HeartbeatAnnotation: time.Now().UTC().Format(time.RFC3339)},
	}})
	_, err = c.clients.HandlerKube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return heartbeatPeriod, ignoreNotFound(err)
}

// syncNodeVMI plays virt-handler (and the domain in virt-launcher) for one VMI.
func (c *Controller) syncNodeVMI(ctx context.Context, key string) (time.Duration, error) {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	vmi := c.vmi(ns, name)
	if vmi == nil || vmi.DeletionTimestamp != nil {
		return 0, nil
	}
	if err := c.reportImageIDs(ctx, vmi); err != nil {
		return 0, err
	}
	if err := c.releasePlacement(ctx, vmi); err != nil {
		return 0, err
	}
	switch vmi.Status.Phase {
	case "Scheduled":
		return 0, c.startDomain(ctx, vmi)
	case "Running":
	default:
		return 0, nil
	}
	if ms := vmi.Status.MigrationState; ms != nil && ms.MigrationUID != "" && !ms.Completed {
		return c.migrateNode(ctx, vmi)
	}
	return 0, c.updateMigratable(ctx, vmi)
}

// startDomain: the launcher pod on the VMI's node runs, so its domain starts
// and virt-handler reports the VMI Running.
func (c *Controller) startDomain(ctx context.Context, vmi *kubevirt.VMI) error {
	pods, err := c.launcherPods(ctx, vmi)
	if err != nil {
		return err
	}
	running := false
	for _, p := range pods {
		if p.Spec.NodeName == vmi.Status.NodeName && p.Status.Phase == corev1.PodRunning {
			running = true
		}
	}
	if !running {
		return nil // the pod update requeues
	}
	m := kubevirt.Migratable(vmi, c.pvcLookup())
	c.log.Info("domain running", "vmi", vmi.Namespace+"/"+vmi.Name, "node", vmi.Status.NodeName, "liveMigratable", m.Condition().Status)
	ops := []jsonPatchOp{
		{"test", "/status/phase", "Scheduled"},
		{"add", "/status/phase", "Running"},
		{"add", "/status/migrationMethod", m.Method},
		// The bed's nodes have no SELinux: virt-handler reports "none".
		{"add", "/status/selinuxContext", "none"},
	}
	// virt-controller keeps the Ready condition (from the launcher pod).
	return c.handlerPatch(ctx, vmi, append(ops, migratableOps(vmi, m)...))
}

// migratableOps sets the LiveMigratable condition in place: the other
// conditions belong to virt-controller and are left as they are.
func migratableOps(vmi *kubevirt.VMI, m kubevirt.Migratability) []jsonPatchOp {
	now := metav1.Now()
	cond := m.Condition()
	cond.LastTransitionTime = &now
	if len(vmi.Status.Conditions) == 0 {
		return []jsonPatchOp{{"add", "/status/conditions", []kubevirt.Condition{cond}}}
	}
	for i, x := range vmi.Status.Conditions {
		if x.Type == kubevirt.ConditionMigratable {
			path := fmt.Sprintf("/status/conditions/%d", i)
			return []jsonPatchOp{{"test", path + "/type", kubevirt.ConditionMigratable}, {"replace", path, cond}}
		}
	}
	return []jsonPatchOp{{"add", "/status/conditions/-", cond}}
}

// releasePlacement: once sim.vmdrain.io/target-unschedulable is gone from
// a VMI created with it, every node gets the placement label the VMI's pods
// require, so its migration targets can be scheduled.
func (c *Controller) releasePlacement(ctx context.Context, vmi *kubevirt.VMI) error {
	key := vmi.Annotations[PlacementAnnotation]
	if key == "" || vmi.Annotations[TargetUnschedulableAnnotation] == "true" {
		return nil
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: "true"}}})
	for _, n := range nodes {
		if n.Labels[key] == "true" || n.DeletionTimestamp != nil {
			continue
		}
		if _, err := c.clients.Kube.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		c.log.Info("targets schedulable again", "vmi", vmi.Namespace+"/"+vmi.Name, "node", n.Name)
	}
	return nil
}

// reportImageIDs fills in what the kubelet reports and kwok leaves empty:
// the imageID of a launcher pod's containerDisk containers (volume<name>),
// from which virt-controller pins the image digest for a migration target.
// The digest is made up (sha256 of the image reference).
func (c *Controller) reportImageIDs(ctx context.Context, vmi *kubevirt.VMI) error {
	pods, err := c.pods.Pods(vmi.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, p := range pods {
		if launcherVMI(p) != vmi.Name || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		var ops []jsonPatchOp
		for i, st := range p.Status.ContainerStatuses {
			if !strings.HasPrefix(st.Name, "volume") || st.ImageID != "" || st.Image == "" {
				continue
			}
			base := st.Image
			if at := strings.Index(base, "@"); at >= 0 {
				base = base[:at]
			} else if colon := strings.LastIndex(base, ":"); colon > strings.LastIndex(base, "/") {
				base = base[:colon]
			}
			path := fmt.Sprintf("/status/containerStatuses/%d", i)
			ops = append(ops, jsonPatchOp{"test", path + "/name", st.Name},
				jsonPatchOp{"add", path + "/imageID", fmt.Sprintf("%s@sha256:%x", base, sha256.Sum256([]byte(st.Image)))})
		}
		if len(ops) == 0 {
			continue
		}
		data, _ := json.Marshal(ops)
		if _, err := c.clients.Kube.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.JSONPatchType, data, metav1.PatchOptions{}, "status"); err != nil && !apierrors.IsNotFound(err) {
			return conflict(err)
		}
	}
	return nil
}

func (c *Controller) pvcLookup() kubevirt.ClaimLookup {
	return func(ns, name string) ([]corev1.PersistentVolumeAccessMode, bool) {
		pvc, err := c.pvcs.PersistentVolumeClaims(ns).Get(name)
		if err != nil {
			return nil, false
		}
		return pvc.Spec.AccessModes, true
	}
}

// updateMigratable keeps LiveMigratable and migrationMethod current.
func (c *Controller) updateMigratable(ctx context.Context, vmi *kubevirt.VMI) error {
	m := kubevirt.Migratable(vmi, c.pvcLookup())
	want := m.Condition()
	old := condition(vmi, kubevirt.ConditionMigratable)
	if old != nil && old.Status == want.Status && old.Reason == want.Reason && old.Message == want.Message && vmi.Status.MigrationMethod == m.Method {
		return nil
	}
	return c.handlerPatch(ctx, vmi, append(migratableOps(vmi, m), jsonPatchOp{"add", "/status/migrationMethod", m.Method}))
}

// migrateNode moves the VMI's migration on as the target's and the source's
// virt-handler would, one step per call.
func (c *Controller) migrateNode(ctx context.Context, vmi *kubevirt.VMI) (time.Duration, error) {
	ms := vmi.Status.MigrationState
	uid := ms.MigrationUID
	mig := c.migrationByUID(vmi.Namespace, uid)
	step := c.scaled(c.cfg.StepDelay)

	if ms.AbortRequested && ms.StartTimestamp != nil {
		return 0, c.endMigration(ctx, vmi, mig, false, "migration aborted on request", true)
	}
	if ms.TargetNode == "" {
		return 0, nil // virt-controller has not handed the target pod over yet
	}
	target := c.podNamed(vmi.Namespace, ms.TargetPod)
	if ms.TargetNodeAddress == "" {
		// Target virt-handler: the target pod runs; its domain is prepared
		// and the migration listener advertised.
		if target == nil || target.Status.Phase != corev1.PodRunning {
			return 0, nil
		}
		if wait := step - c.nodeSeen.since(uid, "prepare"); wait > 0 {
			return wait, nil
		}
		addr := "127.0.0.1"
		if n, err := c.nodes.Get(ms.TargetNode); err == nil {
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP && a.Address != "" {
					addr = a.Address
				}
			}
		}
		c.log.Debug("migration target ready", "vmi", vmi.Namespace+"/"+vmi.Name, "target", ms.TargetNode)
		return 0, c.handlerPatch(ctx, vmi, []jsonPatchOp{
			{"test", "/status/migrationState/migrationUid", uid},
			{"add", "/status/migrationState/targetNodeAddress", addr},
			{"add", "/status/migrationState/targetDirectMigrationNodePorts", map[string]int{"49152": 0, "49153": 49153}},
		})
	}
	if ms.StartTimestamp == nil {
		// Source virt-handler: starts the transfer once virt-controller
		// reports the target ready.
		if mig == nil || mig.Status.Phase != kubevirt.PhaseTargetReady {
			return 0, nil
		}
		if wait := step - c.nodeSeen.since(uid, "start"); wait > 0 {
			return wait, nil
		}
		// The transfer is the VMI's next attempt, counted once per migration.
		attempt := atoi(mig.Annotations[AttemptAnnotation])
		if attempt == 0 {
			attempt = atoi(vmi.Annotations[AttemptsAnnotation]) + 1
			if err := c.annotate(ctx, kubevirt.MigrationResource, mig.Namespace, mig.Name, mig.ResourceVersion, AttemptAnnotation, strconv.Itoa(attempt)); err != nil {
				return 0, err
			}
		}
		if atoi(vmi.Annotations[AttemptsAnnotation]) < attempt {
			if err := c.handlerAnnotate(ctx, vmi, AttemptsAnnotation, strconv.Itoa(attempt)); err != nil {
				return 0, err
			}
		}
		now := metav1.Now()
		c.log.Debug("migration transfer started", "vmi", vmi.Namespace+"/"+vmi.Name, "attempt", attempt)
		c.nodeSeen.since(uid, "transfer")
		return 0, c.handlerPatch(ctx, vmi, []jsonPatchOp{
			{"test", "/status/migrationState/migrationUid", uid},
			{"add", "/status/migrationState/startTimestamp", now},
			{"add", "/status/migrationState/mode", "PreCopy"},
		})
	}
	// The transfer runs.
	out := c.nodePlan(vmi, mig)
	if left := c.scaled(out.After) - c.nodeSeen.since(uid, "transfer"); left > 0 {
		return left, nil
	}
	return 0, c.endMigration(ctx, vmi, mig, out.Succeeds, out.Reason, out.Aborted)
}

// nodePlan plans the transfer from the migration configuration virt-controller
// wrote into migrationState (the KubeVirt CR's, under a matching policy).
func (c *Controller) nodePlan(vmi *kubevirt.VMI, mig *kubevirt.Migration) kubevirt.Outcome {
	s := c.cfg.Defaults
	progress := c.cfg.ProgressTimeout
	if mc := vmi.Status.MigrationState.MigrationConfiguration; mc != nil {
		if mc.BandwidthPerMigration != nil {
			s.Bandwidth = mc.BandwidthPerMigration.Value()
		}
		if mc.CompletionTimeoutPerGiB != nil {
			s.CompletionTimeoutPerGiB = *mc.CompletionTimeoutPerGiB
		}
		if mc.ProgressTimeout != nil {
			progress = time.Duration(*mc.ProgressTimeout) * time.Second
		}
		s.AllowConvergence = (mc.AllowAutoConverge != nil && *mc.AllowAutoConverge) || (mc.AllowPostCopy != nil && *mc.AllowPostCopy)
	}
	dirty, _ := kubevirt.ParseQuantity(vmi.Annotations[DirtyRateAnnotation])
	attempt := atoi(vmi.Annotations[AttemptsAnnotation])
	if mig != nil && mig.Annotations[AttemptAnnotation] != "" {
		attempt = atoi(mig.Annotations[AttemptAnnotation])
	}
	return kubevirt.Transfer{
		Bytes:           kubevirt.GuestMemory(vmi),
		DirtyRate:       dirty,
		Settings:        s,
		ProgressTimeout: progress,
		FailAttempt:     attempt <= atoi(vmi.Annotations[FailAttemptsAnnotation]),
	}.Plan()
}

// endMigration reports the end of the transfer as the source and target
// virt-handlers do, then removes the launcher pod whose domain is gone.
func (c *Controller) endMigration(ctx context.Context, vmi *kubevirt.VMI, mig *kubevirt.Migration, ok bool, reason string, aborted bool) error {
	ms := vmi.Status.MigrationState
	now := metav1.Now()
	ops := []jsonPatchOp{
		{"test", "/status/migrationState/migrationUid", ms.MigrationUID},
		{"add", "/status/migrationState/completed", true},
		{"add", "/status/migrationState/endTimestamp", now},
	}
	name := vmi.Namespace + "/" + vmi.Name
	if ok {
		ops = append(ops,
			jsonPatchOp{"add", "/status/migrationState/targetNodeDomainDetected", true},
			jsonPatchOp{"add", "/status/migrationState/targetNodeDomainReadyTimestamp", now},
			jsonPatchOp{"add", "/status/nodeName", ms.TargetNode},
			jsonPatchOp{"add", "/metadata/labels/" + escapePointer(kubevirt.NodeNameLabel), ms.TargetNode},
		)
		if vmi.Status.EvacuationNodeName != "" {
			ops = append(ops, jsonPatchOp{"remove", "/status/evacuationNodeName", nil})
		}
		if _, has := vmi.Labels[MigrationTargetNodeLabel]; has {
			ops = append(ops, jsonPatchOp{"remove", "/metadata/labels/" + escapePointer(MigrationTargetNodeLabel), nil})
		}
	} else {
		ops = append(ops,
			jsonPatchOp{"add", "/status/migrationState/failed", true},
			jsonPatchOp{"add", "/status/migrationState/failureReason", reason},
		)
		if aborted {
			ops = append(ops, jsonPatchOp{"add", "/status/migrationState/abortStatus", "Succeeded"})
		}
	}
	if err := c.handlerPatch(ctx, vmi, ops); err != nil {
		return err
	}
	c.nodeSeen.forget(ms.MigrationUID)
	migName := ""
	if mig != nil {
		migName = mig.Name
	}
	pods, err := c.launcherPods(ctx, vmi)
	if err != nil {
		return err
	}
	for _, p := range pods {
		source := p.Name != ms.TargetPod
		if (ok && source) || (!ok && !source) {
			if err := c.deletePod(ctx, p); err != nil {
				return err
			}
		}
	}
	if ok {
		c.log.Info("migration succeeded", "migration", migName, "vmi", name, "from", ms.SourceNode, "to", ms.TargetNode)
	} else {
		c.log.Info("migration failed", "migration", migName, "vmi", name, "reason", reason)
	}
	return nil
}

func (c *Controller) migrationByUID(ns, uid string) *kubevirt.Migration {
	objs, _ := c.migrations.ByNamespace(ns).List(labels.Everything())
	for _, o := range objs {
		m := &kubevirt.Migration{}
		if kubevirt.FromUnstructured(o, m) == nil && string(m.UID) == uid {
			return m
		}
	}
	return nil
}

func (c *Controller) podNamed(ns, name string) *corev1.Pod {
	if name == "" {
		return nil
	}
	p, err := c.pods.Pods(ns).Get(name)
	if err != nil || p.DeletionTimestamp != nil {
		return nil
	}
	return p
}

// handlerPatch applies a JSON patch to the VMI as virt-handler.
func (c *Controller) handlerPatch(ctx context.Context, vmi *kubevirt.VMI, ops []jsonPatchOp) error {
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = c.clients.Handler.Resource(kubevirt.VMIResource).Namespace(vmi.Namespace).
		Patch(ctx, vmi.Name, types.JSONPatchType, data, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if apierrors.IsInvalid(err) || isTestFailed(err) {
		return conflict(err) // the VMI moved on: look again
	}
	return err
}

func (c *Controller) handlerAnnotate(ctx context.Context, vmi *kubevirt.VMI, key, value string) error {
	data, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	_, err := c.clients.Handler.Resource(kubevirt.VMIResource).Namespace(vmi.Namespace).
		Patch(ctx, vmi.Name, types.MergePatchType, data, metav1.PatchOptions{})
	return ignoreNotFound(err)
}

func isTestFailed(err error) bool {
	var status apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s
	}
	return status != nil && status.Status().Code == 422
}

func conflict(err error) error {
	return apierrors.NewConflict(kubevirt.VMIResource.GroupResource(), "", err)
}

func escapePointer(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		switch r {
		case '~':
			out = append(out, '~', '0')
		case '/':
			out = append(out, '~', '1')
		default:
			out = append(out, r)
		}
	}
	return string(out)
}
