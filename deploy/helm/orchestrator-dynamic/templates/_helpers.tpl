{{- define "od.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "od.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "od.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "od.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "od.selectorLabels" -}}
app.kubernetes.io/name: {{ include "od.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A variable read from the Secret; optional, so a missing key leaves it unset. */}}
{{- define "od.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      optional: true
{{- end -}}

{{/* How long the service keeps serving after SIGTERM with /ready at 503 (DRAIN_SECONDS). */}}
{{- define "od.drainSeconds" -}}
{{- if ne (toString .Values.shutdown.drainSeconds) "" -}}
{{- .Values.shutdown.drainSeconds -}}
{{- else -}}
{{- mul .Values.probes.readiness.periodSeconds .Values.probes.readiness.failureThreshold -}}
{{- end -}}
{{- end -}}
