{{/* The CSI driver name is part of every PV this driver ever made: it is not a value. */}}
{{- define "rds-csi.driverName" -}}
rds.csi.srvlab.io
{{- end -}}

{{/* Names of cluster-scoped objects carry the release, so two releases cannot collide. */}}
{{- define "rds-csi.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rds-csi.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rds-csi.labels" -}}
{{ include "rds-csi.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rds-csi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "rds-csi.configName" -}}
{{ include "rds-csi.fullname" . }}-config
{{- end -}}

{{/* The kubelet's socket directory for this driver, on the host. */}}
{{- define "rds-csi.pluginDir" -}}
{{ .Values.node.kubeletDir }}/plugins/{{ include "rds-csi.driverName" . }}
{{- end -}}
