package chart_test

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/strvals"
)

// TestValidationRules: value combinations that the schema lets through but that would fail late
// (at the first upgrade with something pending, when the kubelet starts a pod), or never visibly
// (Helm silently drops a hook it cannot parse), are rejected at render by _validate.tpl, each with
// a message of the chart's own that names the values and says what to do. Every row first renders
// its base values, so the failure is caused by the bad setting alone.
func TestValidationRules(t *testing.T) {
	on := []string{"config.updateSchema=true", "database.host=pg.example"}
	stop := append(append([]string{}, on...), "schemaUpdate.stopWorkloads.enabled=true", "schemaUpdate.stopWorkloads.selector=app=web")
	for _, tc := range []struct {
		name string
		base []string
		bad  []string
		// badString are set as strings, like --set-string or a quoted value in a values file.
		badString []string
		want      []string // fragments of the chart's message: the value, and what to do
	}{
		// Hook annotations Helm would silently ignore the object for.
		{name: "hook event typo", base: on, bad: []string{`schemaUpdate.hookAnnotations.helm\.sh/hook=pre-instal\,pre-upgrade`},
			want: []string{`"pre-instal" is not one Helm knows`, "Helm would silently skip", "pre-install, post-install"}},
		{name: "hook event typo in the Job's annotations", base: on, bad: []string{`schemaUpdate.annotations.helm\.sh/hook=preupgrade`},
			want: []string{"schemaUpdate.annotations.helm.sh/hook", `"preupgrade" is not one Helm knows`}},
		{name: "hook event empty", base: on, bad: []string{`schemaUpdate.hookAnnotations.helm\.sh/hook= `},
			want: []string{"schemaUpdate.hookAnnotations.helm.sh/hook is empty", "set it to Helm hook events"}},
		{name: "delete policy typo", base: on, bad: []string{`schemaUpdate.hookAnnotations.helm\.sh/hook-delete-policy=before-hook-creation\,hook-suceeded`},
			want: []string{`"hook-suceeded" is not one Helm knows`, "before-hook-creation, hook-succeeded, hook-failed"}},
		{name: "log policy typo", base: on, bad: []string{`schemaUpdate.hookAnnotations.helm\.sh/hook-output-log-policy=on-failure`},
			want: []string{`"on-failure" is not one Helm knows`, "hook-succeeded, hook-failed"}},

		// stopWorkloads.
		{name: "selector with an unclosed set", base: stop, bad: []string{`schemaUpdate.stopWorkloads.selector=app in (a`},
			want: []string{`selector "app in (a" is not a Kubernetes label selector`, "app.kubernetes.io/name=my-app"}},
		{name: "selector value with a space", base: stop, bad: []string{`schemaUpdate.stopWorkloads.selector=app=my app`},
			want: []string{`selector "app=my app" is not a Kubernetes label selector`}},
		{name: "selector with a trailing comma", base: stop, bad: []string{`schemaUpdate.stopWorkloads.selector=a=b\,`},
			want: []string{`selector "a=b," is not a Kubernetes label selector`, `escape commas as \,`}},
		{name: "selector key with a bad character", base: stop, bad: []string{`schemaUpdate.stopWorkloads.selector=app:name=web`},
			want: []string{`selector "app:name=web" is not a Kubernetes label selector`}},
		{name: "selector with an empty set", base: stop, bad: []string{`schemaUpdate.stopWorkloads.selector=tier notin ()`},
			want: []string{`selector "tier notin ()" is not a Kubernetes label selector`}},
		{name: "stopWorkloads without the schema update", base: []string{"database.host=pg.example"},
			bad:  []string{"schemaUpdate.stopWorkloads.enabled=true", "schemaUpdate.stopWorkloads.selector=app=web"},
			want: []string{"schemaUpdate.stopWorkloads.enabled is true but config.updateSchema is false", "turn stopWorkloads on together with config.updateSchema"}},
		{name: "stop wait not below the update's timeout", base: stop,
			bad:  []string{"schemaUpdate.stopWorkloads.timeout=3m", "schemaUpdate.timeout=3m"},
			want: []string{"schemaUpdate.stopWorkloads.timeout (3m) is not below schemaUpdate.timeout (3m)", "lower stopWorkloads.timeout"}},

		// The time budget.
		{name: "timeout and database wait past the Job's deadline", base: on, bad: []string{"schemaUpdate.timeout=4m", "schemaUpdate.waitForDatabase=30s"},
			want: []string{"schemaUpdate.timeout (4m) + schemaUpdate.waitForDatabase (30s) = 270s is not below schemaUpdate.activeDeadlineSeconds (270)", "raise activeDeadlineSeconds"}},
		{name: "Job deadline past Helm's wait", base: on, bad: []string{"schemaUpdate.activeDeadlineSeconds=300"},
			want: []string{"schemaUpdate.activeDeadlineSeconds (300) is not below config.helmTimeout (5m", "set config.helmTimeout"}},
		{name: "Job deadline past a longer Helm wait", base: append([]string{"config.helmTimeout=10m", "schemaUpdate.activeDeadlineSeconds=590"}, on...),
			bad:  []string{"schemaUpdate.activeDeadlineSeconds=600"},
			want: []string{"schemaUpdate.activeDeadlineSeconds (600) is not below config.helmTimeout (10m"}},
		{name: "guard deadline past Helm's wait", bad: []string{"rollbackGuard.activeDeadlineSeconds=301"},
			want: []string{"rollbackGuard.activeDeadlineSeconds (301) is not below config.helmTimeout", "helm rollback with a longer --timeout"}},
		{name: "guard deadline within its database wait", bad: []string{"rollbackGuard.activeDeadlineSeconds=60"},
			want: []string{"rollbackGuard.activeDeadlineSeconds (60) is not above schemaUpdate.waitForDatabase (60s)", "raise rollbackGuard.activeDeadlineSeconds"}},
		{name: "lockTimeout zero", base: on, badString: []string{"schemaUpdate.lockTimeout=0"},
			want: []string{`schemaUpdate.lockTimeout "0" turns PostgreSQL's lock_timeout off`, "set a duration such as 200ms"}},
		{name: "lockTimeout the number zero", base: on, bad: []string{"schemaUpdate.lockTimeout=0"},
			want: []string{`schemaUpdate.lockTimeout "0" turns PostgreSQL's lock_timeout off`}},
		{name: "lockTimeout zero seconds", bad: []string{"schemaUpdate.lockTimeout=0s"},
			want: []string{`schemaUpdate.lockTimeout "0s" turns PostgreSQL's lock_timeout off`}},

		// database.host.
		{name: "host blank", bad: []string{"database.host=   "},
			want: []string{"database.host is blank", "set it to the PostgreSQL server's host name"}},
		{name: "host blank with the update on", base: on, bad: []string{"database.host= "},
			want: []string{"database.host is blank"}},
		{name: "host with a space", bad: []string{"database.host=pg example"},
			want: []string{`database.host "pg example" contains spaces`, "one host name"}},
		{name: "host a URL", bad: []string{"database.host=postgres://pg.example:5432/app"},
			want: []string{`database.host "postgres://pg.example:5432/app" is a URL`, "database.port, database.name"}},

		// Security contexts.
		{name: "root with runAsNonRoot", bad: []string{"securityContext.runAsUser=0"},
			want: []string{"runAsUser is 0 (root) while runAsNonRoot is true", "set runAsUser to a non-root UID"}},
		{name: "root at pod level with runAsNonRoot", bad: []string{"podSecurityContext.runAsUser=0", "securityContext.runAsUser=null"},
			want: []string{"runAsUser is 0 (root) while runAsNonRoot is true"}},
		{name: "securityContext null", bad: []string{"securityContext=null"},
			want: []string{"securityContext is null", "override single fields"}},
		{name: "podSecurityContext null", bad: []string{"podSecurityContext=null"},
			want: []string{"podSecurityContext is null"}},

		// Names and resources.
		{name: "nameOverride upper case", bad: []string{"nameOverride=MyApp"},
			want: []string{`nameOverride "MyApp" is not a DNS label`, "--set nameOverride=my-app"}},
		{name: "nameOverride with a dot", bad: []string{"nameOverride=my.app"},
			want: []string{`nameOverride "my.app" is not a DNS label`}},
		{name: "fullnameOverride with an underscore", bad: []string{"fullnameOverride=my_app"},
			want: []string{`fullnameOverride "my_app" is not a DNS label`}},
		{name: "resources typo", base: on, bad: []string{"schemaUpdate.resources.request.cpu=50m"},
			want: []string{"schemaUpdate.resources.request is not a field of a container's resources", "use requests and limits"}},
		{name: "gate resources typo", bad: []string{"gate.resources.limit.memory=64Mi"},
			want: []string{"gate.resources.limit is not a field"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachHelm(t, func(t *testing.T, sdk helm) {
				if _, err := render(t, sdk, loadSchemahook(t), vals(t, tc.base...), false); err != nil {
					t.Fatalf("base values are rejected too, so the case proves nothing: %v", err)
				}
				values := vals(t, append(append([]string{}, tc.base...), tc.bad...)...)
				for _, s := range tc.badString {
					if err := strvals.ParseIntoString(s, values); err != nil {
						t.Fatal(err)
					}
				}
				_, err := render(t, sdk, loadSchemahook(t), values, false)
				if err == nil {
					t.Fatalf("values %q %q accepted", tc.bad, tc.badString)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the error does not say %q:\n%v", w, err)
					}
				}
			})
		})
	}
}

