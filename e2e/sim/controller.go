// Package sim simulates the parts of KubeVirt that vmdrain talks to. In its
// full mode it plays virt-controller and virt-handler for
// VirtualMachineInstanceMigrations, keeps each VMI's LiveMigratable condition
// current, and stands in for the few kube-controller-manager duties the bed
// needs (default service accounts, deleting the pods of a deleted VMI,
// lifting the not-ready taint of Ready nodes); it never starts a migration
// itself. In node mode (node.go) it plays only virt-handler and
// virt-launcher, beside KubeVirt's real virt-controller and virt-api.
package sim

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"vmdrain.io/e2e/kubevirt"
)

// Config holds the simulator's knobs.
type Config struct {
	// TimeScale multiplies every simulated duration: 0.01 makes a 32 s
	// transfer take 320 ms.
	TimeScale float64
	// StepDelay is the simulated time spent in each short phase
	// (Scheduled, PreparingTarget, TargetReady).
	StepDelay time.Duration
	// Defaults are the cluster-wide migration settings a matching
	// MigrationPolicy overrides (bandwidth, completionTimeoutPerGiB).
	Defaults kubevirt.MigrationSettings
	// ProgressTimeout aborts a transfer that makes no progress this long.
	ProgressTimeout time.Duration
	Workers         int
	// Mode "node" plays only virt-handler and virt-launcher, beside KubeVirt's
	// real virt-controller and virt-api; "" (or "all") plays all of KubeVirt.
	Mode string
}

// Controller is the simulator.
type Controller struct {
	cfg     Config
	clients Clients
	log     *slog.Logger

	nodes      corelisters.NodeLister
	pods       corelisters.PodLister
	pvcs       corelisters.PersistentVolumeClaimLister
	namespaces corelisters.NamespaceLister
	vmis       cache.GenericLister
	migrations cache.GenericLister
	policies   cache.GenericLister
	synced     []cache.InformerSynced

	migrationQ workqueue.TypedRateLimitingInterface[string]
	vmiQ       workqueue.TypedRateLimitingInterface[string]
	namespaceQ workqueue.TypedRateLimitingInterface[string]
	nodeQ      workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	entered map[types.UID]entry // when this process moved a migration into its current phase

	ready sync.Once
	up    chan struct{}

	nodeSeen *nodeState // node mode
}

// New wires informers and work queues; Run starts them.
func New(c Clients, cfg Config, log *slog.Logger) *Controller {
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	ctl := &Controller{
		cfg: cfg, clients: c, log: log,
		migrationQ: workqueue.NewTypedRateLimitingQueueWithConfig(rateLimiter(), workqueue.TypedRateLimitingQueueConfig[string]{Name: "migrations"}),
		vmiQ:       workqueue.NewTypedRateLimitingQueueWithConfig(rateLimiter(), workqueue.TypedRateLimitingQueueConfig[string]{Name: "vmis"}),
		namespaceQ: workqueue.NewTypedRateLimitingQueueWithConfig(rateLimiter(), workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespaces"}),
		nodeQ:      workqueue.NewTypedRateLimitingQueueWithConfig(rateLimiter(), workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodes"}),
		entered:    map[types.UID]entry{},
		up:         make(chan struct{}),
	}
	return ctl
}

func rateLimiter() workqueue.TypedRateLimiter[string] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 5*time.Second)
}

