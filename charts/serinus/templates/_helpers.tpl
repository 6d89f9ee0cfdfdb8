{{/* Names, labels and the checks every template shares. */}}

{{- define "serinus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>", or the release name alone when it already contains the chart name. */}}
{{- define "serinus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Cluster-scoped objects (ClusterRole, ClusterKopfPeering) carry the release namespace:
two releases in two namespaces never share one. */}}
{{- define "serinus.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "serinus.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "serinus.peeringName" -}}
{{- default (include "serinus.clusterName" .) .Values.peering.name }}
{{- end }}

{{- define "serinus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "serinus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "serinus.metricsServiceName" -}}
{{- printf "%s-metrics" (include "serinus.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "serinus.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "serinus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serinus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "serinus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "serinus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's permissions: the one list in files/rbac-rules.yaml. */}}
{{- define "serinus.rbacRules" -}}
{{- .Files.Get "files/rbac-rules.yaml" | fromYaml | toJson }}
{{- end }}

{{/* Checks across values that values.schema.json cannot express. */}}
{{- define "serinus.validate" -}}
{{- if and .Values.monitoring.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "monitoring.serviceMonitor.enabled needs metrics.enabled: the ServiceMonitor scrapes the operator's /metrics" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.operator.healthPort)) }}
{{- fail (printf "metrics.port and operator.healthPort are both %d: they must differ" (int .Values.metrics.port)) }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (semverCompare "<1.28.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "replicaCount %d needs Kubernetes 1.28+ (each replica's peering priority is its apps.kubernetes.io/pod-index label); this cluster is %s: use replicaCount 1" (int .Values.replicaCount) .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}
