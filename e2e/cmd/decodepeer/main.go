// Command decodepeer compares vmdrain's decoder with client-go's on the
// same JSON: it runs vmdrain's decode benchmark (bench/decode_bench.c),
// which writes the PodList and VirtualMachineInstanceList it decodes, then
// decodes those files itself the way a client-go program does, and prints
// both figures and their ratio.
//
//	decodepeer --bench build/bench/decode_bench [--pods N --vmis N]
//
// Pods decode into client-go's typed corev1.PodList with its universal
// deserializer (what an informer's list does); VMIs, which client-go has
// no type for, into unstructured objects (what a program without KubeVirt's
// Go module does). Throughput is the best of three runs; bytes held per
// object are the Go heap's growth (after a collection) while the decoded
// list is kept, over the count.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/scheme"
)

type figures struct{ mbps, held float64 }

func main() {
	bench := flag.String("bench", "build/bench/decode_bench", "vmdrain's decode benchmark")
	pods := flag.Int("pods", 100000, "Pods in the PodList")
	vmis := flag.Int("vmis", 20000, "VMIs in the VirtualMachineInstanceList")
	flag.Parse()
	if err := run(*bench, *pods, *vmis); err != nil {
		fmt.Fprintln(os.Stderr, "decodepeer:", err)
		os.Exit(1)
	}
}

func run(bench string, pods, vmis int) error {
	dir, err := os.MkdirTemp("", "decodepeer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out, err := exec.Command(bench, strconv.Itoa(pods), strconv.Itoa(vmis), dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", bench, err, out)
	}
	os.Stdout.Write(out)
	ours, err := parseBench(string(out))
	if err != nil {
		return err
	}
	kinds := []struct {
		name, file string
		decode     func([]byte) (any, error)
	}{
		{"Pods", "pods.json", decodePods},
		{"VMIs", "vmis.json", decodeUnstructured},
	}
	fmt.Printf("\nclient-go on the same JSON; ratio = vmdrain / client-go\n")
	fmt.Printf("%-6s %-30s %12s %12s %8s\n", "", "", "vmdrain", "client-go", "ratio")
	for i, k := range kinds {
		data, err := os.ReadFile(filepath.Join(dir, k.file))
		if err != nil {
			return err
		}
		peer, err := measure(data, k.decode)
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		fmt.Printf("%-6s %-30s %12.1f %12.1f %8.3f\n", k.name, "decode throughput (MB/s)", ours[i].mbps, peer.mbps, ours[i].mbps/peer.mbps)
		fmt.Printf("%-6s %-30s %12.0f %12.0f %8.3f\n", k.name, "bytes held per object", ours[i].held, peer.held, ours[i].held/peer.held)
	}
	return nil
}

var (
	throughputRE = regexp.MustCompile(`decode throughput [^:]*: ([0-9.]+) MB/s`)
	heldRE       = regexp.MustCompile(`bytes held per cached object:\s+([0-9.]+)`)
)

// parseBench reads decode_bench's figures: Pods first, then VMIs.
func parseBench(out string) ([2]figures, error) {
	var f [2]figures
	tp := throughputRE.FindAllStringSubmatch(out, -1)
	held := heldRE.FindAllStringSubmatch(out, -1)
	if len(tp) != 2 || len(held) != 2 {
		return f, fmt.Errorf("decode_bench printed %d throughputs and %d held sizes, want 2 each", len(tp), len(held))
	}
	for i := range f {
		f[i].mbps, _ = strconv.ParseFloat(tp[i][1], 64)
		f[i].held, _ = strconv.ParseFloat(held[i][1], 64)
	}
	return f, nil
}

func decodePods(data []byte) (any, error) {
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, &corev1.PodList{})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

func decodeUnstructured(data []byte) (any, error) {
	var l unstructured.UnstructuredList
	if err := l.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return &l, nil
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// measure decodes data three times: the best throughput, and the heap held
// by the first run's result.
func measure(data []byte, decode func([]byte) (any, error)) (figures, error) {
	var f figures
	best := time.Duration(0)
	for run := 0; run < 3; run++ {
		before := heap()
		t := time.Now()
		obj, err := decode(data)
		d := time.Since(t)
		if err != nil {
			return f, err
		}
		if run == 0 {
			n := count(obj)
			f.held = float64(heap()-before) / float64(max(n, 1))
		}
		runtime.KeepAlive(obj)
		if best == 0 || d < best {
			best = d
		}
	}
	f.mbps = float64(len(data)) / 1e6 / best.Seconds()
	return f, nil
}

func count(obj any) int {
	switch l := obj.(type) {
	case *corev1.PodList:
		return len(l.Items)
	case *unstructured.UnstructuredList:
		return len(l.Items)
	}
	return 0
}
