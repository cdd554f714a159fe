package chart_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestBadValuesRejected: values a user can plausibly get wrong must fail `helm install` (and
// therefore `helm template`, lint and Argo CD) with an error that names the offending key and says
// what is wrong. Each case first renders its base values successfully, so the failure is caused by
// the bad setting and nothing else.
func TestBadValuesRejected(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		on := []string{"config.updateSchema=true", "database.host=pg.example"}
		noAppVersion := func(chartYAML string) string {
			return regexp.MustCompile(`(?m)^appVersion:.*$`).ReplaceAllString(chartYAML, "")
		}

		for _, tc := range []struct {
			name   string
			app    bool // render example-app instead of schemahook
			base   []string
			bad    []string
			mutate func(chartYAML string) string
			// want are fragments the error must contain: where the problem is (the value's path, the
			// offending key or value). For schema errors that is all: the rest of the text is the
			// schema validator's, which is not the chart's to promise.
			want []string
		}{
			{name: "updateSchema not a boolean", bad: []string{"config.updateSchema=yes"},
				want: []string{"/config/updateSchema"}},
			{name: "updateSchema at the top level", bad: []string{"updateSchema=true"},
				want: []string{"updateSchema"}},
			{name: "upgradeSchema typo", bad: []string{"config.upgradeSchema=true"},
				want: []string{"/config", "upgradeSchema"}},
			{name: "unknown database key", bad: []string{"database.hostname=pg.example"},
				want: []string{"/database", "hostname"}},
			{name: "port not a number", bad: []string{"database.port=fivefourthreetwo"},
				want: []string{"/database/port"}},
			{name: "port out of range", bad: []string{"database.port=70000"},
				want: []string{"/database/port"}},
			{name: "bad sslMode", bad: []string{"database.sslMode=required"},
				want: []string{"/database/sslMode", "'require'"}},
			{name: "negative timeout", base: on, bad: []string{"schemaUpdate.timeout=-5m"},
				want: []string{"/schemaUpdate/timeout", "-5m"}},
			{name: "negative lockTimeout", base: on, bad: []string{"schemaUpdate.lockTimeout=-1s"},
				want: []string{"/schemaUpdate/lockTimeout", "-1s"}},
			{name: "timeout without unit", base: on, bad: []string{"schemaUpdate.timeout=300"},
				want: []string{"/schemaUpdate/timeout"}},
			{name: "waitForDatabase not a duration", base: on, bad: []string{"schemaUpdate.waitForDatabase=soon"},
				want: []string{"/schemaUpdate/waitForDatabase", "soon"}},
			{name: "negative statementTimeout", base: on, bad: []string{"schemaUpdate.statementTimeout=-1s"},
				want: []string{"/schemaUpdate/statementTimeout"}},
			{name: "statementTimeout a bare number", base: on, bad: []string{"schemaUpdate.statementTimeout=5"},
				want: []string{"/schemaUpdate/statementTimeout"}},
			{name: "backoffLimit above 1", base: on, bad: []string{"schemaUpdate.backoffLimit=2"},
				want: []string{"/schemaUpdate/backoffLimit"}},
			{name: "negative backoffLimit", base: on, bad: []string{"schemaUpdate.backoffLimit=-1"},
				want: []string{"/schemaUpdate/backoffLimit"}},
			{name: "activeDeadlineSeconds zero", base: on, bad: []string{"schemaUpdate.activeDeadlineSeconds=0"},
				want: []string{"/schemaUpdate/activeDeadlineSeconds"}},
			{name: "activeDeadlineSeconds negative", base: on, bad: []string{"schemaUpdate.activeDeadlineSeconds=-30"},
				want: []string{"/schemaUpdate/activeDeadlineSeconds"}},
			{name: "gate wait not a duration", bad: []string{"gate.wait=forever"},
				want: []string{"/gate/wait", "forever"}},
			{name: "bad log format", bad: []string{"config.logFormat=xml"},
				want: []string{"/config/logFormat"}},
			{name: "empty image repository", bad: []string{"image.repository="},
				want: []string{"/image/repository"}},
			{name: "bad pull policy", bad: []string{"image.pullPolicy=Sometimes"},
				want: []string{"/image/pullPolicy"}},
			{name: "digest without algorithm", bad: []string{"image.digest=0123abcd"},
				want: []string{"/image/digest"}},
			{name: "pull secrets as a string", bad: []string{"imagePullSecrets=regcred"},
				want: []string{"/imagePullSecrets"}},
			{name: "annotation value not a string", base: on, bad: []string{"schemaUpdate.podAnnotations.example=1"},
				want: []string{"/schemaUpdate/podAnnotations/example"}},
			{name: "allowDowngrade not a boolean", bad: []string{"config.allowDowngrade=yes"},
				want: []string{"/config/allowDowngrade"}},
			{name: "allowDowngrade at the top level", bad: []string{"allowDowngrade=true"},
				want: []string{"allowDowngrade"}},
			{name: "allowDowngrade under rollbackGuard", bad: []string{"rollbackGuard.allowDowngrade=true"},
				want: []string{"/rollbackGuard", "allowDowngrade"}},
			{name: "rollbackGuard.enabled not a boolean", bad: []string{"rollbackGuard.enabled=1"},
				want: []string{"/rollbackGuard/enabled"}},
			{name: "rollbackGuard as a boolean", bad: []string{"rollbackGuard=false"},
				want: []string{"/rollbackGuard"}},
			{name: "rollbackGuard backoffLimit", bad: []string{"rollbackGuard.backoffLimit=3"},
				want: []string{"/rollbackGuard", "backoffLimit"}},
			{name: "rollbackGuard activeDeadlineSeconds zero", bad: []string{"rollbackGuard.activeDeadlineSeconds=0"},
				want: []string{"/rollbackGuard/activeDeadlineSeconds"}},
			{name: "rollbackGuard activeDeadlineSeconds a duration", bad: []string{"rollbackGuard.activeDeadlineSeconds=4m"},
				want: []string{"/rollbackGuard/activeDeadlineSeconds"}},
			{name: "rollbackGuard pod label not a string", bad: []string{"rollbackGuard.podLabels.example=1"},
				want: []string{"/rollbackGuard/podLabels/example"}},
			{name: "app: allowDowngrade not a boolean", app: true, base: []string{"schemahook.database.host=pg.example"},
				bad:  []string{"schemahook.config.allowDowngrade=yes"},
				want: []string{"schemahook", "/config/allowDowngrade"}},
			{name: "stopWorkloads enabled without selector", base: on, bad: []string{"schemaUpdate.stopWorkloads.enabled=true"},
				want: []string{"/schemaUpdate/stopWorkloads/selector"}},
			{name: "stopWorkloads blank selector", base: on, bad: []string{"schemaUpdate.stopWorkloads.enabled=true", "schemaUpdate.stopWorkloads.selector=  "},
				want: []string{"/schemaUpdate/stopWorkloads/selector"}},
			{name: "stopWorkloads enabled not a boolean", base: on, bad: []string{"schemaUpdate.stopWorkloads.enabled=yes"},
				want: []string{"/schemaUpdate/stopWorkloads/enabled"}},
			{name: "stopWorkloads timeout without unit", base: on, bad: []string{"schemaUpdate.stopWorkloads.timeout=120"},
				want: []string{"/schemaUpdate/stopWorkloads/timeout"}},
			{name: "stopWorkloads unknown key", base: on, bad: []string{"schemaUpdate.stopWorkloads.labelSelector=app=x"},
				want: []string{"/schemaUpdate/stopWorkloads", "labelSelector"}},
			{name: "host missing with updateSchema", bad: []string{"config.updateSchema=true"},
				want: []string{"database.host is required when config.updateSchema is true"}},
			{name: "existingSecret and password", bad: []string{"database.existingSecret=pg-credentials", "database.password=pw"},
				want: []string{"database.existingSecret and database.password are both set", "remove database.password"}},
			{name: "no image tag and no appVersion", base: on, mutate: noAppVersion,
				want: []string{"image.tag is empty and the chart has no appVersion", "set image.tag or image.digest"}},
			{name: "app: host missing", app: true,
				want: []string{"schemahook.database.host is required"}},
			{name: "app: unknown key", app: true, base: []string{"schemahook.database.host=pg.example"}, bad: []string{"replicas=2"},
				want: []string{"example-app", "replicas"}},
			{name: "app: subchart schema applies", app: true, base: []string{"schemahook.database.host=pg.example"},
				bad:  []string{"schemahook.schemaUpdate.backoffLimit=3"},
				want: []string{"schemahook", "/schemaUpdate/backoffLimit"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				load := loadSchemahook
				if tc.app {
					load = loadExampleApp
				}
				// The app's default values are themselves incomplete (no host); its control is the
				// same render with the host set.
				control := tc.base
				if tc.app && len(control) == 0 {
					control = []string{"schemahook.database.host=pg.example"}
				}
				if _, err := render(t, sdk, load(t), vals(t, control...), false); err != nil {
					t.Fatalf("base values are rejected too, so the case proves nothing: %v", err)
				}

				ch := load(t)
				if tc.mutate != nil {
					ch = modifiedChart(t, ch, tc.mutate)
				}
				_, err := render(t, sdk, ch, vals(t, append(tc.base, tc.bad...)...), false)
				if err == nil {
					t.Fatalf("values %v accepted", tc.bad)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not say %q:\n%v", w, err)
					}
				}
			})
		}
	})
}

