// metrics.go — what the benchmark reads off the kube-apiserver: its CPU
// (process_cpu_seconds_total), the time it spent in LIST requests and in
// streamed initial lists (a WATCH counts only once it ends, so the stream's
// own histogram is read), and how many of each, from its own /metrics; and
// the sizes of the objects loaded.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
)

type apiFigures struct{ cpu, reqTime, lists, streams float64 }

// scrape reads the apiserver's figures now.
func scrape(ctx context.Context, b *bed.Bed) (apiFigures, error) {
	var f apiFigures
	raw, err := b.Kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return f, fmt.Errorf("apiserver /metrics: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name, value := line[:i], line[i+1:]
		x, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch {
		case name == "process_cpu_seconds_total":
			f.cpu = x
		case strings.HasPrefix(name, "apiserver_request_duration_seconds_sum{") && strings.Contains(name, `verb="LIST"`):
			f.reqTime += x
		case strings.HasPrefix(name, "apiserver_request_total{") && strings.Contains(name, `verb="LIST"`):
			f.lists += x
		case strings.HasPrefix(name, "apiserver_watch_list_duration_seconds_sum"):
			f.reqTime += x // a streamed initial list, until its initial-events-end bookmark
		case strings.HasPrefix(name, "apiserver_watch_list_duration_seconds_count"):
			f.streams += x
		}
	}
	return f, sc.Err()
}

// idleCPU is the apiserver's CPU per second with nothing measured running
// (its own housekeeping), taken off each run's figure: read over 5 s, after
// 3 s for the previous run's watches to end.
func idleCPU(ctx context.Context, b *bed.Bed) (float64, error) {
	time.Sleep(3 * time.Second)
	a, err := scrape(ctx, b)
	if err != nil {
		return 0, err
	}
	t := time.Now()
	time.Sleep(5 * time.Second)
	z, err := scrape(ctx, b)
	if err != nil {
		return 0, err
	}
	return (z.cpu - a.cpu) / time.Since(t).Seconds(), nil
}

// printSizes prints the JSON size of one loaded object of each kind.
func printSizes(ctx context.Context, b *bed.Bed) error {
	pods, err := b.Kube.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Errorf("no pod loaded: %v", err)
	}
	vmis, err := b.Dynamic.Resource(kubevirt.VMIResource).Namespace(benchNS).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(vmis.Items) == 0 {
		return fmt.Errorf("no VMI loaded: %v", err)
	}
	p, _ := json.Marshal(pods.Items[0])
	v, _ := json.Marshal(vmis.Items[0].Object)
	fmt.Printf("one Pod is %.1f KB of JSON (%d managedFields entries), one VMI %.1f KB (%d)\n",
		float64(len(p))/1000, len(pods.Items[0].ManagedFields), float64(len(v))/1000, len(vmis.Items[0].GetManagedFields()))
	return nil
}
