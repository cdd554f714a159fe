{{/*
Validation of value combinations values.schema.json cannot express, or cannot explain. Every
template that renders something, and every public helper, includes schemahook.validateValues, so
`helm install`, `helm template`, `helm lint` and Argo CD all fail the same way, at render, with one
message per rule that names the values and says what to do. Without these rules the mistakes show up
late or never: Helm silently drops a hook whose event it does not know, Kubernetes kills a Job before
schemahook can say why, a selector fails only on the first upgrade with something pending.
*/}}

{{- define "schemahook.validateValues" -}}
{{- if include "schemahook.enabled" . }}
{{- include "schemahook.copy.validate" . }}
{{- $db := .Values.database }}
{{- if and $db.existingSecret $db.password }}
{{- fail "database.existingSecret and database.password are both set: keep database.existingSecret (recommended) and remove database.password" }}
{{- end }}
{{- include "schemahook.validate.host" . }}
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
{{- include "schemahook.validate.names" . }}
{{- include "schemahook.validate.hookAnnotations" . }}
{{- include "schemahook.validate.stopWorkloads" . }}
{{- include "schemahook.validate.timeouts" . }}
{{- include "schemahook.validate.security" . }}
{{- include "schemahook.validate.resources" . }}
{{- end }}
{{- end }}

{{/*
database.host is what libpq gets as PGHOST: a host name, an IP address, or a socket directory. Not a
URL (the scheme would be looked up as a host name), not blank (libpq would fall back to a local
socket that does not exist in the pod).
*/}}
{{- define "schemahook.validate.host" -}}
{{- $host := .Values.database.host | toString }}
{{- if and .Values.config.updateSchema (not $host) }}
{{- fail "database.host is required when config.updateSchema is true: set it to the PostgreSQL server's host name (for example --set database.host=postgres.db.svc)" }}
{{- end }}
{{- if and $host (not (trim $host)) }}
{{- fail "database.host is blank (only spaces): set it to the PostgreSQL server's host name (for example --set database.host=postgres.db.svc), or leave it empty for libpq's default" }}
{{- end }}
{{- if contains "://" $host }}
{{- fail (printf "database.host %q is a URL: set only the host name (for example postgres.db.svc), and the port, database, user and sslMode in database.port, database.name, database.user and database.sslMode" $host) }}
{{- end }}
{{- if regexMatch "\\s" $host }}
{{- fail (printf "database.host %q contains spaces: set it to one host name or IP address (for example postgres.db.svc)" $host) }}
{{- end }}
{{- end }}

