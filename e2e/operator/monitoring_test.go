package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"vmdrain.io/e2e/bed"
	"vmdrain.io/e2e/sim"
)

// Series the chart's queries use that other exporters provide, and which
// vmdrain's /metrics therefore never shows. Each must be named here.
var monForeignSeries = map[string]string{
	"up": "Prometheus' own, one per scrape target (VmdrainDown)",
}

// The runbooks' base URL by default (alerts.runbookBaseURL).
const monRunbookBase = "https://github.com/vmdrain/vmdrain/blob/main/docs/runbooks/"

// monRule is one alerting rule of the rendered PrometheusRule.
type monRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// monDoc is what the test reads of a rendered object.
type monDoc struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
	Spec struct {
		Groups []struct {
			Rules []monRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// monRender renders the chart (the bed's Kubernetes version, for the
// chart's kubeVersion) with the monitoring pack on, plus sets, and returns
// its objects.
func monRender(t *testing.T, b *bed.Bed, sets ...string) []monDoc {
	t.Helper()
	v, err := b.Kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"template", chartRelease, chartDir(), "-n", chartNS, "--kube-version", v.GitVersion,
		"--set", "dashboard.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
		"--set", "metrics.serviceMonitor.enabled=true"}, sets...)
	var docs []monDoc
	for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(helm(t, b, args...), -1) {
		if strings.TrimSpace(part) == "" {
			continue
		}
		var d monDoc
		if err := yaml.Unmarshal([]byte(part), &d); err != nil {
			t.Fatalf("a rendered object is not YAML: %v\n%s", err, part)
		}
		if d.Kind != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// monRules are the alerting rules of the rendering.
func monRules(docs []monDoc) []monRule {
	var out []monRule
	for _, d := range docs {
		if d.Kind == "PrometheusRule" {
			for _, g := range d.Spec.Groups {
				out = append(out, g.Rules...)
			}
		}
	}
	return out
}

var (
	monStrings = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	monLists   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	monIdent   = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	monKeyword = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true}
)

// monMetricNames returns the metric names a PromQL expression selects:
// every identifier outside strings, label matchers, ranges and grouping
// lists that is not a function, a keyword, a number or a Grafana variable.
func monMetricNames(expr string) []string {
	s := monStrings.ReplaceAllString(expr, `""`)
	s = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(s, " ")
	s = monLists.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range monIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(s[loc[0]-1:loc[0]], "$.0123456789") {
			continue // a Grafana variable, or the exponent of a number
		}
		if monKeyword[strings.ToLower(name)] || strings.HasPrefix(strings.TrimSpace(s[loc[1]:]), "(") {
			continue
		}
		out = append(out, name)
	}
	return out
}

// monExported returns the sample names vmdrain's /metrics at addr offers:
// every family of a "# TYPE" line (with _bucket, _sum and _count for a
// histogram), and the text.
func monExported(t *testing.T, addr string) (map[string]bool, string) {
	t.Helper()
	out, err := exec.Command("curl", "-s", "-m", "5", "http://"+addr+"/metrics").Output()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		if f[3] == "histogram" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[f[2]+suffix] = true
			}
		}
	}
	return names, string(out)
}

// monPanels walks a dashboard's panels, rows' panels included, and returns
// every panel that is not a row.
func monPanels(panels []any) []map[string]any {
	var out []map[string]any
	for _, p := range panels {
		m, ok := p.(map[string]any)
		if !ok {
			continue
		}
		if m["type"] == "row" {
			sub, _ := m["panels"].([]any)
			out = append(out, monPanels(sub)...)
			continue
		}
		out = append(out, m)
	}
	return out
}

