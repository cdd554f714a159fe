{{/*
The copy strategy (schemaUpdate.strategy: copy, see the README, "Blue/green"). The database a
release uses is named by content — schemaUpdate.copy.nameTemplate over database.name and
schemaUpdate.copy.schemaVersion — never by .Release.Revision, which Argo CD always renders as 1:
the same values always name the same database, so every re-run and sync is idempotent, and a
rollback's manifests name the older database as they did. Every key is read through
schemahook.get: they came after chart 0.4.0, and `helm upgrade --reuse-values` lacks them.
*/}}

{{/* "true" when the copy strategy is on, else empty. */}}
{{- define "schemahook.copy.enabled" -}}
{{- if eq (include "schemahook.get" (list . "schemaUpdate.strategy" "inPlace")) "copy" }}true{{ end }}
{{- end }}

{{/*
The database this release's pods use: the copy's name with the copy strategy, else database.name.
Public: a parent chart that builds its own DSN includes it, e.g.
  postgres://app@db/{{ include "schemahook.databaseName" .Subcharts.schemahook }}
*/}}
{{- define "schemahook.databaseName" -}}
{{- if include "schemahook.copy.enabled" . }}
{{- $tmpl := include "schemahook.get" (list . "schemaUpdate.copy.nameTemplate" "{{ .database }}__v{{ .version }}") }}
{{- tpl $tmpl (dict "database" .Values.database.name "version" (include "schemahook.get" (list . "schemaUpdate.copy.schemaVersion" "")) "Template" .Template) }}
{{- else }}
{{- .Values.database.name }}
{{- end }}
{{- end }}

{{/* The lineage database of the copy strategy: where the hook, guard and gate read the copies. */}}
{{- define "schemahook.copy.lineage" -}}
{{- printf "%s__schemahook" .Values.database.name }}
{{- end }}

{{/* Fails rendering on copy-strategy values that cannot work, before any hook runs. */}}
{{- define "schemahook.copy.validate" -}}
{{- if include "schemahook.copy.enabled" . }}
{{- if not .Values.database.name }}
{{- fail "database.name is required with schemaUpdate.strategy=copy: it names the base database the first copy is made from (and the copies' names)" }}
{{- end }}
{{- if not (regexMatch "^[0-9]+$" (include "schemahook.get" (list . "schemaUpdate.copy.schemaVersion" ""))) }}
{{- fail "schemaUpdate.copy.schemaVersion is required with schemaUpdate.strategy=copy: set it to the version of your newest migration (e.g. 5 for 000005_add_x.up.sql), together with the image tag; the hook refuses a value that is not the migrations' head" }}
{{- end }}
{{- $name := include "schemahook.databaseName" . }}
{{- if gt (len $name) 63 }}
{{- fail (printf "the copy's database name %q is %d bytes; PostgreSQL truncates names to 63 bytes, so copies could collide: shorten database.name or schemaUpdate.copy.nameTemplate" $name (len $name)) }}
{{- end }}
{{- if eq $name .Values.database.name }}
{{- fail "schemaUpdate.copy.nameTemplate renders database.name itself: it must make a name per schema version, e.g. {{ .database }}__v{{ .version }}" }}
{{- end }}
{{- if gt (len (include "schemahook.copy.lineage" .)) 63 }}
{{- fail (printf "database.name %q is too long for the copy strategy: its lineage database %q would pass PostgreSQL's 63 bytes" .Values.database.name (include "schemahook.copy.lineage" .)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The hook Jobs' copy settings (update and guard), as a YAML map; empty with inPlace. */}}
{{- define "schemahook.copy.hookSettings" -}}
{{- if include "schemahook.copy.enabled" . }}
SCHEMAHOOK_STRATEGY: copy
SCHEMAHOOK_COPY_DATABASE: {{ include "schemahook.databaseName" . | quote }}
SCHEMAHOOK_COPY_VERSION: {{ include "schemahook.get" (list . "schemaUpdate.copy.schemaVersion" "") | quote }}
SCHEMAHOOK_COPY_LINEAGE: {{ include "schemahook.copy.lineage" . | quote }}
SCHEMAHOOK_COPY_METHOD: {{ include "schemahook.get" (list . "schemaUpdate.copy.method" "wal_log") | quote }}
SCHEMAHOOK_COPY_KEEP: {{ include "schemahook.get" (list . "schemaUpdate.copy.keep" "3") | quote }}
{{- /* Not through schemahook.get, which prints a large number as 1e+10. */}}
SCHEMAHOOK_COPY_DISK_BUDGET: {{ index (.Values.schemaUpdate.copy | default dict) "diskBudget" | default 0 | int64 | toString | quote }}
SCHEMAHOOK_ACCEPT_WRITE_LOSS: {{ include "schemahook.get" (list . "schemaUpdate.copy.acceptWriteLoss" "false") | quote }}
{{- end }}
{{- end }}

{{/* The gate's copy settings (check): the lineage to read and whether a lossy switch back is accepted. */}}
{{- define "schemahook.copy.gateSettings" -}}
{{- if include "schemahook.copy.enabled" . }}
SCHEMAHOOK_COPY_LINEAGE: {{ include "schemahook.copy.lineage" . | quote }}
SCHEMAHOOK_ACCEPT_WRITE_LOSS: {{ include "schemahook.get" (list . "schemaUpdate.copy.acceptWriteLoss" "false") | quote }}
{{- end }}
{{- end }}
