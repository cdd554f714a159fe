package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/schemahook/schemahook/hook/dbconn"
	"github.com/schemahook/schemahook/hook/runner"
	"github.com/schemahook/schemahook/hook/source"
)

// TestGateLatency measures how soon a gated pod starts once its schema is committed: ten
// times, a pod of the app's template waits in its gate for one more migration than the
// database has, and the migration is applied (by schemahook's engine, from the test process).
// Latency runs from the migration's history row (applied_at, the server's clock) to the gate's
// "schema is current" line, and to the init container's exit as the kubelet records it (whole
// seconds). The gate LISTENs for the version update announces, so it should open well within a
// second; polling alone would take up to its 5 s backoff.
func TestGateLatency(t *testing.T) {
	s := setup(t)
	const rounds = 10
	set := func(n int) map[string]string {
		out := map[string]string{}
		for v := 1; v <= n; v++ {
			out[fmt.Sprintf("%06d_lat%d.up.sql", v, v)] = fmt.Sprintf("CREATE TABLE lat%d (id int);\n", v)
			out[fmt.Sprintf("%06d_lat%d.down.sql", v, v)] = fmt.Sprintf("DROP TABLE lat%d;\n", v)
		}
		return out
	}
	for n := 1; n <= rounds+1; n++ {
		s.migrationsConfigMap(fmt.Sprintf("lat-v%d", n), set(n))
	}
	if _, err := s.install(s.values("lat-v1", "schemahook.config.updateSchema=true"), true); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	s.assertAppReady()
	ctx := ctxT(t, 10*time.Minute)
	dep, err := s.kube.AppsV1().Deployments(s.ns).Get(ctx, deploymentName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dbconn.Config(s.env.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = s.dbName

	var toLine, toExit []time.Duration
	for n := 2; n <= rounds+1; n++ {
		// A pod of the app's template whose gate waits for version n; its own labels keep the
		// Deployment's ReplicaSet from adopting it.
		spec := dep.Spec.Template.Spec.DeepCopy()
		replaced := 0
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil && v.ConfigMap.Name == "lat-v1" {
				v.ConfigMap.Name, replaced = fmt.Sprintf("lat-v%d", n), replaced+1
			}
		}
		if replaced != 1 {
			t.Fatalf("the app's pod template mounts the migrations ConfigMap %d times, want once", replaced)
		}
		name := fmt.Sprintf("gate-latency-%d", n)
		if _, err := s.kube.CoreV1().Pods(s.ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"test": "gate-latency"}},
			Spec:       *spec,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		s.waitFor(name+" waiting in its gate", 90*time.Second, func(ctx context.Context) (bool, string, error) {
			p, err := s.kube.CoreV1().Pods(s.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			if gateState(p).Running == nil {
				return false, podState(*p), nil
			}
			return strings.Contains(s.podLog(name, gateContainer), "waiting for the schema"), "gate running", nil
		})
		// As long as a pod usually waits for its hook: a gate that only polled would be at its
		// longest backoff.
		time.Sleep(3 * time.Second)

		dir := t.TempDir()
		for f, sql := range set(n) {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(sql), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cat, err := source.Open(source.Dir(dir), ".")
		if err != nil {
			t.Fatal(err)
		}
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		if res, err := runner.New(cfg, cat, runner.WithLogger(quiet)).Update(ctx); err != nil || res.To != n {
			t.Fatalf("update to %d: %+v, %v", n, res, err)
		}
		var appliedAt time.Time
		if err := s.db.QueryRow(ctx, "SELECT applied_at FROM schemahook_history WHERE version = $1", n).Scan(&appliedAt); err != nil {
			t.Fatal(err)
		}
		var exited time.Time
		s.waitFor(name+"'s gate to exit", 60*time.Second, func(ctx context.Context) (bool, string, error) {
			p, err := s.kube.CoreV1().Pods(s.ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			if term := gateState(p).Terminated; term != nil {
				if term.ExitCode != 0 {
					return false, "", fmt.Errorf("the gate exited %d: %s", term.ExitCode, s.podLog(name, gateContainer))
				}
				exited = term.FinishedAt.Time
				return true, "", nil
			}
			return false, podState(*p), nil
		})
		line := currentAt(t, s.podLog(name, gateContainer))
		toLine, toExit = append(toLine, line.Sub(appliedAt)), append(toExit, exited.Sub(appliedAt))
		t.Logf("round %d: commit %s → gate's line %v, init container exit %v (whole seconds)",
			n-1, appliedAt.UTC().Format("15:04:05.000"), line.Sub(appliedAt).Round(time.Millisecond), exited.Sub(appliedAt).Round(time.Millisecond))
		zero := int64(0)
		_ = s.kube.CoreV1().Pods(s.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}
	lineMedian, exitMedian := median(toLine), median(toExit)
	t.Logf("gate latency, median of %d: commit (history applied_at) → the gate's \"schema is current\" line %v; → init container exit %v (the kubelet records whole seconds)",
		rounds, lineMedian.Round(time.Millisecond), exitMedian.Round(time.Millisecond))
	if lineMedian > time.Second {
		t.Errorf("the gate opened a median %v after the commit; want within 1 s", lineMedian)
	}
}

// gateState is the state of p's gate init container.
func gateState(p *corev1.Pod) corev1.ContainerState {
	for _, st := range p.Status.InitContainerStatuses {
		if st.Name == gateContainer {
			return st.State
		}
	}
	return corev1.ContainerState{}
}

// currentAt is the time of the gate's "schema is current" line (JSON logs).
func currentAt(t *testing.T, log string) time.Time {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "schema is current" {
			return rec.Time
		}
	}
	t.Fatalf("no \"schema is current\" line in the gate's log:\n%s", log)
	return time.Time{}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
