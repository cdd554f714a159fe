// Package kube is the little of the Kubernetes API that schemahook needs to stop the database's
// writers before a migration: list the Deployments and StatefulSets of the namespace that match a
// label selector, scale them to zero through their scale subresource, wait until their pods are
// gone, and scale them back when the migration fails.
//
// It talks to the API server with the pod's service account over plain net/http and
// encoding/json with a few small structs. Why not client-go: its rest client and typed apps/v1
// client add several megabytes to a binary whose image should stay under 20 MB, for five
// requests (see the README of the chart for the measured numbers).
package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ServiceAccountDir is where the kubelet mounts the pod's service account token, CA bundle and
// namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Sentinel errors, tested with errors.Is.
var (
	// ErrNotInCluster: no service account credentials (not in a pod, or the token is not mounted).
	ErrNotInCluster = errors.New("not running in a pod with a service account token")
	// ErrForbidden: the API server refused a request for lack of RBAC permissions.
	ErrForbidden = errors.New("forbidden")
	// ErrStopTimeout: pods of a stopped workload were still there when the time was up.
	ErrStopTimeout = errors.New("workloads did not stop in time")
)

// Client talks to one namespace of the API server.
type Client struct {
	base      string // https://host:port
	namespace string
	token     func() (string, error)
	http      *http.Client
	poll      time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithPollInterval sets how often Stop lists pods while waiting for them to go (default 1s).
func WithPollInterval(d time.Duration) Option { return func(c *Client) { c.poll = d } }

// New returns a client for the API server at baseURL (https://host:port), acting in namespace
// with a bearer token read by token before each request (service account tokens are rotated).
// httpClient carries the TLS settings; nil means http.DefaultClient.
func New(baseURL, namespace string, token func() (string, error), httpClient *http.Client, opts ...Option) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), namespace: namespace, token: token, http: httpClient, poll: time.Second}
	for _, o := range opts {
		o(c)
	}
	return c
}

