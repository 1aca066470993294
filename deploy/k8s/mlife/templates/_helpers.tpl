{{/* The five services: whether they use the object store. Their order is the order of every list. */}}
{{- define "mlife.services" -}}
bam: {store: true}
dam: {store: true}
mtt: {store: true}
msm: {store: true}
gateway: {store: false}
{{- end }}

{{- define "mlife.fullname" -}}
{{- if contains "mlife" .Release.Name }}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{ else }}{{ printf "%s-mlife" .Release.Name | trunc 40 | trimSuffix "-" }}{{ end }}
{{- end }}

{{/* name of one workload: <fullname>-<service>-<role> */}}
{{- define "mlife.name" -}}
{{ include "mlife.fullname" .root }}-{{ .service }}-{{ .role }}
{{- end }}

{{- define "mlife.selectorLabels" -}}
app.kubernetes.io/name: mlife
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}-{{ .role }}
{{- end }}

{{- define "mlife.labels" -}}
{{ include "mlife.selectorLabels" . }}
app.kubernetes.io/part-of: mlife
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
mlife.io/service: {{ .service }}
mlife.io/role: {{ .role }}
{{- end }}

{{/* Every pod of this release (NetworkPolicies). */}}
{{- define "mlife.releaseSelector" -}}
app.kubernetes.io/name: mlife
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlife.image" -}}
{{- $img := .root.Values.image -}}
{{- $prefix := ternary (printf "%s/" (trimSuffix "/" $img.registry)) "" (ne $img.registry "") -}}
{{ $prefix }}{{ $img.repository }}/{{ .service }}:{{ $img.tag | default .root.Chart.AppVersion }}
{{- end }}

{{- define "mlife.apiUrl" -}}
http://{{ include "mlife.fullname" .root }}-{{ .service }}-api:8000
{{- end }}

{{/* A setting from the Secret: dict root, name (env var), key (key in the Secret), optional */}}
{{- define "mlife.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.secrets.name }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/* The environment of one container: dict root, service, role (api | worker | migrate | runner). */}}
{{- define "mlife.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $svc := .service -}}
{{- $SVC := upper $svc -}}
{{- $keys := $v.secrets.keys -}}
{{- $store := get (get (include "mlife.services" . | fromYaml) $svc) "store" -}}
{{- $user := ternary "mtt-runner" $svc (eq .role "runner") -}}
- name: MLIFE_ENVIRONMENT
  value: {{ $v.environment | quote }}
- name: MLIFE_LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: MLIFE_NATS_URL
  value: {{ $v.nats.url | quote }}
- name: MLIFE_NATS_REPLICAS
  value: {{ $v.nats.replicas | quote }}
{{ include "mlife.secretEnv" (dict "root" $root "name" (printf "MLIFE_%s_DATABASE_URL" $SVC) "key" (replace "{service}" $svc $keys.databaseUrl)) }}
{{- if eq .role "runner" }}
- name: MLIFE_MTT_NATS_USER
  value: mtt-runner
{{- if $v.runner.procMountUnmasked }}
{{- /* A pod's user namespace maps uids 0-65535 only: task code of slot k > 0 runs as base + k (default 100000). */}}
- name: MLIFE_MTT_SANDBOX_SLOT_UID_BASE
  value: {{ $v.runner.slotUidBase | quote }}
{{- end }}
{{- end }}
{{ include "mlife.secretEnv" (dict "root" $root "name" (printf "MLIFE_%s_NATS_PASSWORD" $SVC) "key" (replace "{user}" $user $keys.natsPassword)) }}
{{- if ne .role "runner" }}
{{/* The runner holds no identity key: task code must find none (docs/security.md). */}}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_IDENTITY_SECRET" "key" $keys.identitySecret) }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_METRICS_TOKEN" "key" $keys.metricsToken "optional" true) }}
{{- end }}
{{- if $store }}
- name: MLIFE_OBJECT_STORE
  value: s3
- name: MLIFE_S3_ENDPOINT
  value: {{ $v.s3.endpoint | quote }}
- name: MLIFE_S3_BUCKET
  value: {{ $v.s3.bucket | quote }}
- name: MLIFE_S3_SECURE
  value: {{ $v.s3.secure | quote }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_S3_ACCESS_KEY" "key" $keys.s3AccessKey) }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_S3_SECRET_KEY" "key" $keys.s3SecretKey) }}
{{- end }}
{{- if eq $svc "dam" }}
- name: MLIFE_DAM_MSM_URL
  value: {{ include "mlife.apiUrl" (dict "root" $root "service" "msm") | quote }}
