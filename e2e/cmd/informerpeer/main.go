// Command informerpeer is the scale benchmark's peer: a client-go program
// that starts the informers `vmdrain run` starts, with the same resources
// and selectors (Nodes, VirtualMachineInstances, migrations, NodeDrains, the
// configuration ConfigMap by name, virt-launcher Pods by label), waits until
// every cache has synced, prints one line and then idles until SIGTERM, so
// that its resident memory and CPU can be read from /proc. With
// --webhook-listen it then serves an eviction webhook from those caches
// (webhook.go), the peer of vmdrain's.
//
//	informerpeer --kubeconfig FILE --config NS/NAME [--strip-managed-fields]
//	             [--webhook-listen ADDR --tls-cert FILE --tls-key FILE]
//
// Core kinds are typed (client-go's own structs); KubeVirt's kinds and the
// NodeDrain are unstructured, as a program without KubeVirt's Go module has
// them. client-go's defaults apply: on 0.37 that is the streamed initial list
// (WatchListClient) where the apiserver serves it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

var (
	vmiGVR       = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstances"}
	migrationGVR = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstancemigrations"}
	nodeDrainGVR = schema.GroupVersionResource{Group: "vmdrain.io", Version: "v1alpha1", Resource: "nodedrains"}
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	config := flag.String("config", "vmdrain-system/vmdrain-config", "the configuration ConfigMap, NAMESPACE/NAME")
	strip := flag.Bool("strip-managed-fields", false, "drop metadata.managedFields before caching (a transform)")
	var wh webhookFlags
	flag.StringVar(&wh.listen, "webhook-listen", "", "serve the eviction webhook on this address once synced (HTTPS)")
	flag.StringVar(&wh.cert, "tls-cert", "", "the webhook's certificate (PEM)")
	flag.StringVar(&wh.key, "tls-key", "", "the webhook's private key (PEM)")
	flag.Parse()
	if err := run(*kubeconfig, *config, *strip, wh); err != nil {
		fmt.Fprintln(os.Stderr, "informerpeer:", err)
		os.Exit(1)
	}
}

type webhookFlags struct{ listen, cert, key string }

func run(kubeconfig, config string, strip bool, wh webhookFlags) error {
	ns, name, ok := strings.Cut(config, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("--config wants NAMESPACE/NAME, not %q", config)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	// the same request rate as vmdrain's defaults (--kube-api-qps 50, burst 100)
	rc.QPS, rc.Burst = 50, 100
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	start := time.Now()

	var transform cache.TransformFunc
	if strip {
		transform = func(obj any) (any, error) {
			if m, err := metaAccessor(obj); err == nil {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}
	}
	all := informers.NewSharedInformerFactoryWithOptions(kc, 0, informers.WithTransform(transform))
	pods := informers.NewSharedInformerFactoryWithOptions(kc, 0, informers.WithTransform(transform),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "kubevirt.io=virt-launcher" }))
	cms := informers.NewSharedInformerFactoryWithOptions(kc, 0, informers.WithTransform(transform),
		informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + name }))
	dyn := dynamicinformer.NewDynamicSharedInformerFactory(dc, 0)

	synced := []cache.InformerSynced{
		all.Core().V1().Nodes().Informer().HasSynced,
		pods.Core().V1().Pods().Informer().HasSynced,
		cms.Core().V1().ConfigMaps().Informer().HasSynced,
	}
	if err := dyn.ForResource(migrationGVR).Informer().AddIndexers(cache.Indexers{"vmi": migrationVMIIndex}); err != nil {
		return err
	}
	for _, gvr := range []schema.GroupVersionResource{vmiGVR, migrationGVR, nodeDrainGVR} {
		inf := dyn.ForResource(gvr).Informer()
		if transform != nil {
			if err := inf.SetTransform(transform); err != nil {
				return err
			}
		}
		synced = append(synced, inf.HasSynced)
	}
	for _, f := range []interface{ Start(<-chan struct{}) }{all, pods, cms, dyn} {
		f.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("caches did not sync")
	}
	fmt.Printf("caches synced after %.3f s\n", time.Since(start).Seconds())
	if wh.listen == "" {
		<-ctx.Done()
		return nil
	}
	h := &webhook{pods: pods.Core().V1().Pods().Lister(), vmis: dyn.ForResource(vmiGVR).Lister(),
		migrations: dyn.ForResource(migrationGVR).Informer().GetIndexer()}
	mux := http.NewServeMux()
	mux.Handle("/validate-eviction", h)
	srv := &http.Server{Addr: wh.listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Printf("webhook serving on %s\n", wh.listen)
	if err := srv.ListenAndServeTLS(wh.cert, wh.key); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// metaAccessor gives the object's metadata, typed or unstructured.
func metaAccessor(obj any) (metav1.Object, error) {
	if m, ok := obj.(metav1.Object); ok {
		return m, nil
	}
	if o, ok := obj.(metav1.ObjectMetaAccessor); ok {
		return o.GetObjectMeta(), nil
	}
	return nil, fmt.Errorf("%T has no metadata", obj)
}
