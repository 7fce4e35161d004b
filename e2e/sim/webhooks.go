package sim

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// RewriteWebhooks takes webhook configurations as virt-operator installs
// them (multi-document YAML; each webhook calls the virt-api service) and
// points every webhook at baseURL + the service path instead, trusting the
// PEM bundle ca. Other documents pass unchanged.
func RewriteWebhooks(in []byte, baseURL string, ca []byte) ([]byte, error) {
	var out bytes.Buffer
	for _, doc := range splitYAML(in) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if obj == nil {
			continue
		}
		hooks, _ := obj["webhooks"].([]any)
		for _, h := range hooks {
			hook, _ := h.(map[string]any)
			cc, _ := hook["clientConfig"].(map[string]any)
			if cc == nil {
				continue
			}
			svc, _ := cc["service"].(map[string]any)
			if svc == nil {
				continue
			}
			path, _ := svc["path"].(string)
			delete(cc, "service")
			cc["url"] = strings.TrimSuffix(baseURL, "/") + path
			cc["caBundle"] = base64.StdEncoding.EncodeToString(ca)
		}
		data, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&out, "---\n%s", data)
	}
	return out.Bytes(), nil
}

func splitYAML(in []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(in, []byte("\n---")) {
		d = bytes.TrimPrefix(bytes.TrimSpace(d), []byte("---"))
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}
