{{/*
Public templates for parent charts. Call them with the subchart's own context,
`.Subcharts.schemahook` (use the alias if the dependency has one), so that they see this chart's
values, name and appVersion. Each returns list entries that go into the parent's own lists:

      initContainers:
        {{- include "schemahook.gate.initContainer" .Subcharts.schemahook | nindent 8 }}
      containers:
        - name: app
          env:
            {{- include "schemahook.databaseEnv" .Subcharts.schemahook | nindent 12 }}
      volumes:
        {{- include "schemahook.gate.volumes" .Subcharts.schemahook | nindent 8 }}
        {{- with .Values.volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
*/}}

{{/*
The gate: init containers that keep the pod's other containers from starting until the database
schema is at the head of the migrations the hook applies. The last one runs
`schemahook check --wait`; with migrations.image, one before it copies the binary into the emptyDir
the gate runs it from. Each carries its own restricted security context, so the gate does not loosen
the pod it is added to. Rendering fails when the gate would have no credentials while the migration
role has a password: the gate gets the migration role's password only when the user says so.
*/}}
{{- define "schemahook.gate.initContainer" -}}
{{- if include "schemahook.enabled" . }}
{{- include "schemahook.validateValues" . }}
{{- include "schemahook.gate.validateCredentials" . }}
{{- with include "schemahook.installBinary.initContainers" (dict "ctx" . "resources" .Values.gate.resources) }}{{ . }}{{ "\n" }}{{ end -}}
- name: wait-for-schema
  {{- include "schemahook.container.program" . | trim | nindent 2 }}
  args:
    - check
    - --wait
    - {{ .Values.gate.wait | quote }}
  env:
    {{- include "schemahook.env" . | nindent 4 }}
  {{- with .Values.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.gate.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "schemahook.container.volumeMounts" . }}
  volumeMounts:
    {{- . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The volumes the gate needs, as list entries to put into the pod's own `volumes:` list next to the
application's; renders nothing when the gate needs none.
*/}}
{{- define "schemahook.gate.volumes" -}}
{{- if include "schemahook.enabled" . }}{{ include "schemahook.pod.volumes" . }}{{ end }}
{{- end }}

{{/*
The volume mounts of an application container that runs schemahook too (the example app's
`serve`): the same migrations and certificate as the gate. May render nothing.
*/}}
{{- define "schemahook.gate.volumeMounts" -}}
{{- if include "schemahook.enabled" . }}{{ include "schemahook.container.volumeMounts" . }}{{ end }}
{{- end }}

{{/*
The database env of an application container that uses the gate's settings: PGHOST, PGPORT,
PGDATABASE, PGUSER, PGSSLMODE (PGSSLROOTCERT) and PGPASSWORD from a Secret, as passwordEnv decides.
*/}}
{{- define "schemahook.databaseEnv" -}}
{{- if include "schemahook.enabled" . }}{{ include "schemahook.env" . }}{{ end }}
{{- end }}

{{/* Fails when the gate would connect without a password although the migration role has one. */}}
{{- define "schemahook.gate.validateCredentials" -}}
{{- $db := .Values.database }}
{{- $gate := .Values.gate }}
{{- if and (or $db.existingSecret $db.password) (not $gate.existingSecret) (not $gate.useMigrationCredentials) }}
{{- fail "the gate has no database credentials: set gate.existingSecret (and gate.database.user) to a read-only role (the chart's README gives the GRANTs), or set gate.useMigrationCredentials=true to give the application's pods the migration role's password" }}
{{- end }}
{{- end }}

{{/*
A ConfigMap of the parent chart's own migration files, for migrations.configMap: a hook at weight
-5, below the schema-update Job, kept after the hooks (no hook-succeeded) so that the gate's pods
can mount it, and replaced by every install, upgrade and rollback. Call from a template of the
parent chart, which alone can read its files:

  {{- include "schemahook.migrations.configMap" (dict "ctx" .Subcharts.schemahook "files" (.Files.Glob "migrations/*.sql")) }}

The files count twice against the 1 MiB of Helm's release Secret (as chart files and in the
rendered manifest), so rendering fails above 512 KiB and points at migrations.image.
*/}}
{{- define "schemahook.migrations.configMap" -}}
{{- $ctx := .ctx }}
{{- if include "schemahook.enabled" $ctx }}
{{- include "schemahook.validateValues" $ctx }}
{{- $name := required "migrations.configMap is required to render the migrations ConfigMap: set it to the ConfigMap's name (for example --set schemahook.migrations.configMap=my-app-migrations)" $ctx.Values.migrations.configMap }}
{{- $data := dict }}
{{- $size := 0 }}
{{- range $path, $bytes := .files }}
{{- $_ := set $data (base $path) (toString $bytes) }}
{{- $size = add $size (len $bytes) (len (base $path)) }}
{{- end }}
{{- if not $data }}
{{- fail "no migration files for the migrations ConfigMap: .Files.Glob matched nothing (put the *.sql files under the parent chart, e.g. migrations/, outside templates/)" }}
{{- end }}
{{- $max := 524288 }}
{{- if gt $size $max }}
{{- fail (printf "the migrations are %d bytes, more than the %d a chart-rendered ConfigMap may hold: a ConfigMap is limited to 1 MiB and the files also count against Helm's release Secret (1 MiB). Ship them in your application image instead: set migrations.image.repository, tag and path (see the chart's README, \"Migrations\")" $size $max) }}
{{- end }}
{{- $events := list "pre-install" "pre-upgrade" }}
{{- if $ctx.Values.rollbackGuard.enabled }}{{ $events = append $events "pre-rollback" }}{{ end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels:
    {{- include "schemahook.labels" $ctx | nindent 4 }}
    app.kubernetes.io/component: migrations
  annotations:
    helm.sh/hook: {{ join "," $events }}
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation
    # Argo CD: the schema-update Job's wave (see schemahook.schemaUpdate.hookAnnotations).
    argocd.argoproj.io/sync-wave: "0"
data:
  {{- toYaml $data | nindent 2 }}
{{- end }}
{{- end }}
