package sim

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// notReadyTaint is the taint the API server puts on every new node
// (TaintNodesByCondition) and kube-controller-manager's node lifecycle
// controller removes once the node is Ready.
var notReadyTaint = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}

func isNotReadyTaint(t corev1.Taint) bool { return notReadyTaint.MatchTaint(&t) }

// syncNode plays that part of the node lifecycle controller: a Ready node
// loses the not-ready NoSchedule taint, a node that is not Ready gets it.
func (c *Controller) syncNode(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	has := slices.ContainsFunc(node.Spec.Taints, isNotReadyTaint)
	if ready != has {
		return 0, nil
	}
	taints := slices.DeleteFunc(slices.Clone(node.Spec.Taints), isNotReadyTaint)
	if !ready {
		t := notReadyTaint
		now := metav1.Now()
		t.TimeAdded = &now
		taints = append(taints, t)
	}
	if taints == nil {
		taints = []corev1.Taint{}
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": node.ResourceVersion},
		"spec":     map[string]any{"taints": taints},
	})
	_, err = c.clients.Kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err == nil {
		c.log.Info("node taint", "node", name, "ready", ready, "taint", corev1.TaintNodeNotReady)
	}
	return 0, err
}
