{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "spectrum-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Base name of every object. The release name alone when it already contains the
chart name, so `helm install spectrum-operator` gives spectrum-operator-*, not
spectrum-operator-spectrum-operator-*.
*/}}
{{- define "spectrum-operator.fullname" -}}
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

{{- define "spectrum-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "spectrum-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels never change between upgrades: a Deployment's selector is immutable. */}}
{{- define "spectrum-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spectrum-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "spectrum-operator.serviceAccountName" -}}
{{ include "spectrum-operator.fullname" . }}
{{- end }}

{{- define "spectrum-operator.webhookServiceName" -}}
{{ include "spectrum-operator.fullname" . }}-webhook
{{- end }}

{{- define "spectrum-operator.webhookConfigName" -}}
{{ include "spectrum-operator.fullname" . }}-validating-webhook-configuration
{{- end }}

{{- define "spectrum-operator.webhookCertName" -}}
{{ include "spectrum-operator.fullname" . }}-webhook
{{- end }}

{{/* The Secret where the manager keeps its own CA and serving certificate (no cert-manager). */}}
{{- define "spectrum-operator.webhookCertSecretName" -}}
{{ include "spectrum-operator.fullname" . }}-webhook-cert
{{- end }}

{{/* cert-manager issues the metrics certificate too, so scrapers can verify it. */}}
{{- define "spectrum-operator.metricsCertManaged" -}}
{{- if and .Values.webhook.certManager.enabled .Values.metrics.enabled .Values.metrics.secure }}true{{ end }}
{{- end }}

{{- define "spectrum-operator.metricsSecretName" -}}
{{ include "spectrum-operator.fullname" . }}-metrics-tls
{{- end }}

{{- define "spectrum-operator.webhookSecretName" -}}
{{ include "spectrum-operator.fullname" . }}-webhook-tls
{{- end }}

{{/* The Secret holding the default API token: the user's, or the one the chart creates. */}}
{{- define "spectrum-operator.credentialsSecretName" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if .Values.credentials.apiToken }}
{{- include "spectrum-operator.fullname" . }}-credentials
{{- end }}
{{- end }}

{{/*
Namespaces the manager watches. The manager reads the default credentials
Secret through its cache, which only holds the watched namespaces, so the
release namespace is added when the chart configures default credentials.
*/}}
{{- define "spectrum-operator.watchNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces }}
{{- if and $namespaces (include "spectrum-operator.credentialsSecretName" .) }}
{{- $namespaces = append $namespaces .Release.Namespace | uniq }}
{{- end }}
{{- join "," $namespaces }}
{{- end }}

{{/* Fails rendering on combinations that would install a broken operator. */}}
{{- define "spectrum-operator.validate" -}}
{{- if and .Values.credentials.existingSecret .Values.credentials.apiToken }}
{{- fail "set either credentials.existingSecret or credentials.apiToken, not both" }}
{{- end }}
{{- end }}
