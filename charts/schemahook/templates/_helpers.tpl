{{/*
Names and labels.
*/}}

{{/*
"true" unless `enabled` is false: then the chart renders nothing, and its public helpers (gate,
volumes, env, migrations ConfigMap) render nothing either, so a parent chart that keeps its
includes can switch the dependency off, with or without `condition: schemahook.enabled` (with the
condition Helm leaves the chart out altogether; see the README). A release made with a chart
before 0.5.0 and upgraded with --reuse-values has no `enabled` key: absent means on.
*/}}
{{- define "schemahook.enabled" -}}
{{- if or (not (hasKey .Values "enabled")) .Values.enabled }}true{{ end }}
{{- end }}

{{/*
A value by its dotted path, as a string, or the given default when the path is missing. Read every
value added after chart 0.4.0 through it (or `dig` on a nested map): `helm upgrade --reuse-values`
renders the templates with the values stored in the release, made by the older chart, where newer
keys do not exist (the chart tests upgrade from the previous release to catch a direct read).
Call with (list $ "config.helmTimeout" "5m"). A whole number from a values file (YAML numbers reach
templates as float64) prints as an integer, not as 2.024010112e+13.
*/}}
{{- define "schemahook.get" -}}
{{- $v := (index . 0).Values }}
{{- $found := true }}
{{- range splitList "." (index . 1) }}
{{- if and $found (kindIs "map" $v) (hasKey $v .) }}{{ $v = index $v . }}{{ else }}{{ $found = false }}{{ end }}
{{- end }}
{{- if and $found (kindIs "float64" $v) (eq $v (float64 (int64 $v))) }}{{ int64 $v }}
{{- else if and $found (not (kindIs "invalid" $v)) }}{{ $v }}{{ else }}{{ index . 2 }}{{ end }}
{{- end }}

{{/* The chart name, or nameOverride. */}}
{{- define "schemahook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name. A release name that already contains the chart name is used as is,
so "schemahook" installed as "schemahook" is not called "schemahook-schemahook".
*/}}
{{- define "schemahook.fullname" -}}
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

