package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestGateHoldsPodsUntilSchemaUpdated: a release whose migrations are ahead of the database,
// deployed with config.updateSchema=false, starts no new code. Its pods wait in the gate init
// container (`schemahook check --wait`), whose log says why, while the old pods keep serving:
// the Deployment's rolling update (maxUnavailable 0 with one replica) keeps them until a new one
// is Ready. Turning updateSchema on for the next upgrade applies the migration and the waiting
// pods start.
func TestGateHoldsPodsUntilSchemaUpdated(t *testing.T) {
	helmMajors(t, testGateHoldsPodsUntilSchemaUpdated)
}

func testGateHoldsPodsUntilSchemaUpdated(t *testing.T, s *suite) {
	s.migrationsConfigMap("migrations-v4", exampleMigrations(t, 4))
	s.migrationsConfigMap("migrations-v5", exampleMigrations(t, 5))

	if _, err := s.install(s.values("migrations-v4", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertSchema(4, tablesV4, nil)
	old := s.assertAppReady()

	// Without --wait: with --wait Helm would block on the pods the gate holds back.
	if _, _, err := s.upgrade(s.values("migrations-v5", "schemahook.config.updateSchema=false"), false); err != nil {
		t.Fatalf("helm upgrade with updateSchema=false: %v", err)
	}
	const why = "schema at 4, this release needs 5"
	var waiting corev1.Pod
	s.waitFor("a new app pod waiting in its gate", 90*time.Second, func(ctx context.Context) (bool, string, error) {
		for _, p := range s.appPods(ctx) {
			if slices.Contains(podUIDs(old), string(p.UID)) {
				continue
			}
			for _, st := range p.Status.InitContainerStatuses {
				if st.Name == gateContainer && st.State.Running != nil {
					waiting = p
					if log := s.podLog(p.Name, gateContainer); strings.Contains(log, why) {
						return true, "", nil
					}
					return false, "gate running, its log does not say why yet", nil
				}
			}
			return false, "new pod " + p.Name + ": " + podState(p), nil
		}
		return false, "no new pod yet", nil
	})
	// Give a wrongly opened gate the time to show: the gate polls; the pod must stay held.
	time.Sleep(3 * time.Second)
	s.assertSchema(4, tablesV4, []string{"account_settings"})
	s.assertNoHookObjects("after the upgrade with updateSchema=false")
	pods := s.appPods(ctxT(t, 30*time.Second))
	var sawOld, sawWaiting bool
	for _, p := range pods {
		switch {
		case slices.Contains(podUIDs(old), string(p.UID)):
			sawOld = true
			if !podReady(p) {
				t.Errorf("the old app pod %s stopped serving: %s", p.Name, podState(p))
			}
		case p.UID == waiting.UID:
			sawWaiting = true
			if podReady(p) || p.Status.Phase != corev1.PodPending {
				t.Errorf("the new app pod %s got past its gate: %s", p.Name, podState(p))
			}
			for _, st := range p.Status.InitContainerStatuses {
				if st.Name == gateContainer && (st.State.Running == nil || st.RestartCount != 0) {
					t.Errorf("the gate of %s is not still waiting: %s", p.Name, podState(p))
				}
			}
			for _, st := range p.Status.ContainerStatuses {
				if st.State.Running != nil || st.State.Terminated != nil {
					t.Errorf("the app container of %s started behind a closed gate: %s", p.Name, podState(p))
				}
			}
		default:
			t.Errorf("unexpected app pod %s: %s", p.Name, podState(p))
		}
	}
	if !sawOld || !sawWaiting {
		t.Fatalf("want the old pod serving and the new one waiting; app pods: %s", describePods(pods))
	}
	t.Logf("gate log of %s:\n%s", waiting.Name, s.podLog(waiting.Name, gateContainer))

	// The schema update on: the hook applies migration 5 and the waiting pod's gate opens. The
	// pod template does not depend on updateSchema, so it is the same pod that starts.
	if _, _, err := s.upgrade(s.values("migrations-v5", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm upgrade with updateSchema=true: %v", err)
	}
	s.assertSchema(5, tablesV5, nil)
	now := s.assertAppReady()
	if !slices.Equal(podUIDs(now), []string{string(waiting.UID)}) {
		t.Errorf("app pods %s; want the pod that was waiting, %s, now Ready", describePods(now), waiting.Name)
	}
	if log := s.podLog(waiting.Name, gateContainer); !strings.Contains(log, "schema is current") {
		t.Errorf("the gate's log does not say the schema became current:\n%s", log)
	}
	s.assertNoHookObjects("after the upgrade with updateSchema=true")
}

func describePods(pods []corev1.Pod) string {
	var parts []string
	for _, p := range pods {
		parts = append(parts, fmt.Sprintf("%s (%s)", p.Name, podState(p)))
	}
	return strings.Join(parts, "; ")
}
