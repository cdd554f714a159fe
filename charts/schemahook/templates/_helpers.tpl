{{/*
Names and labels.
*/}}

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
(dict "ctx" $ "weight" -5 "extra" $map). Precedence, lowest first: the chart's hook settings,
schemaUpdate.hookAnnotations, extra. The weight is always the chart's: it is what makes the
ConfigMap and Secret exist before the Job runs.
*/}}
{{- define "schemahook.schemaUpdate.hookAnnotations" -}}
{{- $ann := dict "helm.sh/hook" "pre-install,pre-upgrade" "helm.sh/hook-delete-policy" "before-hook-creation,hook-succeeded" }}
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
{{- if or .Values.config.updateSchema .Values.rollbackGuard.enabled }}true{{ end }}
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
{{- $ann := dict "helm.sh/hook-delete-policy" "before-hook-creation,hook-succeeded" }}
{{- if .Values.config.updateSchema }}
{{- $ann = include "schemahook.schemaUpdate.hookAnnotations" (dict "ctx" . "weight" -5) | fromYaml }}
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
{{- if and .Values.config.updateSchema .Values.schemaUpdate.stopWorkloads.enabled }}true{{ end }}
{{- end }}

{{/*
Rejects combinations values.schema.json cannot express clearly. Every template that renders
something includes it, so `helm install`, `helm template` and Argo CD all fail the same way.
*/}}
{{- define "schemahook.validateValues" -}}
{{- include "schemahook.copy.validate" . }}
{{- $db := .Values.database }}
{{- if and $db.existingSecret $db.password }}
{{- fail "database.existingSecret and database.password are both set: keep database.existingSecret (recommended) and remove database.password" }}
{{- end }}
{{- if and .Values.config.updateSchema (not $db.host) }}
{{- fail "database.host is required when config.updateSchema is true: set it to the PostgreSQL server's host name (for example --set database.host=postgres.db.svc)" }}
{{- end }}
{{- with .Values.schemaUpdate.stopWorkloads }}
{{- if and .enabled (not (trim .selector)) }}
{{- fail "schemaUpdate.stopWorkloads.selector is required when schemaUpdate.stopWorkloads.enabled is true: set it to the label selector of the workloads to stop (for example --set schemaUpdate.stopWorkloads.selector=app.kubernetes.io/name=my-app)" }}
{{- end }}
{{- end }}
{{- $mi := .Values.migrations.image }}
{{- if and $mi.repository .Values.migrations.configMap }}
{{- fail "migrations.image.repository and migrations.configMap are both set: choose one source of migrations (the application image is recommended)" }}
{{- end }}
{{- if and $mi.repository (not $mi.path) }}
{{- fail "migrations.image.path is required with migrations.image.repository: set it to the directory of the *.sql files inside your image (for example --set migrations.image.path=/app/migrations)" }}
{{- end }}
{{- if and $mi.repository (not (or $mi.tag $mi.digest)) }}
{{- fail "migrations.image.tag (or migrations.image.digest) is required with migrations.image.repository: the hook and the gate must run the same build of your image" }}
{{- end }}
{{- if and $db.sslRootCert.secret $db.sslRootCert.configMap }}
{{- fail "database.sslRootCert.secret and database.sslRootCert.configMap are both set: the CA certificate comes from one of them" }}
{{- end }}
{{- if and (include "schemahook.serviceAccount.name" .) .Values.schemaUpdate.stopWorkloads.enabled .Values.config.updateSchema }}
{{- fail "serviceAccount (name or create) and schemaUpdate.stopWorkloads.enabled are both set: the schema-update Job runs under the chart's own RBAC ServiceAccount while it stops workloads; use one of them" }}
{{- end }}
{{- if not (or .Values.image.digest .Values.image.tag .Chart.AppVersion) }}
{{- fail "image.tag is empty and the chart has no appVersion to default to: set image.tag or image.digest" }}
{{- end }}
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
