{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "infercast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name. */}}
{{- define "infercast.fullname" -}}
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

{{- define "infercast.exporter.fullname" -}}
{{- printf "%s-exporter" (include "infercast.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "infercast.adapter.fullname" -}}
{{- printf "%s-adapter" (include "infercast.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "infercast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "infercast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: infercast
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (exporter, adapter). */}}
{{- define "infercast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "infercast.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "infercast.componentLabels" -}}
{{ include "infercast.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "infercast.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* Address KEDA dials: the adapter Service's gRPC port. */}}
{{- define "infercast.scalerAddress" -}}
{{- printf "%s.%s.svc:%d" (include "infercast.adapter.fullname" .) .Release.Namespace (int .Values.adapter.ports.grpc) }}
{{- end }}

{{/* Namespace of the ScaledObjects (and their TriggerAuthentication): KEDA
scales the Deployment of a ScaledObject's own namespace, where the workloads
run. */}}
{{- define "infercast.scaledObjects.namespace" -}}
{{- .Values.scaledObjects.namespace | default .Values.adapter.pods.namespace | default .Release.Namespace }}
{{- end }}

{{/* Where the exporter reads its config file and the inline price catalogue. */}}
{{- define "infercast.exporter.configDir" -}}/etc/infercast{{- end }}

{{/* The exporter's config file as rendered: exporter.config, with
integrations.cost.catalogue_file pointing at exporter.priceCatalogue when
that is set. Empty when there is neither. */}}
{{- define "infercast.exporter.config" -}}
{{- $e := .Values.exporter }}
{{- $cfg := deepCopy (default (dict) $e.config) }}
{{- if $e.priceCatalogue }}
{{- with dig "integrations" "cost" "catalogue_file" "" $cfg }}
{{- fail (printf "exporter.priceCatalogue and exporter.config.integrations.cost.catalogue_file (%s) both name a price catalogue: set one (catalogue_file with exporter.extraVolumes)" .) }}
{{- end }}
{{- $ic := default (dict) $cfg.integrations }}
{{- $cost := default (dict) $ic.cost }}
{{- $_ := set $cost "catalogue_file" (printf "%s/prices.yaml" (include "infercast.exporter.configDir" .)) }}
{{- $_ := set $ic "cost" $cost }}
{{- $_ := set $cfg "integrations" $ic }}
{{- end }}
{{- if $cfg }}{{ toYaml $cfg }}{{ end }}
{{- end }}

{{/* Whether the exporter's config turns on Kubernetes discovery. */}}
{{- define "infercast.exporter.discovery" -}}
{{- if dig "integrations" "kubernetes" "enabled" false .Values.exporter.config }}true{{ else }}false{{ end }}
{{- end }}