// monDashboard checks the dashboard's JSON and returns each panel's
// title with its queries.
func monDashboard(t *testing.T, text string) map[string][]string {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	for _, key := range []string{"title", "uid", "schemaVersion", "panels", "templating"} {
		if _, ok := d[key]; !ok {
			t.Errorf("the dashboard has no %q", key)
		}
	}
	// the datasource is a template variable, so any Prometheus can be picked
	var dsVar bool
	tmpl, _ := d["templating"].(map[string]any)
	vars, _ := tmpl["list"].([]any)
	for _, v := range vars {
		if m, _ := v.(map[string]any); m["type"] == "datasource" && m["name"] == "datasource" && m["query"] == "prometheus" {
			dsVar = true
		}
	}
	if !dsVar {
		t.Error("the dashboard has no datasource template variable named datasource")
	}
	queries := map[string][]string{}
	panels, _ := d["panels"].([]any)
	for _, p := range monPanels(panels) {
		title, _ := p["title"].(string)
		ds, _ := p["datasource"].(map[string]any)
		if ds["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", title, p["datasource"])
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no targets", title)
		}
		for _, tg := range targets {
			m, _ := tg.(map[string]any)
			expr, _ := m["expr"].(string)
			if strings.TrimSpace(expr) == "" {
				t.Errorf("panel %q has a target without a query", title)
				continue
			}
			queries[title] = append(queries[title], expr)
		}
	}
	if len(queries) < 10 {
		t.Errorf("the dashboard has %d panels with queries, want at least 10", len(queries))
	}
	return queries
}

// monCheckNames fails the test for each metric a query uses that vmdrain
// does not export and that is not a known foreign series.
func monCheckNames(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	names := monMetricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: no metric found in %q", where, expr)
	}
	for _, n := range names {
		if !exported[n] && monForeignSeries[n] == "" {
			t.Errorf("%s uses %s, which vmdrain's /metrics does not export (query %q)", where, n, expr)
		}
	}
}