// Run starts the informers and workers and blocks until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.Mode == "node" {
		return c.runNode(ctx)
	}
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
	polInf := dyn.ForResource(kubevirt.PolicyResource)

	c.nodes, c.pods, c.pvcs, c.namespaces = nodeInf.Lister(), podInf.Lister(), pvcInf.Lister(), nsInf.Lister()
	c.vmis, c.migrations, c.policies = vmiInf.Lister(), migInf.Lister(), polInf.Lister()

	active := c.enqueueActiveMigrations
	on := func(inf cache.SharedIndexInformer, h cache.ResourceEventHandlerFuncs) {
		if _, err := inf.AddEventHandler(h); err != nil {
			utilruntime.HandleError(err)
		}
		c.synced = append(c.synced, inf.HasSynced)
	}
	on(migInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { c.enqueue(c.migrationQ, o) },
		UpdateFunc: func(_, o any) {
			c.enqueue(c.migrationQ, o)
			var m kubevirt.Migration
			if kubevirt.FromUnstructured(o, &m) == nil && m.Final() {
				active() // a finished migration frees its VMI for the next one
			}
		},
		DeleteFunc: func(any) { active() },
	})
	on(vmiInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueue(c.vmiQ, o); active() },
		UpdateFunc: func(_, o any) { c.enqueue(c.vmiQ, o); active() },
		DeleteFunc: func(o any) { c.enqueue(c.vmiQ, o); active() },
	})
	podChanged := func(o any) {
		if pod, ok := tombstone(o).(*corev1.Pod); ok && pod.Annotations[kubevirt.DomainAnnotation] != "" {
			c.vmiQ.Add(pod.Namespace + "/" + pod.Annotations[kubevirt.DomainAnnotation])
		}
		active()
	}
	on(podInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc: podChanged, UpdateFunc: func(_, o any) { podChanged(o) }, DeleteFunc: podChanged,
	})
	on(nodeInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueue(c.nodeQ, o); active() },
		UpdateFunc: func(_, o any) { c.enqueue(c.nodeQ, o); active() },
		DeleteFunc: func(any) { active() },
	})
	pvcChanged := func(o any) {
		if pvc, ok := tombstone(o).(*corev1.PersistentVolumeClaim); ok {
			c.enqueueVMIsIn(pvc.Namespace)
		}
	}
	on(pvcInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc: pvcChanged, UpdateFunc: func(_, o any) { pvcChanged(o) }, DeleteFunc: pvcChanged,
	})
	on(nsInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { c.enqueue(c.namespaceQ, o) },
	})
	on(polInf.Informer(), cache.ResourceEventHandlerFuncs{})

	core.Start(ctx.Done())
	launchers.Start(ctx.Done())
	dyn.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("informer caches did not sync")
	}
	c.log.Info("simulator running", "timeScale", c.cfg.TimeScale, "bandwidth", c.cfg.Defaults.Bandwidth,
		"completionTimeoutPerGiB", c.cfg.Defaults.CompletionTimeoutPerGiB, "progressTimeout", c.cfg.ProgressTimeout)
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
		work(c.migrationQ, c.syncMigration)
	}
	work(c.vmiQ, c.syncVMI)
	work(c.namespaceQ, c.syncNamespace)
	work(c.nodeQ, c.syncNode)

	<-ctx.Done()
	c.migrationQ.ShutDown()
	c.vmiQ.ShutDown()
	c.namespaceQ.ShutDown()
	c.nodeQ.ShutDown()
	wg.Wait()
	return nil
}

// Healthz answers 200 once the caches are synced and the workers run.
func (c *Controller) Healthz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-c.up:
		fmt.Fprintln(w, "ok")
	default:
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}
}

func (c *Controller) process(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string) (time.Duration, error)) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	after, err := sync(ctx, key)
	switch {
	case err != nil && apierrors.IsConflict(err):
		q.AddRateLimited(key) // stale cache: try again when it caught up
	case err != nil:
		c.log.Warn("sync failed", "key", key, "err", err)
		q.AddRateLimited(key)
	default:
		q.Forget(key)
		if after > 0 {
			q.AddAfter(key, after)
		}
	}
	return true
}

func (c *Controller) enqueue(q workqueue.TypedRateLimitingInterface[string], obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		q.Add(key)
	}
}

// enqueueActiveMigrations requeues every unfinished migration: they wait on
// nodes, pods and other migrations, and the bed holds few of them.
func (c *Controller) enqueueActiveMigrations() {
	if c.migrations == nil {
		return
	}
	objs, _ := c.migrations.List(labels.Everything())
	for _, o := range objs {
		var m kubevirt.Migration
		if kubevirt.FromUnstructured(o, &m) == nil && (!m.Final() || m.DeletionTimestamp != nil) {
			c.migrationQ.Add(m.Namespace + "/" + m.Name)
		}
	}
}

func (c *Controller) enqueueVMIsIn(ns string) {
	objs, _ := c.vmis.ByNamespace(ns).List(labels.Everything())
	for _, o := range objs {
		c.enqueue(c.vmiQ, o)
	}
}

func tombstone(o any) any {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return o
}

// scaled converts simulated time to wall-clock time.
func (c *Controller) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.cfg.TimeScale)
}
