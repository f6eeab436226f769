{{/* The chart name, shortened to a DNS label. */}}
{{- define "poolwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object names: the release name, plus the chart name unless it contains it. */}}
{{- define "poolwatch.fullname" -}}
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

{{/* Labels of every object. */}}
{{- define "poolwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "poolwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: poolwatch
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "poolwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "poolwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "poolwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "poolwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository, then the digest if given, else the tag (default appVersion). */}}
{{- define "poolwatch.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if eq $tag "latest" }}
{{- fail "image.tag must not be \"latest\": pin a version (default: the chart's appVersion) or a digest" }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Lease's name. */}}
{{- define "poolwatch.leaseName" -}}
{{- default (printf "%s-leader" (include "poolwatch.fullname" .)) .Values.leaderElection.id }}
{{- end }}

{{/* The rules the operator needs on watches, their Secrets and Events, wherever it watches. */}}
{{- define "poolwatch.watchRules" -}}
# Watches: the controller lists and watches them (it never gets one by name)...
- apiGroups: ["poolwatch.io"]
  resources: ["poolstatisticswatches"]
  verbs: ["list", "watch"]
# ...and writes only their status, by server-side apply.
- apiGroups: ["poolwatch.io"]
  resources: ["poolstatisticswatches/status"]
  verbs: ["patch"]
# Credentials: read by name when a poll needs them; never listed, watched or cached.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Transition events: created, then patched as a series when they repeat.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.federation.enabled }}
# Keyless federation: a short-lived token of the watch's own ServiceAccount, exchanged at IAM.
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- end }}
{{- end }}

{{/*
Federation values that cannot be right: cluster-wide RBAC without the admin's acknowledgement, and
tokens allowed in kube-system.
*/}}
{{- define "poolwatch.federationChecks" -}}
{{- if and (not .Values.watchNamespaces) (not .Values.federation.acknowledgeClusterWideTokens) }}
{{- fail "federation.enabled=true without watchNamespaces grants the operator create on serviceaccounts/token in every namespace, kube-system included: whoever takes over the operator can mint a token for any ServiceAccount and takes over the cluster. Prefer namespaced mode: list the namespaces in watchNamespaces, and tokens are granted only there. To run cluster-wide anyway, set federation.acknowledgeClusterWideTokens=true: the chart's ValidatingAdmissionPolicy then allows the operator tokens only in the namespaces of federation.namespaces or labelled with federation.namespaceLabels (never kube-system), and never for federation.apiServerAudiences (set it to your cluster's issuer and --api-audiences)" }}
{{- end }}
{{- if or (has "kube-system" .Values.federation.namespaces) (has "kube-system" .Values.watchNamespaces) }}
{{- fail "federation.enabled=true with kube-system in federation.namespaces or watchNamespaces: the operator never creates tokens in kube-system (a token of its ServiceAccounts controls the cluster); remove kube-system, or watch it without federation.enabled" }}
{{- end }}
{{- end }}
