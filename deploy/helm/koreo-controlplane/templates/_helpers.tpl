{{/* Names and labels shared by the templates of koreo-controlplane. */}}
{{- define "koreo-controlplane.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "koreo-controlplane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := .Values.nameOverride | default .Chart.Name -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "koreo-controlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "koreo-controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "koreo-controlplane.labels" -}}
{{ include "koreo-controlplane.selectorLabels" . }}
app.kubernetes.io/part-of: koreo
app.kubernetes.io/component: controlplane
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "koreo-controlplane.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "koreo-controlplane.fullname" .) -}}
{{- end -}}

{{- define "koreo-controlplane.databaseSecret" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "koreo-controlplane.fullname" .)) -}}
{{- end -}}

{{- define "koreo-controlplane.pkiSecret" -}}
{{- .Values.pki.existingSecret | default (printf "%s-pki" (include "koreo-controlplane.fullname" .)) -}}
{{- end -}}