- name: MLIFE_DAM_PUBLIC_URL
  value: {{ $v.publicUrl | default (printf "%s://%s" (ternary "https" "http" $v.ingress.tls.enabled) $v.ingress.host) | quote }}
{{- with $v.services.dam.labelstudio }}
{{- if .url }}
- name: MLIFE_DAM_LABELSTUDIO_URL
  value: {{ .url | quote }}
- name: MLIFE_DAM_LABELSTUDIO_WEBHOOK_URL
  value: {{ .webhookUrl | quote }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_DAM_LABELSTUDIO_TOKEN" "key" $keys.labelstudioToken) }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_DAM_LABELSTUDIO_WEBHOOK_SECRET" "key" $keys.labelstudioWebhookSecret) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $svc "mtt" }}
- name: MLIFE_MTT_MLFLOW_TRACKING_URI
  value: {{ $v.mlflow.trackingUri | quote }}
{{- if $v.mlflow.uiUrl }}
- name: MLIFE_MTT_MLFLOW_UI_URL
  value: {{ $v.mlflow.uiUrl | quote }}
{{- end }}
{{- end }}
{{- if eq $svc "gateway" }}
{{- range $upstream := list "bam" "dam" "mtt" "msm" }}
- name: MLIFE_GATEWAY_{{ upper $upstream }}_URL
  value: {{ include "mlife.apiUrl" (dict "root" $root "service" $upstream) | quote }}
{{- end }}
- name: MLIFE_GATEWAY_ALLOWED_HOSTS
  value: {{ concat ($v.services.gateway.allowedHosts | default (list $v.ingress.host)) (list "localhost") | uniq | toJson | quote }}
- name: MLIFE_GATEWAY_TRUSTED_PROXIES
  value: {{ $v.services.gateway.trustedProxies | toJson | quote }}
{{- if $v.services.gateway.eventsNatsUrl }}
- name: MLIFE_GATEWAY_EVENTS_NATS_URL
  value: {{ $v.services.gateway.eventsNatsUrl | quote }}
{{- end }}
{{- if $v.services.gateway.smtpHost }}
- name: MLIFE_GATEWAY_SMTP_HOST
  value: {{ $v.services.gateway.smtpHost | quote }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_GATEWAY_SMTP_PASSWORD" "key" $keys.smtpPassword "optional" true) }}
{{- end }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_GATEWAY_AUTH_CALLOUT_SEED" "key" $keys.authCalloutSeed) }}
{{- if eq .role "migrate" }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_ADMIN_TOKEN" "key" $keys.adminToken) }}
{{ include "mlife.secretEnv" (dict "root" $root "name" "MLIFE_ADMIN_PASSWORD" "key" $keys.adminPassword) }}
{{- end }}
{{- end }}
{{- range $name, $value := (get $v.services $svc).env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every MLife pod but the runner: dict root */}}
{{- define "mlife.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mlife.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* The writable places of a read-only image: /tmp and MLIFE_HOME (/var/lib/mlife, e.g. MTT's work folders). */}}
{{- define "mlife.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /var/lib/mlife
{{- end }}

{{- define "mlife.volumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}

{{/* A worker has no HTTP port: alive and ready = it holds an established TCP connection to a NATS node (a port of
MLIFE_NATS_URL), read from /proc/net/tcp*. The same check as docker-compose.yml's workers. */}}
{{- define "mlife.workerProbe" -}}
exec:
  command:
    - python
    - -c
    - |
      import os, sys, urllib.parse
      urls = os.environ.get("MLIFE_NATS_URL", "nats://127.0.0.1:4222").split(",")
      suffixes = {":%04X" % (urllib.parse.urlsplit(u.strip()).port or 4222) for u in urls if u.strip()}
      def connected(path):
          try:
              rows = [line.split() for line in open(path).read().splitlines()[1:]]
          except OSError:
              return False
          return any(len(r) > 3 and r[3] == "01" and r[2][-5:] in suffixes for r in rows)
      sys.exit(0 if connected("/proc/net/tcp") or connected("/proc/net/tcp6") else 1)
{{- end }}

{{- define "mlife.scheduling" -}}
{{- $v := .root.Values -}}
{{- with (.nodeSelector | default $v.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.tolerations | default $v.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.topologySpread }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "mlife.selectorLabels" . | nindent 8 }}
{{- end }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