// TestValidationAcceptsWhatIsValid: the other side of TestValidationRules, so the rules are not
// stricter than Kubernetes and Helm: every selector form Kubernetes parses, every hook event Helm
// knows, durations that fit, hosts libpq takes.
func TestValidationAcceptsWhatIsValid(t *testing.T) {
	on := []string{"config.updateSchema=true", "database.host=pg.example"}
	stop := append(append([]string{}, on...), "schemaUpdate.stopWorkloads.enabled=true")
	for _, sets := range [][]string{
		append([]string{`schemaUpdate.stopWorkloads.selector=app.kubernetes.io/name=web\,app.kubernetes.io/instance=prod`}, stop...),
		append([]string{`schemaUpdate.stopWorkloads.selector=tier!=db\,env in (prod\, staging)\,!canary\,track notin (a)\,managed`}, stop...),
		append([]string{`schemaUpdate.stopWorkloads.selector=example.com/role==writer`}, stop...),
		append([]string{`schemaUpdate.stopWorkloads.selector=  app = web  `}, stop...),
		append([]string{`schemaUpdate.hookAnnotations.helm\.sh/hook=pre-install\,pre-upgrade\,post-rollback`}, on...),
		append([]string{`schemaUpdate.hookAnnotations.helm\.sh/hook-output-log-policy=hook-failed`}, on...),
		append([]string{"schemaUpdate.timeout=3m29s", "schemaUpdate.waitForDatabase=500ms", "schemaUpdate.lockTimeout=1s"}, on...),
		append([]string{"config.helmTimeout=10m", "schemaUpdate.activeDeadlineSeconds=570", "rollbackGuard.activeDeadlineSeconds=570"}, on...),
		{"database.host=/var/run/postgresql"},
		{"database.host=10.0.0.7"},
		{"nameOverride=my-app", "fullnameOverride=prod-db-migrations"},
		{"securityContext.runAsUser=1000", "podSecurityContext.runAsUser=1000"},
		{"securityContext.runAsNonRoot=false", "podSecurityContext.runAsNonRoot=false", "securityContext.runAsUser=0", "podSecurityContext.runAsUser=0"},
		{"schemaUpdate.resources.limits.cpu=1", "gate.resources=null"},
		{"rollbackGuard.enabled=false", "rollbackGuard.activeDeadlineSeconds=10"},
	} {
		forEachHelm(t, func(t *testing.T, sdk helm) {
			if _, err := render(t, sdk, loadSchemahook(t), vals(t, sets...), false); err != nil {
				t.Errorf("%q rejected: %v", sets, err)
			}
		})
	}
}
