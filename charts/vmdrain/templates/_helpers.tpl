{{/* The chart's name (or nameOverride), cut to the 63 characters a label
value allows. */}}
{{- define "vmdrain.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name when it already
contains the chart's name (release "vmdrain" gives "vmdrain"), else
"<release>-vmdrain". Cut to 52 characters so "<fullname>-config" and the
other suffixed names still fit in 63.
*/}}
{{- define "vmdrain.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest when a digest is set, else
repository:tag (the tag defaulting to the chart's appVersion). */}}
{{- define "vmdrain.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "vmdrain.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "vmdrain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the vmdrain pod. */}}
{{- define "vmdrain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vmdrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service account vmdrain runs as. */}}
{{- define "vmdrain.serviceAccountName" -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.create=false needs serviceAccount.name: the existing account vmdrain runs as" }}
{{- end }}
{{- default (include "vmdrain.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The configuration ConfigMap's name. */}}
{{- define "vmdrain.configName" -}}
{{- printf "%s-config" (include "vmdrain.fullname" .) }}
{{- end }}

{{/* The Lease the replicas hold for leader election, in the release namespace. */}}
{{- define "vmdrain.leaseName" -}}
{{- default (include "vmdrain.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The Secret holding the webhook's serving pair (tls.crt, tls.key, ca.crt). */}}
{{- define "vmdrain.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "vmdrain.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/* The webhook Service's DNS names, the serving certificate's SANs. */}}
{{- define "vmdrain.serviceDNSNames" -}}
{{- $svc := include "vmdrain.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* webhook.extraSANs that are IP addresses (IPv4 or IPv6), as a JSON list. */}}
{{- define "vmdrain.extraIPs" -}}
{{- $ips := list -}}
{{- range .Values.webhook.extraSANs }}
{{- if regexMatch "^([0-9]{1,3}(\\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$" . }}
{{- $ips = append $ips . -}}
{{- end }}
{{- end }}
{{- $ips | toJson }}
{{- end }}

{{/* webhook.extraSANs that are DNS names, as a JSON list. */}}
{{- define "vmdrain.extraDNSNames" -}}
{{- $dns := list -}}
{{- $ips := include "vmdrain.extraIPs" . | fromJsonArray -}}
{{- range .Values.webhook.extraSANs }}
{{- if not (has . $ips) }}
{{- $dns = append $dns . -}}
{{- end }}
{{- end }}
{{- $dns | toJson }}
{{- end }}