// InCluster returns a client for the pod's own namespace, authenticated as the pod's service
// account: KUBERNETES_SERVICE_HOST/PORT and the files in ServiceAccountDir. It returns an error
// wrapping ErrNotInCluster when any of them is missing.
func InCluster(opts ...Option) (*Client, error) {
	return inCluster(ServiceAccountDir, os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"), opts...)
}

func inCluster(dir, host, port string, opts ...Option) (*Client, error) {
	hint := "stopping workloads needs the Kubernetes API: run in a pod whose ServiceAccount token is mounted " +
		"(automountServiceAccountToken: true; the chart does so with schemaUpdate.stopWorkloads.enabled)"
	if host == "" || port == "" {
		return nil, fmt.Errorf("%w: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set — %s", ErrNotInCluster, hint)
	}
	ns, err := os.ReadFile(filepath.Join(dir, "namespace"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v — %s", ErrNotInCluster, err, hint)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v — %s", ErrNotInCluster, err, hint)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", filepath.Join(dir, "ca.crt"))
	}
	tokenFile := filepath.Join(dir, "token")
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("%w: %v — %s", ErrNotInCluster, err, hint)
	}
	token := func() (string, error) {
		b, err := os.ReadFile(tokenFile)
		return strings.TrimSpace(string(b)), err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.Proxy = nil // the API server is reached directly, as client-go does for in-cluster config
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return New("https://"+net.JoinHostPort(host, port), strings.TrimSpace(string(ns)), token, hc, opts...), nil
}

// Namespace is the namespace the client acts in.
func (c *Client) Namespace() string { return c.namespace }

// Workload is a Deployment or StatefulSet.
type Workload struct {
	Kind     string // Deployment or StatefulSet
	Name     string
	Replicas int32  // spec.replicas (1 when unset, as the API server defaults it)
	Selector string // its pod selector, as a label selector string
}

func (w Workload) String() string { return w.Kind + "/" + w.Name }

func (w Workload) resource() string {
	if w.Kind == "StatefulSet" {
		return "statefulsets"
	}
	return "deployments"
}

// List returns the Deployments and StatefulSets of the namespace that match selector (a label
// selector such as "app.kubernetes.io/name=app"), Deployments first, each sorted by name. No
// match → empty result and nil error.
func (c *Client) List(ctx context.Context, selector string) ([]Workload, error) {
	var out []Workload
	for _, k := range []struct{ kind, resource string }{{"Deployment", "deployments"}, {"StatefulSet", "statefulsets"}} {
		var list struct {
			Items []struct {
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Spec struct {
					Replicas *int32        `json:"replicas"`
					Selector labelSelector `json:"selector"`
				} `json:"spec"`
			} `json:"items"`
		}
		q := url.Values{"labelSelector": {selector}}
		if err := c.do(ctx, http.MethodGet, "/apis/apps/v1/namespaces/"+c.namespace+"/"+k.resource+"?"+q.Encode(), nil, &list); err != nil {
			return nil, err
		}
		for _, it := range list.Items {
			w := Workload{Kind: k.kind, Name: it.Metadata.Name, Replicas: 1, Selector: it.Spec.Selector.String()}
			if it.Spec.Replicas != nil {
				w.Replicas = *it.Spec.Replicas
			}
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind == "Deployment"
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Scale sets the workload's replicas through its scale subresource (a merge patch of
// spec.replicas), which needs only the patch verb on deployments/scale or statefulsets/scale.
func (c *Client) Scale(ctx context.Context, w Workload, replicas int32) error {
	body := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	return c.do(ctx, http.MethodPatch, "/apis/apps/v1/namespaces/"+c.namespace+"/"+w.resource()+"/"+w.Name+"/scale", []byte(body), nil)
}

// Pods returns the names of the pods matching the workload's pod selector that still exist,
// except the pod named except (the caller's own pod, which a broad selector could match) and
// finished pods nobody deletes (evicted pods stay Failed until garbage-collected). A pod being
// deleted counts until it is gone, whatever its phase: the kubelet marks it Succeeded or Failed
// once its containers stopped, before it has finished tearing it down. A workload without a
// selector has no pods.
func (c *Client) Pods(ctx context.Context, w Workload, except string) ([]string, error) {
	if w.Selector == "" {
		return nil, nil
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		} `json:"items"`
	}
	q := url.Values{"labelSelector": {w.Selector}}
	if err := c.do(ctx, http.MethodGet, "/api/v1/namespaces/"+c.namespace+"/pods?"+q.Encode(), nil, &list); err != nil {
		return nil, err
	}
	var names []string
	for _, p := range list.Items {
		finished := p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed"
		if p.Metadata.Name == except || (finished && p.Metadata.DeletionTimestamp == nil) {
			continue
		}
		names = append(names, p.Metadata.Name)
	}
	return names, nil
}

// do sends one request and decodes a 2xx JSON answer into out (if not nil). Any other status
// becomes an error that names the request and, for 401/403, says what to fix.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	tok, err := c.token()
	if err != nil {
		return fmt.Errorf("reading the service account token: %w", err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "schemahook")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("kubernetes API %s %s: %w", method, redactQuery(path), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("kubernetes API %s %s: reading the answer: %w", method, redactQuery(path), err)
	}
	if resp.StatusCode/100 != 2 {
		return c.statusError(method, path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("kubernetes API %s %s: decoding the answer: %w", method, redactQuery(path), err)
	}
	return nil
}

func (c *Client) statusError(method, path string, code int, data []byte) error {
	var st struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	where := fmt.Sprintf("kubernetes API %s %s: HTTP %d", method, redactQuery(path), code)
	switch code {
	case http.StatusForbidden:
		return fmt.Errorf("%s: %w: %s — the schema-update ServiceAccount needs a Role in namespace %s allowing "+
			"get,list on deployments and statefulsets, get,patch,update on deployments/scale and statefulsets/scale, "+
			"and list on pods (the chart renders it with schemaUpdate.stopWorkloads.enabled=true)", where, ErrForbidden, msg, c.namespace)
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: %s — the service account token was rejected: check that the pod's ServiceAccount exists and its token is mounted", where, msg)
	}
	return fmt.Errorf("%s: %s", where, msg)
}

// redactQuery drops the query string from a path for messages (it only holds the selector,
// which the caller reports anyway, escaped beyond readability).
func redactQuery(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// labelSelector is metav1.LabelSelector.
type labelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"matchExpressions"`
}

// String renders the selector in the query syntax of labelSelector=, requirements sorted.
func (s labelSelector) String() string {
	var reqs []string
	for k, v := range s.MatchLabels {
		reqs = append(reqs, k+"="+v)
	}
	for _, e := range s.MatchExpressions {
		vals := append([]string(nil), e.Values...)
		sort.Strings(vals)
		switch e.Operator {
		case "In":
			reqs = append(reqs, e.Key+" in ("+strings.Join(vals, ",")+")")
		case "NotIn":
			reqs = append(reqs, e.Key+" notin ("+strings.Join(vals, ",")+")")
		case "Exists":
			reqs = append(reqs, e.Key)
		case "DoesNotExist":
			reqs = append(reqs, "!"+e.Key)
		}
	}
	sort.Strings(reqs)
	return strings.Join(reqs, ",")
}
