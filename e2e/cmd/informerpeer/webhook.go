// webhook.go — the peer's eviction webhook (--webhook-listen): net/http over
// TLS, an AdmissionReview decoded with k8s.io/api's types, the pod, its VMI
// (named by the pod's kubevirt.io/domain annotation) and the VMI's
// migrations looked up in the informers' caches, and the answer vmdrain
// gives a launcher pod of a VMI that live-migrates: denied with 429, the
// migration queued. Nothing is written: the benchmark sends dry runs.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

type webhook struct {
	pods       v1.PodLister
	vmis       cache.GenericLister
	migrations cache.Indexer // indexed by spec.vmiName ("vmi")
}

const maxReview = 1 << 20

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReview+1))
	if err != nil || len(body) > maxReview {
		http.Error(w, "cannot read the review", http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	review.Response = h.decide(review.Request)
	review.Response.UID = review.Request.UID
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

func (h *webhook) decide(rq *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	pod, err := h.pods.Pods(rq.Namespace).Get(rq.Name)
	if err != nil || pod.Labels["kubevirt.io"] != "virt-launcher" {
		return allow
	}
	name := pod.Annotations["kubevirt.io/domain"]
	obj, err := h.vmis.ByNamespace(rq.Namespace).Get(name)
	if err != nil {
		return allow
	}
	vmi, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return allow
	}
	strategy, _, _ := unstructured.NestedString(vmi.Object, "spec", "evictionStrategy")
	phase, _, _ := unstructured.NestedString(vmi.Object, "status", "phase")
	if strategy != "LiveMigrate" || phase != "Running" {
		return allow
	}
	migs, _ := h.migrations.ByIndex("vmi", rq.Namespace+"/"+name)
	msg := fmt.Sprintf("Eviction triggered evacuation of VMI %s/%s: migration queued (%d earlier migrations)",
		rq.Namespace, name, len(migs))
	return &admissionv1.AdmissionResponse{Allowed: false,
		Result: &metav1.Status{Code: http.StatusTooManyRequests, Reason: metav1.StatusReasonTooManyRequests, Message: msg}}
}

// migrationVMIIndex indexes migrations by "namespace/spec.vmiName".
func migrationVMIIndex(obj any) ([]string, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	name, _, _ := unstructured.NestedString(u.Object, "spec", "vmiName")
	if name == "" {
		return nil, nil
	}
	return []string{u.GetNamespace() + "/" + name}, nil
}
