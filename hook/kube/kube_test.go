package kube

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a fake of the few API server endpoints the package uses, for one namespace.
type fakeAPI struct {
	mu          sync.Mutex
	ns          string
	workloads   map[string]*fakeWorkload // "deployments/web"
	pods        map[string]string        // pod name → "app" label value
	forbid      string                   // a path substring answered with 403
	failScale   map[string]bool          // workload key → PATCH answers 500
	linger      int                      // pod lists answered before the pods of a zeroed workload go
	patches     []string                 // "deployments/web=0"
	token       string
	terminating bool // list a deleted, Succeeded pod of app=web
}

type fakeWorkload struct {
	app      string // its selector: app=<app>
	replicas *int32
	lists    int // pod lists since it reached 0
}

func int32p(v int32) *int32 { return &v }

func newFake(t *testing.T) (*fakeAPI, *Client) {
	f := &fakeAPI{ns: "shop", workloads: map[string]*fakeWorkload{}, pods: map[string]string{}, failScale: map[string]bool{}, token: "tok"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(srv.URL, "shop", func() (string, error) { return "tok", nil }, srv.Client(), WithPollInterval(5*time.Millisecond))
	return f, c
}

func (f *fakeAPI) addWorkload(resource, name, app string, replicas *int32) {
	f.workloads[resource+"/"+name] = &fakeWorkload{app: app, replicas: replicas}
	n := int32(1)
	if replicas != nil {
		n = *replicas
	}
	for i := range n {
		f.pods[fmt.Sprintf("%s-%d", name, i)] = app
	}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, `{"kind":"Status","message":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if f.forbid != "" && strings.Contains(r.URL.Path, f.forbid) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"kind":"Status","message":"%s is forbidden: User \"system:serviceaccount:shop:x\" cannot do it"}`, r.URL.Path)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	sel := r.URL.Query().Get("labelSelector")
	switch {
	case r.Method == http.MethodGet && len(parts) == 6 && parts[0] == "apis" && parts[4] == f.ns:
		// /apis/apps/v1/namespaces/shop/deployments?labelSelector=tier=web
		var items []any
		for key, wl := range f.workloads {
			res, name, _ := strings.Cut(key, "/")
			if res != parts[5] || sel != "tier=web" || wl.app == "other" {
				continue
			}
			items = append(items, map[string]any{
				"metadata": map[string]any{"name": name},
				"spec": map[string]any{"replicas": wl.replicas, "selector": map[string]any{
					"matchLabels":      map[string]string{"app": wl.app},
					"matchExpressions": []map[string]any{{"key": "track", "operator": "NotIn", "values": []string{"canary"}}},
				}},
			})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
	case r.Method == http.MethodPatch && len(parts) == 8 && parts[7] == "scale":
		key := parts[5] + "/" + parts[6]
		wl := f.workloads[key]
		if wl == nil {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		if f.failScale[key] {
			http.Error(w, `{"message":"etcd is on fire"}`, http.StatusInternalServerError)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/merge-patch+json" {
			http.Error(w, "bad content type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		var p struct {
			Spec struct {
				Replicas int32 `json:"replicas"`
			} `json:"spec"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wl.replicas, wl.lists = int32p(p.Spec.Replicas), 0
		f.patches = append(f.patches, fmt.Sprintf("%s=%d", key, p.Spec.Replicas))
		_, _ = w.Write([]byte(`{}`))
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/"+f.ns+"/pods":
		// the selector is the workload's own: "app=<app>,track notin (canary)"
		app := strings.TrimPrefix(strings.Split(sel, ",")[0], "app=")
		if !strings.HasSuffix(sel, ",track notin (canary)") {
			http.Error(w, `{"message":"unexpected selector `+sel+`"}`, http.StatusBadRequest)
			return
		}
		for _, wl := range f.workloads {
			if wl.app == app && wl.replicas != nil && *wl.replicas == 0 {
				if wl.lists >= f.linger {
					for p, a := range f.pods {
						if a == app {
							delete(f.pods, p)
						}
					}
				}
				wl.lists++
			}
		}
		var items []any
		for p, a := range f.pods {
			if a == app {
				items = append(items, map[string]any{"metadata": map[string]any{"name": p}, "status": map[string]any{"phase": "Running"}})
			}
		}
		// An evicted pod that nobody deletes: not waited for.
		items = append(items, map[string]any{"metadata": map[string]any{"name": "evicted-1"}, "status": map[string]any{"phase": "Failed"}})
		if app == "web" && f.terminating {
			// Containers stopped, the kubelet still tearing it down: waited for.
			items = append(items, map[string]any{"metadata": map[string]any{"name": "web-old", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": map[string]any{"phase": "Succeeded"}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
	default:
		http.Error(w, `{"message":"unexpected request"}`, http.StatusNotFound)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestListRendersSelectorsAndDefaults(t *testing.T) {
	f, c := newFake(t)
	f.addWorkload("statefulsets", "db-writer", "writer", int32p(2))
	f.addWorkload("deployments", "web", "web", nil)
	f.addWorkload("deployments", "api", "api", int32p(3))
	f.addWorkload("deployments", "unrelated", "other", int32p(1))
	ws, err := c.List(context.Background(), "tier=web")
	if err != nil {
		t.Fatal(err)
	}
	want := []Workload{
		{"Deployment", "api", 3, "app=api,track notin (canary)"},
		{"Deployment", "web", 1, "app=web,track notin (canary)"},
		{"StatefulSet", "db-writer", 2, "app=writer,track notin (canary)"},
	}
	if fmt.Sprint(ws) != fmt.Sprint(want) {
		t.Fatalf("List = %+v\nwant %+v", ws, want)
	}
}

func TestStopScalesToZeroAndWaitsForPods(t *testing.T) {
	f, c := newFake(t)
	f.addWorkload("deployments", "web", "web", int32p(2))
	f.addWorkload("statefulsets", "worker", "worker", int32p(1))
	f.addWorkload("deployments", "idle", "idle", int32p(0))
	f.linger = 3
	s, err := c.Stop(context.Background(), "tier=web", 5*time.Second, "", quiet())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.pods) != 0 {
		t.Fatalf("pods left after Stop: %v", f.pods)
	}
	if got := strings.Join(f.patches, " "); got != "deployments/web=0 statefulsets/worker=0" {
		t.Fatalf("patches = %s (a workload at 0 must not be patched)", got)
	}
	if err := s.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.patches[2:], " "); got != "deployments/web=2 statefulsets/worker=1" {
		t.Fatalf("restore patches = %s", got)
	}
}

func TestStopNoMatchIsNoop(t *testing.T) {
	f, c := newFake(t)
	f.addWorkload("deployments", "x", "other", int32p(1))
	s, err := c.Stop(context.Background(), "tier=web", time.Second, "", quiet())
	if err != nil || len(s.Workloads) != 0 || len(f.patches) != 0 {
		t.Fatalf("Stop = %+v, %v; patches %v", s, err, f.patches)
	}
	if err := s.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStopTimeoutRestores(t *testing.T) {
	f, c := newFake(t)
	f.addWorkload("deployments", "web", "web", int32p(3))
	f.linger = 1 << 30 // the pods never go
	start := time.Now()
	_, err := c.Stop(context.Background(), "tier=web", 100*time.Millisecond, "", quiet())
	if !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("err = %v, want ErrStopTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Stop took %s with a 100ms timeout", d)
	}
	for _, want := range []string{"3 pod(s) of Deployment/web", "--stop-timeout", "scaled back"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := strings.Join(f.patches, " "); got != "deployments/web=0 deployments/web=3" {
		t.Fatalf("patches = %s, want scaled down then restored", got)
	}
}

func TestStopScaleFailureRestoresEarlierOnes(t *testing.T) {
	f, c := newFake(t)
	f.addWorkload("deployments", "a", "a", int32p(2))
	f.addWorkload("deployments", "b", "b", int32p(1))
	f.failScale["deployments/b"] = true
	_, err := c.Stop(context.Background(), "tier=web", time.Second, "", quiet())
	if err == nil || !strings.Contains(err.Error(), "scaling Deployment/b to 0") || !strings.Contains(err.Error(), "etcd is on fire") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(f.patches, " "); got != "deployments/a=0 deployments/a=2" {
		t.Fatalf("patches = %s", got)
	}
}

func TestForbiddenSaysWhichRBAC(t *testing.T) {
	f, c := newFake(t)
	f.addWorkload("deployments", "web", "web", int32p(1))
	f.forbid = "/scale"
	_, err := c.Stop(context.Background(), "tier=web", time.Second, "", quiet())
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	for _, want := range []string{"deployments/scale", "namespace shop", "schemaUpdate.stopWorkloads.enabled", "cannot do it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	f.forbid = "/pods"
	f.patches = nil
	_, err = c.Stop(context.Background(), "tier=web", time.Second, "", quiet())
	if !errors.Is(err, ErrForbidden) || strings.Join(f.patches, " ") != "deployments/web=0 deployments/web=1" {
		t.Fatalf("err = %v, patches %v: a forbidden pod list must restore the replicas", err, f.patches)
	}
}

func TestUnauthorized(t *testing.T) {
	f, c := newFake(t)
	f.token = "other"
	_, err := c.List(context.Background(), "tier=web")
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "token was rejected") {
		t.Fatalf("err = %v", err)
	}
}

func TestPodsSkipsSelfAndFinished(t *testing.T) {
	f, c := newFake(t)
	f.addWorkload("deployments", "web", "web", int32p(2))
	got, err := c.Pods(context.Background(), Workload{Kind: "Deployment", Name: "web", Selector: "app=web,track notin (canary)"}, "web-0")
	if err != nil || fmt.Sprint(got) != "[web-1]" {
		t.Fatalf("Pods = %v, %v", got, err)
	}
	f.terminating = true
	got, err = c.Pods(context.Background(), Workload{Kind: "Deployment", Name: "web", Selector: "app=web,track notin (canary)"}, "web-0")
	if err != nil || fmt.Sprint(got) != "[web-1 web-old]" {
		t.Fatalf("with a terminating pod: Pods = %v, %v", got, err)
	}
	if got, err := c.Pods(context.Background(), Workload{Kind: "Deployment", Name: "x"}, ""); err != nil || got != nil {
		t.Fatalf("no selector: Pods = %v, %v", got, err)
	}
}

func TestInCluster(t *testing.T) {
	dir := t.TempDir()
	if _, err := inCluster(dir, "", ""); !errors.Is(err, ErrNotInCluster) || !strings.Contains(err.Error(), "automountServiceAccountToken") {
		t.Fatalf("no env: err = %v", err)
	}
	if _, err := inCluster(dir, "10.0.0.1", "443"); !errors.Is(err, ErrNotInCluster) {
		t.Fatalf("no files: err = %v", err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"items":[]}`))
	}))
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	for name, body := range map[string]string{"namespace": "shop\n", "ca.crt": caPEM, "token": "secret-token\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "https://"), ":")
	c, err := inCluster(dir, host, port)
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace() != "shop" {
		t.Fatalf("namespace %q", c.Namespace())
	}
	if ws, err := c.List(context.Background(), "a=b"); err != nil || len(ws) != 0 {
		t.Fatalf("List over TLS with the mounted CA and token: %v, %v", ws, err)
	}
}
