package e2e

import (
	"os"
	"strings"
	"testing"
)

// TestUpgradeFromPreviousChart: the upgrade users make. The previous released charts
// (SCHEMAHOOK_E2E_PREV_CHARTS, from that release's git tag) are installed with that release's own
// image (SCHEMAHOOK_E2E_PREV_IMAGE, built from the same tree), then upgraded to this tree's
// charts and image with one more migration: this tree's pre-upgrade hook migrates a database
// the previous image initialized, and the new pods' gate passes.
func TestUpgradeFromPreviousChart(t *testing.T) {
	if msg := os.Getenv("SCHEMAHOOK_E2E_PREV_ERROR"); msg != "" {
		t.Fatal(msg)
	}
	charts := os.Getenv("SCHEMAHOOK_E2E_PREV_CHARTS")
	prevRepo, prevTag := imageEnv(t, "SCHEMAHOOK_E2E_PREV_IMAGE")
	if charts == "" {
		t.Fatalf("SCHEMAHOOK_E2E_PREV_CHARTS not set; %s", harnessHint)
	}
	s := setup(t)
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))

	s.charts = charts
	if _, err := s.install(s.values("migrations-v4", "schemahook.config.updateSchema=true",
		"schemahook.image.repository="+prevRepo, "schemahook.image.tag="+prevTag), true); err != nil {
		t.Fatalf("helm install of the previous charts (%s) with their image: %v", charts, err)
	}
	if rel := s.lastRelease(); rel.Chart == nil || rel.Chart.Metadata == nil {
		t.Fatal("the installed release has no chart")
	} else {
		t.Logf("previous: %s %s, image %s:%s", rel.Chart.Metadata.Name, rel.Chart.Metadata.Version, prevRepo, prevTag)
	}
	s.assertSchema(4, tablesV4, []string{"account_settings"})
	s.assertAppReady()
	if img := gateImage(s); img != prevRepo+":"+prevTag {
		t.Errorf("the previous release's gate runs %s, want the previous image %s:%s", img, prevRepo, prevTag)
	}
	s.takeHookLogs()

	s.charts = ""
	if _, _, err := s.upgrade(s.values("migrations-v5", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm upgrade to this tree's charts and image: %v", err)
	}
	if logs := s.takeHookLogs(); !strings.Contains(logs, "upgrading schema") || !strings.Contains(logs, "applied migration") {
		t.Errorf("this tree's pre-upgrade hook did not apply the new migration:\n%s", logs)
	}
	s.assertSchema(5, tablesV5, nil)
	for _, p := range s.assertAppReady() {
		if log := s.podLog(p.Name, gateContainer); !strings.Contains(log, "schema is current") {
			t.Errorf("the gate of %s did not pass:\n%s", p.Name, log)
		}
	}
	if img := gateImage(s); img != s.env.image {
		t.Errorf("after the upgrade the gate runs %s, want this tree's image %s", img, s.env.image)
	}
	s.assertNoHookObjects("after the upgrade from the previous chart")
}

// gateImage is the image of the Deployment's gate init container.
func gateImage(s *suite) string {
	for _, c := range s.deployment().Spec.Template.Spec.InitContainers {
		if c.Name == gateContainer {
			return c.Image
		}
	}
	s.t.Fatalf("the Deployment has no %s init container", gateContainer)
	return ""
}
