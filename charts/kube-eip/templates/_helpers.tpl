{{/*
Names are fixed, not derived from the release: the webhook configurations,
the cluster roles and the admission policies are cluster-wide and name
kube-eip's Service and service accounts, so there is one install per
cluster. They are deploy/'s constants.
*/}}

{{/* The chart label. */}}
{{- define "kube-eip.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Pod selector of a component (deploy.Labels): name and component only, so
that no upgrade changes a Deployment's immutable selector.
Call with (dict "component" "webhook").
*/}}
{{- define "kube-eip.selectorLabels" -}}
app.kubernetes.io/name: kube-eip
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of every object: the selector's and the release's.
Call with (dict "root" $ "component" "webhook").
*/}}
{{- define "kube-eip.labels" -}}
{{ include "kube-eip.selectorLabels" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "kube-eip.chart" .root }}
{{- end }}

{{/* The image, by digest when one is given. */}}
{{- define "kube-eip.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* The cluster's name, which the binder cannot run without. */}}
{{- define "kube-eip.clusterName" -}}
{{ required "clusterName is required: the binder tags every address it owns with it; two clusters sharing a name would release each other's addresses" .Values.clusterName }}
{{- end }}

{{/*
The Pod Security "restricted" profile, as the injected wait container has
it: the image's non-root user, nothing to escalate to, a read-only root
(no container of the chart writes files).
*/}}
{{- define "kube-eip.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* -v, when more than the default is asked for. */}}
{{- define "kube-eip.logArgs" -}}
{{- if gt (int .Values.logLevel) 0 }}
- {{ printf "-v=%d" (int .Values.logLevel) | quote }}
{{- end }}
{{- end }}

{{/* The binder's EC2 flags, for the binder and the uninstall hook. */}}
{{- define "kube-eip.awsArgs" -}}
- {{ printf "--cluster-name=%s" (include "kube-eip.clusterName" .) | quote }}
{{- with .Values.region }}
- {{ printf "--region=%s" . | quote }}
{{- end }}
{{- with .Values.binder.ec2Endpoint }}
- {{ printf "--ec2-endpoint=%s" . | quote }}
{{- end }}
{{- end }}

{{/*
The binder's environment, for the binder and the uninstall hook: the
static credentials of aws.credentialsSecret (optional keys, so the SDK
finds nothing rather than failing the pod when one is left out), then
extraEnv.
*/}}
{{- define "kube-eip.binderEnv" -}}
{{- with .Values.aws.credentialsSecret }}
{{- $secret := . }}
{{- range list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Scheduling of a component's pods: priority, node selector, tolerations,
affinity (by default a soft anti-affinity among the component's replicas)
and topology spread (each constraint without a selector gets the
component's). Call with (dict "root" $ "component" "webhook").
*/}}
{{- define "kube-eip.scheduling" -}}
{{- $values := .root.Values }}
{{- $selector := include "kube-eip.selectorLabels" . | fromYaml }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
{{- if $values.affinity }}
  {{- toYaml $values.affinity | nindent 2 }}
{{- else }}
  # Replicas on different nodes where there are nodes enough; soft, so
  # that a small cluster still runs them all.
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- toYaml $selector | nindent 14 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range . }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
  - {{ toYaml $constraint | indent 4 | trim }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where hooks run: the pull secrets, node selector and tolerations of the
components, so that a hook starts wherever they do.
*/}}
{{- define "kube-eip.hookScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The serving certificate's mode: "cert-manager", "secret" (the installer's
Secret, tls.secretName) or "self-signed" (the webhook's own).
*/}}
{{- define "kube-eip.tlsMode" -}}
{{- if .Values.certManager.enabled -}}
cert-manager
{{- else if .Values.tls.secretName -}}
secret
{{- else -}}
self-signed
{{- end }}
{{- end }}

{{/* The Secret holding the serving certificate. */}}
{{- define "kube-eip.tlsSecret" -}}
{{- if eq (include "kube-eip.tlsMode" .) "secret" -}}
{{ .Values.tls.secretName }}
{{- else if eq (include "kube-eip.tlsMode" .) "self-signed" -}}
kube-eip-webhook-self-signed
{{- else -}}
kube-eip-webhook-tls
{{- end }}
{{- end }}

{{/*
The admission configuration generated from Go (files/admission.yaml, see
hack/manifests): the webhook configurations, the admission policies and
their bindings, for the release's namespace and the binder's service
account, as one map.
*/}}
{{- define "kube-eip.admission" -}}
{{- $admission := tpl (.Files.Get "files/admission.yaml") . | fromYaml }}
{{- if hasKey $admission "Error" }}
{{- fail (printf "files/admission.yaml: %s" $admission.Error) }}
{{- end }}
{{- toJson $admission }}
{{- end }}
