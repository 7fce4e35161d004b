package sim

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"vmdrain.io/e2e/kubevirt"
)

func node(name string, ready bool, mod func(*corev1.Node)) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"zone": "a"}},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}},
	}
	if mod != nil {
		mod(n)
	}
	return n
}

func launcher(name, nodeName string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.PodSpec{NodeName: nodeName}}
}

func controllerWith(nodes []*corev1.Node, pods []*corev1.Pod) *Controller {
	ni := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, n := range nodes {
		ni.Add(n)
	}
	pi := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		pi.Add(p)
	}
	return &Controller{nodes: corelisters.NewNodeLister(ni), pods: corelisters.NewPodLister(pi)}
}

func TestPickTarget(t *testing.T) {
	vmi := &kubevirt.VMI{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "vm", Annotations: map[string]string{}}}
	vmi.Status.NodeName = "src"
	m := &kubevirt.Migration{}
	nodes := []*corev1.Node{
		node("src", true, nil),
		node("not-ready", false, nil),
		node("cordoned", true, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		node("draining", true, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "kubevirt.io/drain", Value: "draining", Effect: corev1.TaintEffectNoSchedule}}
		}),
		node("prefer-no", true, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}}
		}),
		node("busy", true, nil),
		node("zone-b", true, func(n *corev1.Node) { n.Labels["zone"] = "b" }),
	}
	pods := []*corev1.Pod{launcher("p1", "busy"), launcher("p2", "src")}

	c := controllerWith(nodes, pods)
	if got := c.pickTarget(vmi, m); got != "prefer-no" {
		t.Errorf("picked %q, want the least loaded schedulable node prefer-no", got)
	}
	m.Spec.AddedNodeSelector = map[string]string{"zone": "b"}
	if got := c.pickTarget(vmi, m); got != "zone-b" {
		t.Errorf("with addedNodeSelector: picked %q, want zone-b", got)
	}
	m.Spec.AddedNodeSelector = nil
	vmi.Spec.NodeSelector = map[string]string{"zone": "c"}
	if got := c.pickTarget(vmi, m); got != "" {
		t.Errorf("no node matches the VMI's nodeSelector, picked %q", got)
	}
	vmi.Spec.NodeSelector = nil
	vmi.Annotations[TargetUnschedulableAnnotation] = "true"
	if got := c.pickTarget(vmi, m); got != "" {
		t.Errorf("target-unschedulable: picked %q", got)
	}
	if got := controllerWith(nodes[:4], pods).pickTarget(&kubevirt.VMI{Status: vmi.Status}, m); got != "" {
		t.Errorf("only unusable nodes: picked %q", got)
	}
}