// TestMonitoringPack: the chart's Grafana dashboard and alerting rules use
// only metrics a running vmdrain exports (after a drain, so that labelled
// series exist; other exporters' series are named in monForeignSeries);
// every alert has a runbook in docs/runbooks/ and can be switched off; the
// dashboard's ConfigMap is accepted by the API server; a node's drain
// series go when its drain ends.
func TestMonitoringPack(t *testing.T) {
	b := bed.OpenT(t)
	ctx := context.Background()
	root := filepath.Join(chartDir(), "..", "..")

	// 1. the rendering: the rules and the dashboard
	docs := monRender(t, b)
	rules := monRules(docs)
	if len(rules) < 6 {
		t.Fatalf("%d alerting rules rendered, want at least 6", len(rules))
	}
	var dash *monDoc
	for i := range docs {
		if docs[i].Kind == "ConfigMap" && docs[i].Metadata.Labels["grafana_dashboard"] == "1" {
			dash = &docs[i]
		}
	}
	if dash == nil {
		t.Fatal("dashboard.enabled=true rendered no ConfigMap labelled grafana_dashboard: \"1\"")
	}
	file, err := os.ReadFile(filepath.Join(chartDir(), "dashboards", "vmdrain.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(dash.Data["vmdrain.json"]) != strings.TrimSpace(string(file)) {
		t.Error("the ConfigMap's vmdrain.json is not dashboards/vmdrain.json")
	}
	queries := monDashboard(t, dash.Data["vmdrain.json"])

	// 2. runbooks, and the switch of each rule
	names := map[string]bool{}
	for _, r := range rules {
		names[r.Alert] = true
		url := r.Annotations["runbook_url"]
		page, ok := strings.CutPrefix(url, monRunbookBase)
		if !ok || page != strings.ToLower(r.Alert)+".md" {
			t.Errorf("%s: runbook_url %q, want %s%s.md", r.Alert, url, monRunbookBase, strings.ToLower(r.Alert))
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "docs", "runbooks", page)); err != nil {
			t.Errorf("%s: its runbook docs/runbooks/%s: %v", r.Alert, page, err)
		}
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s lacks a severity, summary or description: %+v", r.Alert, r)
		}
	}
	for _, want := range []string{"VmdrainDown", "VmdrainAPIForbidden", "VmdrainDrainBlocked", "VmdrainDrainFailed",
		"VmdrainDrainTooLong", "VmdrainMigrationsFailed"} {
		if !names[want] {
			t.Errorf("no alert %s", want)
		}
	}
	for name := range names {
		left := monRules(monRender(t, b, "--set", "alerts.rules."+name+".enabled=false"))
		if len(left) != len(rules)-1 {
			t.Errorf("alerts.rules.%s.enabled=false leaves %d rules of %d", name, len(left), len(rules))
		}
		for _, r := range left {
			if r.Alert == name {
				t.Errorf("alerts.rules.%s.enabled=false did not drop the rule", name)
			}
		}
	}
	for _, r := range monRules(monRender(t, b, "--set", "alerts.rules.VmdrainAPIForbidden.severity=page",
		"--set", "alerts.rules.VmdrainAPIForbidden.windowMinutes=3")) {
		if r.Alert == "VmdrainAPIForbidden" && (r.Labels["severity"] != "page" || !strings.Contains(r.Expr, "[3m]")) {
			t.Errorf("VmdrainAPIForbidden ignores its values: severity %q, expr %q", r.Labels["severity"], r.Expr)
		}
	}

	// 3. the dashboard's ConfigMap, as the API server validates it
	setConfig(t, b, "LiveMigration", "") // also makes the namespace
	v, err := b.Kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	cm := helm(t, b, "template", chartRelease, chartDir(), "-n", chartNS, "--kube-version", v.GitVersion,
		"--show-only", "templates/dashboard.yaml", "--set", "dashboard.enabled=true")
	cmFile := filepath.Join(t.TempDir(), "dashboard.yaml")
	if err := os.WriteFile(cmFile, []byte(cm), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := kubectl(t, b, "apply", "--dry-run=server", "-f", cmFile); !strings.Contains(out, "configmap/"+chartRelease+"-dashboard") {
		t.Errorf("server dry run of the dashboard's ConfigMap: %s", out)
	}

	// 4. a vmdrain after a drain: a VM moved, one blocked (the drain stays
	// on, so the node's series are there), one review answered
	ns := b.Namespace(t)
	n := nodes(t, b, uniq("mon"), 3)
	vm(t, b, sim.VM{Namespace: ns, Name: "lm", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate", Disk: sim.DiskRWX})
	vm(t, b, sim.VM{Namespace: ns, Name: "stuck", Node: n[0], Memory: "1Gi", EvictionStrategy: "LiveMigrate", Disk: sim.DiskRWO})
	certFile, keyFile, _ := webhookCert(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startVmdrain(t, b, "--tls-cert", certFile, "--tls-key", keyFile, "--listen", addr, "--metrics-listen", metrics)
	waitAnswering(t, addr)
	kubectl(t, b, "taint", "nodes", n[0], taint+"=draining:NoSchedule")
	waitNode(t, b, n[0], 2*time.Minute, "state Blocked", stateIs("Blocked"))
	time.Sleep(1500 * time.Millisecond) // the last reports land

	exported, text := monExported(t, metrics)
	used := map[string]bool{}
	for title, exprs := range queries {
		for _, e := range exprs {
			monCheckNames(t, fmt.Sprintf("dashboard panel %q", title), e, exported)
			for _, m := range monMetricNames(e) {
				used[m] = true
			}
		}
	}
	for _, r := range rules {
		monCheckNames(t, "alert "+r.Alert, r.Expr, exported)
		for _, m := range monMetricNames(r.Expr) {
			used[m] = true
		}
	}
	var list []string
	for m := range used {
		list = append(list, m)
	}
	sort.Strings(list)
	t.Logf("%d metrics used by the dashboard and the alerts, each checked: %s", len(list), strings.Join(list, " "))

	version, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(`vmdrain_node_drain_state{node=%q,state="blocked"} 1`, n[0]),
		fmt.Sprintf(`vmdrain_node_migrations_queued{node=%q} 0`, n[0]),
		`vmdrain_migration_aborts_total{reason="progress_timeout"} `,
		`vmdrain_webhook_errors_total{reason="bad_request"} 0`,
		`vmdrain_ready 1`,
		fmt.Sprintf(`vmdrain_build_info{version=%q,revision="`, strings.TrimSpace(string(version))),
		"\nprocess_resident_memory_bytes ", "\nprocess_open_fds ", "\nprocess_start_time_seconds ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// 5. the drain ends: the node leaves the per-node series
	kubectl(t, b, "taint", "nodes", n[0], taint+"-")
	waitNode(t, b, n[0], time.Minute, "state Cancelled", stateIs("Cancelled"))
	err = bed.Eventually(ctx, 10*time.Second, func(context.Context) (bool, error) {
		_, text = monExported(t, metrics)
		return !strings.Contains(text, fmt.Sprintf("node=%q", n[0])), nil
	})
	if err != nil {
		t.Errorf("the ended drain of %s left series behind:\n%s", n[0], monGrep(text, n[0]))
	}
}

// monGrep returns the lines of text that contain s.
func monGrep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
