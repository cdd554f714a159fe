package chart_test

import (
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/scheme"
)

// The Prometheus Operator's types join the scheme, so that a ServiceMonitor or PrometheusRule is
// decoded as strictly as the built-in kinds.
func init() {
	if err := monitoringv1.AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}

const metricsName = fullname + "-metrics"

// metricsValues are the values of a release with the exporter and a read-only role for it.
func metricsValues(t *testing.T, sets ...string) map[string]any {
	return vals(t, append([]string{"database.host=pg.example", "database.existingSecret=pg-migrator",
		"metrics.enabled=true", "gate.existingSecret=pg-reader", "gate.database.user=reader"}, sets...)...)
}

// The exporter's objects exist only when asked for: nothing by default, a Deployment and a
// Service with metrics.enabled, and the Prometheus Operator objects only under their own switch.
func TestMetricsObjectsOnlyWhenEnabled(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		ch := loadSchemahook(t)
		kinds := func(values map[string]any) []string {
			var out []string
			for _, o := range objects(t, mustRender(t, sdk, ch, values)) {
				if strings.HasSuffix(o.Name, "-metrics") {
					out = append(out, o.Kind)
				}
			}
			return out
		}
		for name, c := range map[string]struct {
			values map[string]any
			want   []string
		}{
			"defaults":        {vals(t, "database.host=pg.example"), nil},
			"metrics.enabled": {metricsValues(t), []string{"Deployment", "Service"}},
			"serviceMonitor":  {metricsValues(t, "metrics.serviceMonitor.enabled=true"), []string{"Deployment", "Service", "ServiceMonitor"}},
			"prometheusRule":  {metricsValues(t, "metrics.prometheusRule.enabled=true"), []string{"Deployment", "PrometheusRule", "Service"}},
			"switches without metrics.enabled": {vals(t, "database.host=pg.example",
				"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"), nil},
		} {
			t.Run(name, func(t *testing.T) {
				got := kinds(c.values)
				slices.Sort(got)
				if !slices.Equal(got, c.want) {
					t.Errorf("objects named *-metrics: %v, want %v", got, c.want)
				}
			})
		}
	})
}

// The exporter runs `schemahook exporter` with the gate's read-only role and the release's
// migrations, its Service selects its pod and no other, and the ServiceMonitor scrapes that
// Service's port.
func TestMetricsDeployment(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		objs := objects(t, mustRender(t, sdk, loadSchemahook(t), metricsValues(t,
			"migrations.configMap=app-migrations", "metrics.serviceMonitor.enabled=true", "metrics.port=9400")))
		o, ok := find(objs, "Deployment", metricsName)
		if !ok {
			t.Fatal("no exporter Deployment")
		}
		d := o.Obj.(*appsv1.Deployment)
		if o.Hook != nil {
			t.Error("the exporter is a hook; it must be an ordinary release object")
		}
		var ctr corev1.Container
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "exporter" {
				ctr = c
			}
		}
		if !slices.Equal(ctr.Args, []string{"exporter", "--listen", ":9400", "--scrape-timeout", "5s"}) {
			t.Errorf("exporter args %q", ctr.Args)
		}
		env := containerEnv(t, objs, podTemplate{o, d.Spec.Template.ObjectMeta, d.Spec.Template.Spec}, ctr)
		if env["PGUSER"] != "reader" || env["SCHEMAHOOK_MIGRATIONS"] != "/migrations" {
			t.Errorf("exporter env PGUSER=%q SCHEMAHOOK_MIGRATIONS=%q, want the gate's user and /migrations", env["PGUSER"], env["SCHEMAHOOK_MIGRATIONS"])
		}
		if pw, ok := envNamed(ctr, "PGPASSWORD"); !ok || pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil || pw.ValueFrom.SecretKeyRef.Name != "pg-reader" {
			t.Errorf("exporter PGPASSWORD %+v, want the gate's Secret pg-reader (never the migration role's)", pw)
		}
		if !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/migrations" }) {
			t.Errorf("the migrations ConfigMap is not mounted: %+v", ctr.VolumeMounts)
		}

		svcObj, ok := find(objs, "Service", metricsName)
		if !ok {
			t.Fatal("no exporter Service")
		}
		svc := svcObj.Obj.(*corev1.Service)
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, p := range pods(objs) {
			if matches := sel.Matches(labels.Set(p.Meta.Labels)); matches != (p.Owner.Name == metricsName) {
				t.Errorf("Service selector %v matches %s: %v", svc.Spec.Selector, p.Owner, matches)
			}
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9400 || svc.Spec.Ports[0].Name != "metrics" {
			t.Errorf("Service ports %+v", svc.Spec.Ports)
		}
		smObj, ok := find(objs, "ServiceMonitor", metricsName)
		if !ok {
			t.Fatal("no ServiceMonitor")
		}
		sm := smObj.Obj.(*monitoringv1.ServiceMonitor)
		if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
			t.Errorf("the ServiceMonitor's selector %v does not match the Service's labels %v", sm.Spec.Selector.MatchLabels, svc.Labels)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
			t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
		}
	})
}

// The exporter never gets the migration role's password by accident: without read-only
// credentials of its own rendering fails, as it does for the gate.
func TestMetricsNeedReadOnlyCredentials(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		_, err := render(t, sdk, loadSchemahook(t), vals(t, "database.host=pg.example", "database.existingSecret=pg-migrator", "metrics.enabled=true"), false)
		if err == nil || !strings.Contains(err.Error(), "the gate has no database credentials") {
			t.Fatalf("render with metrics and only the migration role's password: %v, want the gate's credentials error", err)
		}
	})
}