{{/*
The name of one component's object: "<fullname>-<suffix>", with the fullname shortened so that the
whole name fits the 63 characters of a label value (Jobs copy their name into a pod label).
Call with (dict "ctx" $ "suffix" "schema-update").
*/}}
{{- define "schemahook.componentName" -}}
{{- $max := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" (include "schemahook.fullname" .ctx | trunc $max | trimSuffix "-") .suffix }}
{{- end }}

{{/*
The constant name of every schema-update hook object. Constant, so that before-hook-creation
replaces the object left by a failed run, and so that leftovers are easy to find.
*/}}
{{- define "schemahook.schemaUpdate.name" -}}
{{- include "schemahook.componentName" (dict "ctx" . "suffix" "schema-update") }}
{{- end }}

{{/*
The constant name of the rollback guard Job, for the same reasons. Its pod reads the schema-update
ConfigMap and Secret, which carry the pre-rollback event while the guard is on.
*/}}
{{- define "schemahook.rollbackGuard.name" -}}
{{- include "schemahook.componentName" (dict "ctx" . "suffix" "rollback-guard") }}
{{- end }}

{{/* The release Secret that holds an inline password for the gate and the test pod. */}}
{{- define "schemahook.database.secretName" -}}
{{- include "schemahook.componentName" (dict "ctx" . "suffix" "database") }}
{{- end }}

{{- define "schemahook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: name and instance only, because selectors are immutable. */}}
{{- define "schemahook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "schemahook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object; templates add app.kubernetes.io/component. */}}
{{- define "schemahook.labels" -}}
helm.sh/chart: {{ include "schemahook.chart" . }}
{{ include "schemahook.selectorLabels" . }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Hook annotations of a schema-update object, as YAML. Call with
(dict "ctx" $ "weight" -5 "defaults" $map "extra" $map), plus "support" true for the Job's
supporting objects (ServiceAccount, RBAC, ConfigMap, Secret). Precedence, lowest first: the chart's
hook settings and defaults, schemaUpdate.hookAnnotations, extra. The weight is always the chart's:
it is what makes the ConfigMap and Secret exist before the Job runs under Helm.
The supporting objects also carry, unless schemaUpdate.hookAnnotations says otherwise:
- hook-failed: Argo CD deletes HookSucceeded hooks only when the whole operation succeeds, so
  without it a failed sync would leave them (the Secret holding a password) until a later sync
  with config.updateSchema on; Helm already deletes them when the Job fails (they succeeded), and
  never applies hook-failed to them, which only Helm-side failures of the object itself trigger.
- argocd.argoproj.io/sync-wave "0", the Job's wave: Argo CD then runs one PreSync wave instead
  of three and waits 2 s once, not after each wave. Inside a wave it creates kind after kind
  (ServiceAccount, Secret, ConfigMap, Role, RoleBinding, then Job), each before the next. Helm
  ignores the annotation and keeps ordering by weight.
*/}}
{{- define "schemahook.schemaUpdate.hookAnnotations" -}}
{{- $policy := ternary "before-hook-creation,hook-succeeded,hook-failed" "before-hook-creation,hook-succeeded" (default false .support) }}
{{- $ann := dict "helm.sh/hook" "pre-install,pre-upgrade" "helm.sh/hook-delete-policy" $policy }}
{{- if .support }}
{{- $_ := set $ann "argocd.argoproj.io/sync-wave" "0" }}
{{- end }}
{{- with .defaults }}
{{- $ann = merge (deepCopy .) $ann }}
{{- end }}
{{- $ann = merge (deepCopy .ctx.Values.schemaUpdate.hookAnnotations) $ann }}
{{- with .extra }}
{{- $ann = merge (deepCopy .) $ann }}
{{- end }}
{{- $_ := set $ann "helm.sh/hook-weight" (toString .weight) }}
{{- toYaml $ann }}
{{- end }}

{{/*
Whether the hook Jobs' supporting objects (the schema-update ConfigMap and Secret) render: "true"
when the schema-update Job or the rollback guard does, else empty.
*/}}
{{- define "schemahook.hookSupport.enabled" -}}
{{- if and (include "schemahook.enabled" .) (or .Values.config.updateSchema .Values.rollbackGuard.enabled) }}true{{ end }}
{{- end }}

{{/*
Hook annotations of the supporting objects, as YAML, at weight -5 (below both Jobs' 0). Their
events are the schema-update Job's while config.updateSchema is on (pre-install,pre-upgrade, or what
schemaUpdate.hookAnnotations says), plus pre-rollback while the rollback guard is on: a hook exists
only during the events it names, and the guard runs at pre-rollback. schemaUpdate.hookAnnotations
applies only while the schema update is on; with the guard alone, nothing of the schema update runs.
*/}}
{{- define "schemahook.hookSupport.annotations" -}}
{{- $events := list }}
{{- $ann := dict "helm.sh/hook-delete-policy" "before-hook-creation,hook-succeeded,hook-failed" }}
{{- if .Values.config.updateSchema }}
{{- $ann = include "schemahook.schemaUpdate.hookAnnotations" (dict "ctx" . "weight" -5 "support" true) | fromYaml }}
{{- range splitList "," (get $ann "helm.sh/hook") }}
{{- $events = append $events (trim .) }}
{{- end }}
{{- end }}
{{- if .Values.rollbackGuard.enabled }}
{{- $events = append $events "pre-rollback" }}
{{- end }}
{{- $_ := set $ann "helm.sh/hook" (without (uniq $events) "" | join ",") }}
{{- $_ = set $ann "helm.sh/hook-weight" "-5" }}
{{- toYaml $ann }}
{{- end }}

{{/*
Whether the schema-update Job needs its own ServiceAccount and RBAC: "true" when it talks to the
Kubernetes API (schemaUpdate.stopWorkloads), else empty and the pod runs without a token. The
ServiceAccount and RBAC templates render only then, at weight -10.
*/}}
{{- define "schemahook.schemaUpdate.needsRBAC" -}}
{{- if and (include "schemahook.enabled" .) .Values.config.updateSchema .Values.schemaUpdate.stopWorkloads.enabled }}true{{ end }}
{{- end }}

{{/* The image reference: a digest pins it; otherwise the tag, which defaults to appVersion. */}}
{{- define "schemahook.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/*
Container configuration. Settings go through environment variables (the binary reads libpq's PG*
variables and SCHEMAHOOK_<FLAG>), not arguments; the only arguments are the subcommand and the
gate's --wait. The password is never a literal: only a secretKeyRef.
*/}}

{{/*
Non-secret settings every schemahook command needs, as a YAML map of env var name to string.
Empty values are left out so that libpq's defaults apply.
*/}}
{{- define "schemahook.connectionSettings" -}}
{{- $db := .Values.database }}
{{- with $db.host }}
PGHOST: {{ . | quote }}
{{- end }}
PGPORT: {{ $db.port | toString | quote }}
{{- with include "schemahook.databaseName" . }}
PGDATABASE: {{ . | quote }}
{{- end }}
{{- with $db.user }}
PGUSER: {{ . | quote }}
{{- end }}
PGSSLMODE: {{ $db.sslMode | quote }}
{{- if or $db.sslRootCert.secret $db.sslRootCert.configMap }}
PGSSLROOTCERT: {{ include "schemahook.sslRootCert.path" . | quote }}
{{- end }}
SCHEMAHOOK_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
{{- with include "schemahook.migrations.dir" . }}
SCHEMAHOOK_MIGRATIONS: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
connectionSettings plus the settings of the hook Jobs: the hook ConfigMap's data. `guard` reads
SCHEMAHOOK_WAIT_FOR_DB and SCHEMAHOOK_ALLOW_DOWNGRADE and ignores the variables it has no flag for.
*/}}
{{- define "schemahook.schemaUpdate.settings" -}}
{{- if include "schemahook.copy.enabled" . }}
{{- /* The hook connects to the base; it copies to, and migrates, the release's database. */}}
{{- $s := include "schemahook.connectionSettings" . | fromYaml }}
{{- $_ := set $s "PGDATABASE" .Values.database.name }}
{{- toYaml $s }}
{{ include "schemahook.copy.hookSettings" . }}
{{- else }}
{{- include "schemahook.connectionSettings" . }}
{{- end }}
SCHEMAHOOK_ALLOW_DOWNGRADE: {{ .Values.config.allowDowngrade | toString | quote }}
SCHEMAHOOK_LOCK_TIMEOUT: {{ .Values.schemaUpdate.lockTimeout | quote }}
SCHEMAHOOK_TIMEOUT: {{ .Values.schemaUpdate.timeout | quote }}
SCHEMAHOOK_WAIT_FOR_DB: {{ .Values.schemaUpdate.waitForDatabase | quote }}
SCHEMAHOOK_STATEMENT_TIMEOUT: {{ .Values.schemaUpdate.statementTimeout | quote }}
SCHEMAHOOK_COMMIT: {{ include "schemahook.get" (list . "schemaUpdate.commit" "release") | quote }}
{{- if include "schemahook.schemaUpdate.needsRBAC" . }}
SCHEMAHOOK_STOP_WORKLOADS: {{ .Values.schemaUpdate.stopWorkloads.selector | quote }}
SCHEMAHOOK_STOP_TIMEOUT: {{ .Values.schemaUpdate.stopWorkloads.timeout | quote }}
{{- end }}
{{- end }}

{{/*
The PGPASSWORD env entry as a YAML list (empty when no password is configured). Call with
(dict "ctx" $ "hook" true|false). The hook Jobs get the migration role's password from the hook
Secret (at pre-install the release Secret does not exist yet) or database.existingSecret. Everything
else (gate, test pod) gets the gate's own read-only credentials, gate.existingSecret; the migration
role's password only with gate.useMigrationCredentials, from database.existingSecret or the release
Secret (the hook Secret is deleted once the hooks succeed).
*/}}
{{- define "schemahook.passwordEnv" -}}
{{- $db := .ctx.Values.database }}
{{- $gate := .ctx.Values.gate }}
{{- $ref := dict }}
{{- if and (not .hook) $gate.existingSecret }}
{{- $ref = dict "name" $gate.existingSecret "key" $gate.passwordKey }}
{{- else if and (not .hook) (not $gate.useMigrationCredentials) }}
{{- else if $db.existingSecret }}
{{- $ref = dict "name" $db.existingSecret "key" $db.passwordKey }}
{{- else if and $db.password .hook }}
{{- $ref = dict "name" (include "schemahook.schemaUpdate.name" .ctx) "key" "password" }}
{{- else if $db.password }}
{{- $ref = dict "name" (include "schemahook.database.secretName" .ctx) "key" "password" }}
{{- end }}
{{- if $ref }}
{{- toYaml (list (dict "name" "PGPASSWORD" "valueFrom" (dict "secretKeyRef" $ref))) }}
{{- else }}
{{- toYaml (list) }}
{{- end }}
{{- end }}

{{/*
The env list of a schemahook container outside the hook (gate, test pod, the example app), as
YAML: literal non-secret settings (the hook ConfigMap is gone by the time these run) with the gate's
user (gate.database.user), PGPASSWORD as passwordEnv decides, then extraEnv.
*/}}
{{- define "schemahook.env" -}}
{{- $settings := merge (include "schemahook.connectionSettings" . | fromYaml) (include "schemahook.copy.gateSettings" . | fromYaml) }}
{{- with .Values.gate.database.user }}
{{- $_ := set $settings "PGUSER" . }}
{{- end }}
{{- $env := list }}
{{- range $name, $value := $settings }}
{{- $env = append $env (dict "name" $name "value" $value) }}
{{- end }}
{{- $env = concat $env (include "schemahook.passwordEnv" (dict "ctx" . "hook" false) | fromYamlArray) }}
{{- $env = concat $env .Values.extraEnv }}
{{- toYaml $env }}
{{- end }}

{{/* The name of the exporter's Deployment, Service, ServiceMonitor and PrometheusRule. */}}
{{- define "schemahook.metrics.name" -}}
{{- include "schemahook.componentName" (dict "ctx" . "suffix" "metrics") }}
{{- end }}

{{/* The exporter's selector: the chart's selector labels and its component, a constant. */}}
{{- define "schemahook.metrics.selectorLabels" -}}
{{ include "schemahook.selectorLabels" . }}
app.kubernetes.io/component: metrics
{{- end }}
