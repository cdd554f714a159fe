package chart_test

import (
	"strings"
	"testing"
)

// TestNotesSayWhetherTheSchemaWasUpdated: after `helm install` or `helm upgrade`, the notes tell the
// reader whether this release updated the schema, and how to do it (or stop doing it) from here;
// and what a `helm rollback` to this revision will do to the schema.
// The notes are prose, so the assertions look for the sentences a reader relies on.
func TestNotesSayWhetherTheSchemaWasUpdated(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			p := c.prefix
			for _, tc := range []struct {
				name    string
				sets    []string
				upgrade bool
				want    []string
				notWant string
			}{
				{
					name: "off",
					sets: []string{p + "database.host=pg.example"},
					want: []string{"SCHEMA NOT UPDATED", "--reset-then-reuse-values --set " + p + "config.updateSchema=true", "helm test " + releaseName,
						"Do not add --wait, --atomic or --rollback-on-failure", "context deadline exceeded",
						"ROLLBACK GUARD", "pre-rollback hook Job " + rollbackGuardName, "stops the rollback", "(" + p + "config.allowDowngrade is false)"},
					notWant: "SCHEMA UPDATED",
				},
				{
					name:    "guard off",
					sets:    []string{p + "database.host=pg.example", p + "rollbackGuard.enabled=false"},
					want:    []string{"SCHEMA NOT UPDATED"},
					notWant: "ROLLBACK GUARD",
				},
				{
					name:    "allowDowngrade",
					sets:    []string{p + "database.host=pg.example", p + "config.allowDowngrade=true"},
					want:    []string{"ROLLBACK GUARD", p + "config.allowDowngrade is true", "reverts the newer", "migrations"},
					notWant: "stops the rollback",
				},
				{
					name: "on/install",
					sets: []string{p + "config.updateSchema=true", p + "database.host=pg.example", p + "database.name=app"},
					want: []string{"SCHEMA UPDATED", "pre-install hook Job " + releaseName + "-schemahook-schema-update",
						`database "app" on pg.example:5432`, "--set " + p + "config.updateSchema=false"},
					notWant: "NOT UPDATED",
				},
				{
					name:    "on/upgrade",
					sets:    []string{p + "config.updateSchema=true", p + "database.host=pg.example"},
					upgrade: true,
					want:    []string{"SCHEMA UPDATED", "pre-upgrade hook Job"},
					notWant: "NOT UPDATED",
				},
			} {
				t.Run(c.name+"/"+tc.name, func(t *testing.T) {
					rel, err := render(t, sdk, c.load(t), vals(t, tc.sets...), tc.upgrade)
					if err != nil {
						t.Fatal(err)
					}
					notes := rel.Notes
					for _, w := range tc.want {
						if !strings.Contains(notes, w) {
							t.Errorf("notes do not say %q:\n%s", w, notes)
						}
					}
					if strings.Contains(notes, tc.notWant) {
						t.Errorf("notes say %q:\n%s", tc.notWant, notes)
					}
					// --reuse-values keeps the previous chart version's defaults: never recommend it.
					for _, line := range strings.Split(notes, "\n") {
						if strings.Contains(line, "helm upgrade") && strings.Contains(line, " --reuse-values") {
							t.Errorf("notes recommend --reuse-values: %s", line)
						}
					}
				})
			}
		}
	})
}
