{{/*
The text of NOTES.txt, as a named template so that a parent chart can print it too (Helm does
not print a subchart's NOTES.txt): {{ include "schemahook.notes" .Subcharts.schemahook }}
*/}}
{{- define "schemahook.notes" -}}
{{- if not (include "schemahook.enabled" .) }}
{{- $set := ternary "enabled" (printf "%s.enabled" .Chart.Name) .Chart.IsRoot }}
schemahook is off ({{ $set }}=false): no hook, no gate, no objects of this chart.
{{- else }}
{{- include "schemahook.validateValues" . }}
{{- $db := .Values.database }}
{{- $where := printf "%s:%v" (default "libpq's default host" $db.host) $db.port }}
{{- $target := printf "the default database on %s" $where }}
{{- with $db.name }}{{ $target = printf "database %q on %s" . $where }}{{ end }}
{{- $event := ternary "pre-install" "pre-upgrade" .Release.IsInstall }}
{{- $set := "config.updateSchema" }}
{{- if not .Chart.IsRoot }}{{ $set = printf "%s.config.updateSchema" .Chart.Name }}{{ end }}
{{- if .Values.config.updateSchema }}
SCHEMA UPDATED: {{ $set }} is true.

The {{ $event }} hook Job {{ include "schemahook.schemaUpdate.name" . }} ran `schemahook update`
(image {{ include "schemahook.image" . }})
against {{ $target }} and succeeded before the rest of this release was applied:
Helm prints these notes only after every hook has succeeded. The schema is now at the image's head.
Helm then deleted the Job and its supporting objects; Helm 3.18 and later print its log above.

The setting stays on: every later `helm upgrade` (and every Argo CD sync) runs the update again,
a quick no-op when nothing is pending. To leave future schema changes to a person, turn it off:

  helm upgrade {{ .Release.Name }} <chart> -n {{ .Release.Namespace }} --reset-then-reuse-values --set {{ $set }}=false
{{- else }}
SCHEMA NOT UPDATED: {{ $set }} is false, so no hook ran and nothing changed in
{{ $target }}. Pods gated by `schemahook check --wait` stay in their init
container until the schema is at the head of image {{ include "schemahook.image" . }}.

To update the schema (stop the application first if the pending migrations need it), run one
upgrade with the hook on, then turn it off again:

  helm upgrade {{ .Release.Name }} <chart> -n {{ .Release.Namespace }} --reset-then-reuse-values --set {{ $set }}=true
  helm upgrade {{ .Release.Name }} <chart> -n {{ .Release.Namespace }} --reset-then-reuse-values --set {{ $set }}=false

(--reset-then-reuse-values, not --reuse-values, which would keep the previous chart version's
defaults.) Do not add --wait, --atomic or --rollback-on-failure to an upgrade that leaves the
schema behind: Helm would wait for the gated pods, which cannot start before the schema update,
until its --timeout ("context deadline exceeded").
{{- end }}
{{- if .Values.rollbackGuard.enabled }}
{{- $allow := "config.allowDowngrade" }}
{{- if not .Chart.IsRoot }}{{ $allow = printf "%s.config.allowDowngrade" .Chart.Name }}{{ end }}

ROLLBACK GUARD: a later `helm rollback` to this revision first runs `schemahook guard` (image
{{ include "schemahook.image" . }}) in the pre-rollback hook Job {{ include "schemahook.rollbackGuard.name" . }}.
{{- if .Values.config.allowDowngrade }}
{{ $allow }} is true: if the database is newer than that image, the guard reverts the newer
migrations with the down SQL stored when they were applied, dropping what they added.
{{- else }}
If the database is newer than that image, it stops the rollback before anything changes
({{ $allow }} is false).
{{- end }}
{{- end }}
{{- if .Values.test.enabled }}

Check the schema at any time (exits non-zero unless it is current):

  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}
{{- end }}
{{- end }}
{{- end }}
