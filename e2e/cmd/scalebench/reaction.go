// reaction.go — how soon vmdrain starts the next migration once one ends:
// a kwok node with simulated VMs is drained with one migration at a time
// allowed (the ConfigMap load.go writes), so every start waits for an end.
// A watch of the benchmark's own times each migration's first sighting and
// its Succeeded; the gap is from one migration's Succeeded to the next one's
// creation, as a client of the apiserver sees them. vmdrain's own part is
// from its log: from "migration ended" (its watch delivered the end) to
// "creating migration" (the create sent) for the next one.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/kubevirt"
	"vmdrain.io/e2e/sim"
)

const reactNS = "vmdrain-scale-react"

type migTimes struct{ added, succeeded time.Time }

// watchMigrations records when each migration of ns was first seen and
// when it was first seen Succeeded, until ctx ends.
func watchMigrations(ctx context.Context, b *bed.Bed, ns string) (map[string]*migTimes, *sync.Mutex, error) {
	seen := map[string]*migTimes{}
	var mu sync.Mutex
	w, err := b.Dynamic.Resource(kubevirt.MigrationResource).Namespace(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			now := time.Now()
			phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
			mu.Lock()
			t := seen[u.GetName()]
			if t == nil {
				t = &migTimes{added: now}
				seen[u.GetName()] = t
			}
			if phase == kubevirt.PhaseSucceeded && t.succeeded.IsZero() {
				t.succeeded = now
			}
			mu.Unlock()
		}
	}()
	return seen, &mu, nil
}

// reaction drains one node of n simulated VMs and prints the gaps.
func reaction(ctx context.Context, b *bed.Bed, vmdrain string, n int) error {
	src, dst := "scale-react-src", "scale-react-dst"
	for _, node := range []string{src, dst} {
		if err := b.CreateNode(ctx, node, nil); err != nil {
			return fmt.Errorf("node %s: %w", node, err)
		}
	}
	if err := b.WaitNodesReady(ctx, time.Minute, src, dst); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		vm := sim.VM{Namespace: reactNS, Name: fmt.Sprintf("react-%02d", i), Node: src, EvictionStrategy: "LiveMigrate"}
		if _, _, err := b.CreateVM(ctx, vm); err != nil {
			return fmt.Errorf("VM %s: %w", vm.Name, err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen, mu, err := watchMigrations(wctx, b, reactNS)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "scalebench-react-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logPath := filepath.Join(dir, "vmdrain.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(vmdrain, "--kubeconfig", b.Kubeconfig, "--log-level", "debug", "run",
		"--config", configNS+"/"+configName, "--metrics-listen", "127.0.0.1:0",
		"--leader-elect-lease", configNS+"/scale-react")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitForLine(logPath, "caches synced", 2*time.Minute); err != nil {
		return err
	}
	taint := `{"spec":{"taints":[{"key":"kubevirt.io/drain","value":"draining","effect":"NoSchedule"}]}}`
	if _, err := b.Kube.CoreV1().Nodes().Patch(ctx, src, types.MergePatchType, []byte(taint), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("taint %s: %w", src, err)
	}
	err = bed.Eventually(ctx, 5*time.Minute, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		done := 0
		for _, t := range seen {
			if !t.succeeded.IsZero() {
				done++
			}
		}
		return done >= n, nil
	})
	if err != nil {
		return fmt.Errorf("%d migrations did not all succeed within 5 min: %w", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return printReaction(seen, logPath)
}

var logfmtRE = regexp.MustCompile(`^ts=(\S+) level=\S+ msg="([^"]*)".*? migration=(\S+)`)

// vmdrainTimes reads, per migration name, when vmdrain logged msg about it.
func vmdrainTimes(logPath, msg string) (map[string]time.Time, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := logfmtRE.FindStringSubmatch(sc.Text())
		if m == nil || m[2] != msg {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		name := m[3][strings.LastIndexByte(m[3], '/')+1:] // "ns/name" or "name"
		if _, dup := out[name]; !dup {
			out[name] = ts
		}
	}
	return out, sc.Err()
}

func printReaction(seen map[string]*migTimes, logPath string) error {
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return seen[a].added.Compare(seen[b].added) })
	ended, err := vmdrainTimes(logPath, "migration ended")
	if err != nil {
		return err
	}
	created, err := vmdrainTimes(logPath, "creating migration")
	if err != nil {
		return err
	}
	var gaps, own []float64
	for i := 0; i+1 < len(names); i++ {
		prev, next := seen[names[i]], seen[names[i+1]]
		if prev.succeeded.IsZero() || next.added.Before(prev.succeeded) {
			continue // not paced by this end
		}
		gaps = append(gaps, next.added.Sub(prev.succeeded).Seconds()*1000)
		e, ok1 := ended[names[i]]
		c, ok2 := created[names[i+1]]
		if ok1 && ok2 && !c.Before(e) {
			own = append(own, c.Sub(e).Seconds()*1000)
		}
	}
	if len(gaps) == 0 {
		return fmt.Errorf("no migration started after another's end (%d migrations)", len(names))
	}
	fmt.Printf("\nreaction: from a migration's Succeeded to the next one's creation, %d gaps (%d migrations, one at a time)\n",
		len(gaps), len(names))
	fmt.Printf("  seen by a client of the apiserver   p50 %6.1f ms  p99 %6.1f ms\n", percentile(gaps, 0.5), percentile(gaps, 0.99))
	if len(own) > 0 {
		fmt.Printf("  vmdrain's own part (from its log)   p50 %6.1f ms  p99 %6.1f ms  (%d gaps)\n",
			percentile(own, 0.5), percentile(own, 0.99), len(own))
	}
	return nil
}

// percentile of xs by nearest rank (p in 0..1).
func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
