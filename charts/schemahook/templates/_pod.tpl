{{/*
Pieces shared by every pod that runs schemahook: the schema-update Job, the rollback guard, the
test pod and the gate in the application's pods. Where the migrations come from decides most of
them:
- migrations.configMap: the schemahook image, with the ConfigMap mounted at /migrations;
- migrations.image: the user's application image, which holds the migrations at
  migrations.image.path; an init container from the schemahook image copies the static binary
  into an emptyDir (`schemahook install-binary`), so the application image needs no shell;
- neither: the schemahook image, or an image derived from it that sets SCHEMAHOOK_MIGRATIONS.
*/}}

{{/* Where the binary lands in the application image's container (migrations.image). */}}
{{- define "schemahook.binDir" -}}
/schemahook-bin
{{- end }}

{{/* "true" when schemahook runs in the user's application image, else empty. */}}
{{- define "schemahook.appImage.enabled" -}}
{{- if .Values.migrations.image.repository }}true{{ end }}
{{- end }}

{{/*
The migrations directory inside the containers, or empty: an image derived from the schemahook
image sets SCHEMAHOOK_MIGRATIONS itself.
*/}}
{{- define "schemahook.migrations.dir" -}}
{{- if .Values.migrations.configMap }}/migrations
{{- else if .Values.migrations.image.repository }}{{ .Values.migrations.image.path }}
{{- end }}
{{- end }}

{{/* Where the CA certificate of database.sslRootCert is mounted (PGSSLROOTCERT). */}}
{{- define "schemahook.sslRootCert.path" -}}
/etc/schemahook/ssl/root.crt
{{- end }}

{{/*
The image, pull policy and command of a container that runs schemahook, as YAML fields: the
application image running the copied binary, or the schemahook image's own entrypoint.
*/}}
{{- define "schemahook.container.program" -}}
{{- $mi := .Values.migrations.image }}
{{- if $mi.repository }}
image: {{ ternary (printf "%s@%s" $mi.repository $mi.digest) (printf "%s:%s" $mi.repository $mi.tag) (not (empty $mi.digest)) | quote }}
imagePullPolicy: {{ $mi.pullPolicy }}
command:
  - {{ include "schemahook.binDir" . }}/schemahook
{{- else }}
image: {{ include "schemahook.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- end }}
{{- end }}

{{/*
The init container that copies the binary into the shared emptyDir, as a list (empty unless
migrations.image is set). Call with (dict "ctx" $ "resources" $map).
*/}}
{{- define "schemahook.installBinary.initContainers" -}}
{{- if include "schemahook.appImage.enabled" .ctx }}
{{- $c := dict "name" "install-schemahook" "image" (include "schemahook.image" .ctx) "imagePullPolicy" .ctx.Values.image.pullPolicy }}
{{- $_ := set $c "args" (list "install-binary" (include "schemahook.binDir" .ctx)) }}
{{- $_ = set $c "volumeMounts" (list (dict "name" "schemahook-bin" "mountPath" (include "schemahook.binDir" .ctx))) }}
{{- with .ctx.Values.securityContext }}{{ $_ = set $c "securityContext" . }}{{ end }}
{{- with .resources }}{{ $_ = set $c "resources" . }}{{ end }}
{{- toYaml (list $c) }}
{{- end }}
{{- end }}

{{/* The pod volumes every schemahook container needs, plus extraVolumes, as a list (may be empty). */}}
{{- define "schemahook.pod.volumes" -}}
{{- $v := list }}
{{- if include "schemahook.appImage.enabled" . }}
{{- $v = append $v (dict "name" "schemahook-bin" "emptyDir" (dict "sizeLimit" "64Mi")) }}
{{- end }}
{{- with .Values.migrations.configMap }}
{{- $v = append $v (dict "name" "schemahook-migrations" "configMap" (dict "name" .)) }}
{{- end }}
{{- with .Values.database.sslRootCert }}
{{- $items := list (dict "key" .key "path" "root.crt") }}
{{- if .secret }}
{{- $v = append $v (dict "name" "schemahook-ssl-root-cert" "secret" (dict "secretName" .secret "items" $items)) }}
{{- else if .configMap }}
{{- $v = append $v (dict "name" "schemahook-ssl-root-cert" "configMap" (dict "name" .configMap "items" $items)) }}
{{- end }}
{{- end }}
{{- $v = concat $v .Values.extraVolumes }}
{{- if $v }}{{ toYaml $v }}{{ end }}
{{- end }}

{{/* The volume mounts of a container that runs schemahook, plus extraVolumeMounts (may be empty). */}}
{{- define "schemahook.container.volumeMounts" -}}
{{- $m := list }}
{{- if include "schemahook.appImage.enabled" . }}
{{- $m = append $m (dict "name" "schemahook-bin" "mountPath" (include "schemahook.binDir" .) "readOnly" true) }}
{{- end }}
{{- if .Values.migrations.configMap }}
{{- $m = append $m (dict "name" "schemahook-migrations" "mountPath" "/migrations" "readOnly" true) }}
{{- end }}
{{- if or .Values.database.sslRootCert.secret .Values.database.sslRootCert.configMap }}
{{- $m = append $m (dict "name" "schemahook-ssl-root-cert" "mountPath" (include "schemahook.sslRootCert.path" . | dir) "readOnly" true) }}
{{- end }}
{{- $m = concat $m .Values.extraVolumeMounts }}
{{- if $m }}{{ toYaml $m }}{{ end }}
{{- end }}

{{/*
The pod-level fields of the chart's own pods (schema-update Job, guard, test pod), as YAML: the
ServiceAccount (serviceAccount.*, for IAM database authentication) and priorityClassName. The
schema-update Job's RBAC ServiceAccount (stopWorkloads) is set by its template.
*/}}
{{- define "schemahook.pod.identity" -}}
{{- with include "schemahook.serviceAccount.name" . }}
serviceAccountName: {{ . }}
automountServiceAccountToken: {{ $.Values.serviceAccount.automountToken }}
{{- else }}
automountServiceAccountToken: false
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of the chart's pods: serviceAccount.name, or the chart's own when it creates one; else empty. */}}
{{- define "schemahook.serviceAccount.name" -}}
{{- $sa := .Values.serviceAccount }}
{{- if $sa.create }}{{ default (include "schemahook.fullname" .) $sa.name }}
{{- else }}{{ $sa.name }}
{{- end }}
{{- end }}
