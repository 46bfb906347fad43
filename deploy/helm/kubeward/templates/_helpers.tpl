{{/* Object names: the release name unless overridden, at most 63 characters. */}}
{{- define "kubeward.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubeward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* app.kubernetes.io/instance is the objects' own name, as kubeward's metadataAndInstanceMismatched rule expects. */}}
{{- define "kubeward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeward.name" . }}
app.kubernetes.io/instance: {{ include "kubeward.fullname" . }}
{{- end -}}

{{- define "kubeward.labels" -}}
{{ include "kubeward.selectorLabels" . }}
app.kubernetes.io/part-of: kubeward
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "kubeward.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "kubeward.priorityClassName" -}}
{{- if .Values.priorityClass.create -}}
{{ default (include "kubeward.fullname" .) .Values.priorityClass.name }}
{{- else -}}
{{ required "priorityClass.name: name an existing PriorityClass, or set priorityClass.create" .Values.priorityClass.name }}
{{- end -}}
{{- end -}}

{{/* Replicas: 1 with SQLite (refusing more), replicaCount or 2 with PostgreSQL. */}}
{{- define "kubeward.replicas" -}}
{{- if .Values.database.postgres.enabled -}}
{{ default 2 .Values.replicaCount | int }}
{{- else -}}
{{- if and .Values.replicaCount (gt (int .Values.replicaCount) 1) -}}
{{- fail "replicaCount > 1 needs database.postgres.enabled: the SQLite queue allows one process" -}}
{{- end -}}
1
{{- end -}}
{{- end -}}
