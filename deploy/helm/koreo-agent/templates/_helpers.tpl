{{/* Names and labels shared by the templates of koreo-agent. */}}
{{- define "koreo-agent.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "koreo-agent.fullname" -}}
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

{{- define "koreo-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "koreo-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "koreo-agent.labels" -}}
{{ include "koreo-agent.selectorLabels" . }}
app.kubernetes.io/part-of: koreo
app.kubernetes.io/component: agent
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "koreo-agent.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "koreo-agent.fullname" .) -}}
{{- end -}}

{{- define "koreo-agent.tokenSecret" -}}
{{- .Values.bootstrapToken.existingSecret | default (printf "%s-bootstrap" (include "koreo-agent.fullname" .)) -}}
{{- end -}}