// TestGoodValuesAccepted is the other side: settings that are legitimate must not be rejected by
// an over-eager schema.
func TestGoodValuesAccepted(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, sets := range [][]string{
			{"config.updateSchema=false"},
			{"config.updateSchema=true", "database.host=pg.example", "database.existingSecret=pg-credentials"},
			{"config.updateSchema=true", "database.host=pg.example", "schemaUpdate.backoffLimit=1", "schemaUpdate.timeout=1m30s", "schemaUpdate.statementTimeout=0"},
			{"image.digest=sha256:" + strings.Repeat("ab", 32)},
			{"database.sslMode=verify-full", "database.port=6432"},
			{"imagePullSecrets[0].name=regcred"},
			{"global.imageRegistry=registry.example"},
			{"schemaUpdate.nodeSelector.kubernetes\\.io/os=linux"},
			{"config.allowDowngrade=true"},
			{"config.updateSchema=true", "database.host=pg.example", "config.allowDowngrade=true", "rollbackGuard.enabled=false"},
			{"rollbackGuard.enabled=false", "database.password=pw"},
			{"rollbackGuard.activeDeadlineSeconds=120", "rollbackGuard.tolerations[0].operator=Exists", "rollbackGuard.annotations.example\\.com/owner=platform"},
		} {
			if _, err := render(t, sdk, loadSchemahook(t), vals(t, sets...), false); err != nil {
				t.Errorf("%v rejected: %v", sets, err)
			}
		}
	})
}
