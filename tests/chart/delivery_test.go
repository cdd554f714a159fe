package chart_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// consumerDeployment is the Deployment `helm create` writes, with volumes of its own, plus the
// gate exactly as the README tells a consumer to add it, guarded for `condition: schemahook.enabled`.
const consumerDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-consumer
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: consumer
  template:
    metadata:
      labels:
        app.kubernetes.io/name: consumer
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      initContainers:
        {{- with .Subcharts.schemahook }}
        {{- include "schemahook.gate.initContainer" . | nindent 8 }}
        {{- end }}
      containers:
        - name: consumer
          image: "nginx:1.27"
          ports:
            - name: http
              containerPort: 80
          {{- with .Values.volumeMounts }}
          volumeMounts:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      volumes:
        {{- with .Subcharts.schemahook }}
        {{- include "schemahook.gate.volumes" . | nindent 8 }}
        {{- end }}
        {{- with .Values.volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
`

const consumerMigrations = `{{- with .Subcharts.schemahook }}
{{- include "schemahook.migrations.configMap" (dict "ctx" . "files" ($.Files.Glob "migrations/*.sql")) }}
{{- end }}
`

// consumerChart is a parent chart of schemahook with a helm-create Deployment that already has a
// volume, and migrations/*.sql files of the given sizes rendered into the migrations ConfigMap,
// written to a temporary directory so that each SDK loads it with its own loader.
func consumerChart(t *testing.T, fileSizes ...int) chartSrc {
	t.Helper()
	files := map[string]string{
		"Chart.yaml": `apiVersion: v2
name: consumer
version: 0.1.0
appVersion: 1.0.0
dependencies:
  - name: schemahook
    version: ">=0.5.0-0"
    repository: file://../schemahook
    condition: schemahook.enabled
`,
		"values.yaml": `volumes:
  - name: tmp
    emptyDir: {}
volumeMounts:
  - name: tmp
    mountPath: /tmp
`,
		"templates/deployment.yaml": consumerDeployment,
	}
	if len(fileSizes) > 0 {
		files["templates/migrations-configmap.yaml"] = consumerMigrations
	}
	for i, n := range fileSizes {
		files["migrations/"+strings.Repeat("0", 5)+string(rune('1'+i))+"_m.up.sql"] = strings.Repeat("-", n)
	}
	return chartSrc{dir: writeChart(t, files), deps: []chartSrc{loadSchemahook(t)}}
}

// checkPodVolumes fails unless every volume mount of every container names a volume of the pod
// and no volume name appears twice: what the API server would otherwise reject at apply time.
func checkPodVolumes(t *testing.T, owner string, spec corev1.PodSpec) {
	t.Helper()
	var names []string
	for _, v := range spec.Volumes {
		if slices.Contains(names, v.Name) {
			t.Errorf("%s: volume %q twice", owner, v.Name)
		}
		names = append(names, v.Name)
	}
	for _, c := range containers(spec) {
		for _, m := range c.VolumeMounts {
			if !slices.Contains(names, m.Name) {
				t.Errorf("%s/%s: volumeMount %q (%s) names no volume of the pod (volumes: %v)", owner, c.Name, m.Name, m.MountPath, names)
			}
		}
	}
}

// TestGateHelpersMergeIntoAHelmCreateDeployment: the gate's init containers and volumes go into a
// Deployment that has volumes of its own, in every delivery mode, and give one valid pod: one
// volumes list, every mount backed by a volume. Missing values fail at render.
func TestGateHelpersMergeIntoAHelmCreateDeployment(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		base := []string{"schemahook.database.host=pg.example", "schemahook.database.existingSecret=pg",
			"schemahook.gate.existingSecret=pg-gate", "schemahook.gate.database.user=gate"}
		for name, tc := range map[string]struct {
			files []int
			sets  []string
			gate  []string // the gate's init containers, in order
		}{
			"derived image": {sets: nil, gate: []string{"wait-for-schema"}},
			"chart-rendered ConfigMap": {files: []int{100, 200}, sets: []string{"schemahook.migrations.configMap=consumer-migrations"},
				gate: []string{"wait-for-schema"}},
			"app image": {sets: []string{"schemahook.migrations.image.repository=registry.example/consumer",
				"schemahook.migrations.image.tag=1.0.0", "schemahook.migrations.image.path=/app/migrations"},
				gate: []string{"install-schemahook", "wait-for-schema"}},
			"certificate and extra volumes": {sets: []string{"schemahook.migrations.configMap=consumer-migrations",
				"schemahook.database.sslRootCert.configMap=db-ca", "schemahook.extraVolumes[0].name=token",
				"schemahook.extraVolumes[0].emptyDir.medium=Memory", "schemahook.extraVolumeMounts[0].name=token",
				"schemahook.extraVolumeMounts[0].mountPath=/var/run/token"}, files: []int{10},
				gate: []string{"wait-for-schema"}},
		} {
			t.Run(name, func(t *testing.T) {
				objs := objects(t, mustRender(t, sdk, consumerChart(t, tc.files...), vals(t, slices.Concat(base, tc.sets)...)))
				ds := ofKind[*appsv1.Deployment](objs)
				if len(ds) != 1 {
					t.Fatalf("%d Deployments, want 1", len(ds))
				}
				spec := ds[0].Spec.Template.Spec
				checkPodVolumes(t, "Deployment", spec)
				var got []string
				for _, c := range spec.InitContainers {
					got = append(got, c.Name)
				}
				if !slices.Equal(got, tc.gate) {
					t.Errorf("init containers %v, want %v", got, tc.gate)
				}
				if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "tmp" }) {
					t.Errorf("the Deployment's own volume is gone: %v", spec.Volumes)
				}
				for _, p := range pods(objs) {
					checkPodVolumes(t, p.Owner.String(), p.Spec)
				}
			})
		}

		for name, tc := range map[string]struct {
			sets []string
			want string
		}{
			"app image without a path": {[]string{"schemahook.migrations.image.repository=registry.example/consumer", "schemahook.migrations.image.tag=v1"},
				"migrations.image.path is required"},
			"app image without a tag": {[]string{"schemahook.migrations.image.repository=registry.example/consumer", "schemahook.migrations.image.path=/m"},
				"migrations.image.tag (or migrations.image.digest) is required"},
			"two sources": {[]string{"schemahook.migrations.image.repository=r", "schemahook.migrations.image.tag=v1",
				"schemahook.migrations.image.path=/m", "schemahook.migrations.configMap=c"}, "choose one source"},
			"gate without credentials": {[]string{"schemahook.gate.existingSecret="}, "the gate has no database credentials"},
		} {
			t.Run("fails: "+name, func(t *testing.T) {
				_, err := render(t, sdk, consumerChart(t), vals(t, slices.Concat(base, tc.sets)...), false)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("render: %v; want an error saying %q", err, tc.want)
				}
			})
		}
	})
}

// TestMigrationsConfigMapHook: the chart-rendered migrations ConfigMap is a hook below the
// schema-update Job (at every event the Jobs run), kept after the hooks for the gate, holding the
// files by name; too large a set fails at render and names the application-image mode.
func TestMigrationsConfigMapHook(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		sets := []string{"schemahook.database.host=pg.example", "schemahook.config.updateSchema=true",
			"schemahook.gate.useMigrationCredentials=true", "schemahook.migrations.configMap=consumer-migrations"}
		rel := mustRender(t, sdk, consumerChart(t, 30, 40), vals(t, sets...))
		var cm *hook
		for _, h := range rel.Hooks {
			if h.Kind == "ConfigMap" && h.Name == "consumer-migrations" {
				cm = h
			}
		}
		if cm == nil {
			t.Fatal("no hook ConfigMap consumer-migrations")
		}
		want := []string{evPreInstall, evPreUpgrade, evPreRollback}
		if !slices.Equal(cm.Events, want) || cm.Weight >= 0 || !slices.Equal(cm.DeletePolicies, []string{policyBefore}) {
			t.Errorf("events %v weight %d delete policies %v; want %v below the Jobs' 0, before-hook-creation only (kept for the gate)",
				cm.Events, cm.Weight, cm.DeletePolicies, want)
		}
		o, _ := find(objects(t, rel), "ConfigMap", "consumer-migrations")
		data := o.Obj.(*corev1.ConfigMap).Data
		if len(data) != 2 || len(data["000001_m.up.sql"]) != 30 || len(data["000002_m.up.sql"]) != 40 {
			t.Errorf("ConfigMap data keys %v, want the two files by base name", keys(data))
		}
		for _, j := range ofKind[*batchv1.Job](objects(t, rel)) {
			if !mountsConfigMap(j.Spec.Template.Spec, j.Spec.Template.Spec.Containers[0], "/migrations", "consumer-migrations") {
				t.Errorf("Job %s does not mount consumer-migrations", j.Name)
			}
		}

		_, err := render(t, sdk, consumerChart(t, 300<<10, 300<<10), vals(t, sets...), false)
		if err == nil || !strings.Contains(err.Error(), "migrations.image.repository") || !strings.Contains(err.Error(), "1 MiB") {
			t.Fatalf("600 KiB of migrations: %v; want a render error naming migrations.image.repository and the 1 MiB limit", err)
		}
	})
}

// TestAppImageMode: with migrations.image, every pod that runs schemahook runs the application
// image with the binary an init container from the schemahook image copied into an emptyDir, and
// reads the migrations from migrations.image.path.
func TestAppImageMode(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			t.Run(c.name, func(t *testing.T) {
				p := c.prefix
				objs := objects(t, mustRender(t, sdk, c.load(t), vals(t, appImageSets(c, p+"config.updateSchema=true", p+"database.host=pg.example")...)))
				ps := pods(objs)
				if len(ps) < 3 {
					t.Fatalf("%d pods, want the two Jobs and the test pod at least", len(ps))
				}
				for _, pod := range ps {
					if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != "install-schemahook" {
						t.Errorf("%s: no install-schemahook init container first", pod.Owner)
						continue
					}
					install := pod.Spec.InitContainers[0]
					if !strings.HasPrefix(install.Image, "ghcr.io/schemahook/schemahook:") || !slices.Equal(install.Args, []string{"install-binary", "/schemahook-bin"}) {
						t.Errorf("%s: install-schemahook runs %s %v, want the schemahook image with install-binary /schemahook-bin", pod.Owner, install.Image, install.Args)
					}
					// The gate and example-app's stand-in app too: every other container runs schemahook.
					for _, ctr := range containers(pod.Spec)[1:] {
						if ctr.Image != "registry.example/app:1.2.3" || !slices.Equal(ctr.Command, []string{"/schemahook-bin/schemahook"}) {
							t.Errorf("%s/%s: runs %s %v, want registry.example/app:1.2.3 running /schemahook-bin/schemahook", pod.Owner, ctr.Name, ctr.Image, ctr.Command)
						}
						if env := containerEnv(t, objs, pod, ctr); env["SCHEMAHOOK_MIGRATIONS"] != "/app/migrations" {
							t.Errorf("%s/%s: SCHEMAHOOK_MIGRATIONS %q, want /app/migrations", pod.Owner, ctr.Name, env["SCHEMAHOOK_MIGRATIONS"])
						}
					}
					checkPodVolumes(t, pod.Owner.String(), pod.Spec)
				}
			})
		}
	})
}

// TestGateCredentials: the migration role's password reaches the hook Jobs only. The test pod
// and the gate connect with gate.existingSecret and gate.database.user; with neither and no
// gate.useMigrationCredentials, the test pod gets no password at all.
func TestGateCredentials(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		on := []string{"config.updateSchema=true", "database.host=pg.example", "database.user=migrator", "database.existingSecret=pg-migrator"}
		for name, tc := range map[string]struct {
			sets           []string
			user, password string // what the test pod gets: PGUSER, PGPASSWORD's Secret ("" none)
		}{
			"defaults":                  {nil, "migrator", ""},
			"read-only role":            {[]string{"gate.existingSecret=pg-gate", "gate.database.user=reader"}, "reader", "pg-gate"},
			"migration role, by choice": {[]string{"gate.useMigrationCredentials=true"}, "migrator", "pg-migrator"},
		} {
			t.Run(name, func(t *testing.T) {
				objs := objects(t, mustRender(t, sdk, loadSchemahook(t), vals(t, slices.Concat(on, tc.sets)...)))
				for _, pod := range pods(objs) {
					ctr := pod.Spec.Containers[0]
					env := containerEnv(t, objs, pod, ctr)
					if pod.Owner.Kind == "Job" {
						if env["PGPASSWORD"] != "<secret pg-migrator/password>" || env["PGUSER"] != "migrator" {
							t.Errorf("%s: PGUSER %q PGPASSWORD %q, want the migration role's", pod.Owner, env["PGUSER"], env["PGPASSWORD"])
						}
						continue
					}
					want := ""
					if tc.password != "" {
						want = "<secret " + tc.password + "/password>"
					}
					if env["PGPASSWORD"] != want || env["PGUSER"] != tc.user {
						t.Errorf("%s: PGUSER %q PGPASSWORD %q, want %q %q", pod.Owner, env["PGUSER"], env["PGPASSWORD"], tc.user, want)
					}
				}
			})
		}
	})
}

// TestProductionKnobs: extraEnv, extraEnvFrom, extraVolumes, extraVolumeMounts, the CA
// certificate, the ServiceAccount and priorityClassName reach the Job, the guard and the test
// pod; the env, volumes and certificate reach the gate too.
func TestProductionKnobs(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		sets := []string{"schemahook.config.updateSchema=true", "schemahook.database.host=pg.example",
			"schemahook.database.sslMode=verify-full", "schemahook.database.sslRootCert.secret=db-ca",
			"schemahook.extraEnv[0].name=AWS_REGION", "schemahook.extraEnv[0].value=eu-west-1",
			"schemahook.extraEnvFrom[0].configMapRef.name=db-extra",
			"schemahook.extraVolumes[0].name=token", "schemahook.extraVolumes[0].emptyDir.medium=Memory",
			"schemahook.extraVolumeMounts[0].name=token", "schemahook.extraVolumeMounts[0].mountPath=/var/run/token",
			"schemahook.serviceAccount.create=true", "schemahook.serviceAccount.name=db-migrate",
			"schemahook.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/db",
			"schemahook.priorityClassName=high"}
		objs := objects(t, mustRender(t, sdk, loadExampleApp(t), vals(t, sets...)))
		sa, ok := find(objs, "ServiceAccount", "db-migrate")
		if !ok || sa.Hook == nil || sa.Hook.Weight >= -5 || annotations(t, sa)["eks.amazonaws.com/role-arn"] != "arn:aws:iam::1:role/db" {
			t.Errorf("ServiceAccount db-migrate: %v; want a hook before the Jobs with the role annotation", sa)
		}
		for _, pod := range pods(objs) {
			chartPod := pod.Owner.Kind != "Deployment"
			if chartPod && (pod.Spec.ServiceAccountName != "db-migrate" || pod.Spec.PriorityClassName != "high") {
				t.Errorf("%s: serviceAccountName %q priorityClassName %q, want db-migrate and high", pod.Owner, pod.Spec.ServiceAccountName, pod.Spec.PriorityClassName)
			}
			checkPodVolumes(t, pod.Owner.String(), pod.Spec)
			for _, ctr := range containers(pod.Spec) {
				if !chartPod && ctr.Name == "app" {
					continue // the application's own container: the knobs are for schemahook's
				}
				env := map[string]string{} // literal env plus the rendered ConfigMaps of envFrom (db-extra is the user's)
				for _, ef := range ctr.EnvFrom {
					if ef.ConfigMapRef != nil {
						if cm, ok := find(objs, "ConfigMap", ef.ConfigMapRef.Name); ok {
							maps.Copy(env, cm.Obj.(*corev1.ConfigMap).Data)
						}
					}
				}
				for _, e := range ctr.Env {
					env[e.Name] = e.Value
				}
				if env["AWS_REGION"] != "eu-west-1" || env["PGSSLROOTCERT"] != "/etc/schemahook/ssl/root.crt" {
					t.Errorf("%s/%s: AWS_REGION %q PGSSLROOTCERT %q", pod.Owner, ctr.Name, env["AWS_REGION"], env["PGSSLROOTCERT"])
				}
				if !slices.ContainsFunc(ctr.EnvFrom, func(e corev1.EnvFromSource) bool { return e.ConfigMapRef != nil && e.ConfigMapRef.Name == "db-extra" }) {
					t.Errorf("%s/%s: no envFrom db-extra", pod.Owner, ctr.Name)
				}
				var mounts []string
				for _, m := range ctr.VolumeMounts {
					mounts = append(mounts, m.MountPath)
				}
				if !slices.Contains(mounts, "/var/run/token") || !slices.Contains(mounts, "/etc/schemahook/ssl") {
					t.Errorf("%s/%s: mounts %v, want /var/run/token and /etc/schemahook/ssl", pod.Owner, ctr.Name, mounts)
				}
			}
		}
	})
}