{{/* nameOverride and fullnameOverride end up in object names and labels: DNS labels. */}}
{{- define "schemahook.validate.names" -}}
{{- range $key := list "nameOverride" "fullnameOverride" }}
{{- $v := index $.Values $key | default "" | toString }}
{{- if and $v (or (gt (len $v) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $v))) }}
{{- fail (printf "%s %q is not a DNS label: it prefixes object names, so use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit (for example --set %s=my-app)" $key $v $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Helm hook annotations a user can override (schemaUpdate.hookAnnotations, and the Job's
schemaUpdate.annotations): Helm ignores an object whose helm.sh/hook names no event it knows, without
a word, so a typo would make the schema update silently never run.
*/}}
{{- define "schemahook.validate.hookAnnotations" -}}
{{- $known := dict
  "helm.sh/hook" (list "pre-install" "post-install" "pre-delete" "post-delete" "pre-upgrade" "post-upgrade" "pre-rollback" "post-rollback" "test" "test-success")
  "helm.sh/hook-delete-policy" (list "before-hook-creation" "hook-succeeded" "hook-failed")
  "helm.sh/hook-output-log-policy" (list "hook-succeeded" "hook-failed") }}
{{- range $source := list "hookAnnotations" "annotations" }}
{{- $ann := index $.Values.schemaUpdate $source | default dict }}
{{- range $key, $allowed := $known }}
{{- if hasKey $ann $key }}
{{- $value := index $ann $key | toString }}
{{- $items := without (splitList "," $value | compact) "" }}
{{- if and (eq $key "helm.sh/hook") (not (trim $value)) }}
{{- fail (printf "schemaUpdate.%s.%s is empty: Helm would treat the objects as ordinary release objects, created after the schema update should have run; set it to Helm hook events (for example pre-install,pre-upgrade) or remove it" $source $key) }}
{{- end }}
{{- range $items }}
{{- if not (has (trim .) $allowed) }}
{{- fail (printf "schemaUpdate.%s.%s %q: %q is not one Helm knows, and Helm would silently skip the objects; use a comma-separated list of %s" $source $key $value (trim .) (join ", " $allowed)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
schemaUpdate.stopWorkloads: only the schema-update Job stops workloads, and the binary parses the
selector only once migrations are pending, on some later upgrade. Parse it here, by the rules of
Kubernetes label selectors: comma-separated requirements, each `key`, `!key`, `key=value`,
`key==value`, `key!=value`, `key in (v1,v2)` or `key notin (v1,v2)`, keys and values in label
syntax.
*/}}
{{- define "schemahook.validate.stopWorkloads" -}}
{{- $sw := .Values.schemaUpdate.stopWorkloads }}
{{- if and $sw.enabled (not .Values.config.updateSchema) }}
{{- fail "schemaUpdate.stopWorkloads.enabled is true but config.updateSchema is false: workloads are stopped only by the schema-update Job, which then does not run; turn stopWorkloads on together with config.updateSchema for the upgrade that migrates, and off with it" }}
{{- end }}
{{- if and $sw.enabled (trim $sw.selector) }}
{{- $name := "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?" }}
{{- $key := printf "([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?%s" $name }}
{{- $value := printf "(%s)?" $name }}
{{- /* A set holds at least one non-empty value: Kubernetes rejects "()". */}}
{{- $set := printf "\\(\\s*(%s\\s*,\\s*)*%s(\\s*,\\s*%s)*\\s*\\)" $value $name $value }}
{{- $req := printf "\\s*(!\\s*%s|%s\\s*(==|=|!=)\\s*%s|%s\\s+(in|notin)\\s*%s|%s)\\s*" $key $key $value $key $set $key }}
{{- if not (regexMatch (printf "^%s(,%s)*$" $req $req) $sw.selector) }}
{{- fail (printf "schemaUpdate.stopWorkloads.selector %q is not a Kubernetes label selector: use comma-separated requirements such as app.kubernetes.io/name=my-app, tier!=db, app in (a,b), !canary (keys and values: letters, digits, '-', '_', '.'; no spaces inside; with --set, escape commas as \\,)" $sw.selector) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The time budget of the hook Jobs. Innermost first, each must end before the next one out, so that
the one that gives up is the one that can say why: the stop wait inside `schemahook update`'s
timeout; the wait for the database plus that timeout inside the Job's activeDeadlineSeconds (else
Kubernetes kills the pod with DeadlineExceeded and no word from schemahook); the Job's deadline inside
the --timeout Helm waits for each hook (config.helmTimeout; else Helm gives up first and leaves the
Job running). Also lockTimeout: "0" means no lock timeout at all in PostgreSQL.
*/}}
{{- define "schemahook.validate.timeouts" -}}
{{- $su := .Values.schemaUpdate }}
{{- $helm := include "schemahook.seconds" (include "schemahook.get" (list . "config.helmTimeout" "5m")) | float64 }}
{{- if eq (include "schemahook.seconds" $su.lockTimeout | float64) 0.0 }}
{{- fail (printf "schemaUpdate.lockTimeout %q turns PostgreSQL's lock_timeout off: a migration statement would wait behind any long transaction while every query queues behind it; set a duration such as 200ms (statementTimeout is the one that \"0\" turns off)" (toString $su.lockTimeout)) }}
{{- end }}
{{- if .Values.config.updateSchema }}
{{- $budget := addf (include "schemahook.seconds" $su.timeout | float64) (include "schemahook.seconds" $su.waitForDatabase | float64) }}
{{- if ge $budget (float64 $su.activeDeadlineSeconds) }}
{{- fail (printf "schemaUpdate.timeout (%s) + schemaUpdate.waitForDatabase (%s) = %vs is not below schemaUpdate.activeDeadlineSeconds (%v): Kubernetes would kill the Job before schemahook gives up with its own error; raise activeDeadlineSeconds or lower the two durations" $su.timeout $su.waitForDatabase $budget $su.activeDeadlineSeconds) }}
{{- end }}
{{- if ge (float64 $su.activeDeadlineSeconds) $helm }}
{{- fail (printf "schemaUpdate.activeDeadlineSeconds (%v) is not below config.helmTimeout (%s, Helm's --timeout for each hook): Helm would stop waiting and leave the Job running; lower activeDeadlineSeconds, or run helm with a longer --timeout and set config.helmTimeout to it" $su.activeDeadlineSeconds (include "schemahook.get" (list . "config.helmTimeout" "5m"))) }}
{{- end }}
{{- if $su.stopWorkloads.enabled }}
{{- if ge (include "schemahook.seconds" $su.stopWorkloads.timeout | float64) (include "schemahook.seconds" $su.timeout | float64) }}
{{- fail (printf "schemaUpdate.stopWorkloads.timeout (%s) is not below schemaUpdate.timeout (%s): the wait for the stopped pods counts against the whole update's deadline, which would leave no time to migrate; lower stopWorkloads.timeout or raise schemaUpdate.timeout" $su.stopWorkloads.timeout $su.timeout) }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.rollbackGuard.enabled }}
{{- $guard := .Values.rollbackGuard.activeDeadlineSeconds }}
{{- if le (float64 $guard) (include "schemahook.seconds" $su.waitForDatabase | float64) }}
{{- fail (printf "rollbackGuard.activeDeadlineSeconds (%v) is not above schemaUpdate.waitForDatabase (%s), which the guard waits for the database: Kubernetes would kill the guard while it waits; raise rollbackGuard.activeDeadlineSeconds or lower waitForDatabase" $guard $su.waitForDatabase) }}
{{- end }}
{{- if ge (float64 $guard) $helm }}
{{- fail (printf "rollbackGuard.activeDeadlineSeconds (%v) is not below config.helmTimeout (%s, Helm's --timeout for each hook): Helm would stop waiting and leave the guard running; lower it, or run helm rollback with a longer --timeout and set config.helmTimeout to it" $guard (include "schemahook.get" (list . "config.helmTimeout" "5m"))) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Go duration (values.schema.json checks the syntax: 1h2m3.5s, 200ms, "0") in seconds, as a
string; float64 turns it into a number.
*/}}
{{- define "schemahook.seconds" -}}
{{- $unit := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $total = addf $total (mulf (float64 $n) (get $unit (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The security contexts: null (which Helm turns into "no key") would run the containers without the
restricted settings the chart's pods promise, and runAsUser 0 with runAsNonRoot makes the kubelet
refuse to start the container, long after the render.
*/}}
{{- define "schemahook.validate.security" -}}
{{- range $key := list "podSecurityContext" "securityContext" }}
{{- if not (kindIs "map" (index $.Values $key)) }}
{{- fail (printf "%s is null: the chart's pods would run without the security context that Pod Security \"restricted\" requires; to loosen it, override single fields (for example --set %s.readOnlyRootFilesystem=false) instead of removing it" $key $key) }}
{{- end }}
{{- end }}
{{- $pod := .Values.podSecurityContext }}
{{- $ctr := .Values.securityContext }}
{{- $user := ternary $ctr.runAsUser $pod.runAsUser (hasKey $ctr "runAsUser") }}
{{- $nonRoot := ternary $ctr.runAsNonRoot $pod.runAsNonRoot (hasKey $ctr "runAsNonRoot") }}
{{- if and $nonRoot (not (kindIs "invalid" $user)) (eq (int64 $user) 0) }}
{{- fail "runAsUser is 0 (root) while runAsNonRoot is true (securityContext or podSecurityContext): the kubelet would refuse to start the containers; set runAsUser to a non-root UID such as 65532, the image's user" }}
{{- end }}
{{- end }}

{{/* Resources of each container: a typo such as `request` would be dropped by Kubernetes. */}}
{{- define "schemahook.validate.resources" -}}
{{- range $path := list "schemaUpdate" "rollbackGuard" "gate" "test" "metrics" }}
{{- $res := index $.Values $path "resources" | default dict }}
{{- range $key, $_ := $res }}
{{- if not (has $key (list "requests" "limits" "claims")) }}
{{- fail (printf "%s.resources.%s is not a field of a container's resources: use requests and limits (for example --set %s.resources.requests.memory=64Mi)" $path $key $path) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
