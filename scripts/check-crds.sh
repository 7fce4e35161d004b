#!/usr/bin/env bash
# make lint: the chart's CustomResourceDefinitions (charts/vmdrain/templates/
# crd.yaml, between its {{- if }} and {{- end }} lines) are exactly crds/.
set -euo pipefail
cd "$(dirname "$0")/.."
tpl=charts/vmdrain/templates/crd.yaml
if ! diff -u <(cat crds/*.yaml) <(sed '1d;$d' "$tpl") >&2; then
    echo "check-crds: $tpl differs from crds/: regenerate it with" >&2
    echo "  { echo '{{- if .Values.crds.install }}'; cat crds/*.yaml; echo '{{- end }}'; } > $tpl" >&2
    exit 1
fi
