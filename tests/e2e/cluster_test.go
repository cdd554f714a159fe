package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Helpers of the suite that read and check the cluster's objects, pods and events.

// Cluster assertions -----------------------------------------------------------------------------

// waitFor polls cond every 500 ms until it is true, failing the test after timeout with what cond
// last said.
func (s *suite) waitFor(what string, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) {
	s.t.Helper()
	ctx := ctxT(s.t, timeout)
	start := time.Now()
	var last string
	for {
		ok, state, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			s.t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			s.t.Logf("%s after %s", what, time.Since(start).Round(100*time.Millisecond))
			return
		}
		last = state
		select {
		case <-ctx.Done():
			s.t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// appPods lists the application's pods that are not being deleted, oldest first.
func (s *suite) appPods(ctx context.Context) []corev1.Pod {
	s.t.Helper()
	list, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=app",
	})
	if err != nil {
		s.t.Fatalf("listing app pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out
}

func podReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podUIDs(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, string(p.UID))
	}
	slices.Sort(out)
	return out
}

// assertAppReady waits (briefly: Helm has usually waited already) until the Deployment is fully
// rolled out and its only pods are Running and Ready, and returns them. Old pods of an upgrade
// may still be terminating for a moment after Helm's wait.
func (s *suite) assertAppReady() []corev1.Pod {
	s.t.Helper()
	var pods []corev1.Pod
	s.waitFor("the Deployment rolled out, all its pods Ready", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		d, err := s.kube.AppsV1().Deployments(s.ns).Get(ctx, deploymentName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		if st.ObservedGeneration != d.Generation || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.Replicas != want {
			return false, fmt.Sprintf("Deployment generation %d, status %+v", d.Generation, st), nil
		}
		pods = s.appPods(ctx)
		if len(pods) != int(want) {
			return false, fmt.Sprintf("%d app pods: %s", len(pods), describePods(pods)), nil
		}
		for _, p := range pods {
			if !podReady(p) {
				return false, "not Ready: " + describePods(pods), nil
			}
		}
		return true, "", nil
	})
	return pods
}

func podState(p corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, ", %s=%s", c.Type, c.Status)
	}
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, "; %s: ready=%v restarts=%d %s", cs.Name, cs.Ready, cs.RestartCount, containerState(cs.State))
	}
	return b.String()
}

func containerState(st corev1.ContainerState) string {
	switch {
	case st.Running != nil:
		return "running"
	case st.Waiting != nil:
		return "waiting (" + st.Waiting.Reason + ")"
	case st.Terminated != nil:
		return fmt.Sprintf("terminated (%s, exit %d)", st.Terminated.Reason, st.Terminated.ExitCode)
	}
	return "unknown"
}

// The markers of objects the charts create as hooks: constant names containing these, and the
// component label of the schema-update objects, the rollback guard and the test pod.
var hookNameParts = []string{"schema-update", "rollback-guard"}

func isHookObject(m metav1.ObjectMeta) bool {
	for _, part := range hookNameParts {
		if strings.Contains(m.Name, part) {
			return true
		}
	}
	switch m.Labels["app.kubernetes.io/component"] {
	case "schema-update", "rollback-guard", "schema-check":
		return true
	}
	if _, ok := m.Labels["batch.kubernetes.io/job-name"]; ok {
		return true // a pod of a Job: the charts' only Jobs are hooks
	}
	_, ok := m.Annotations["helm.sh/hook"]
	return ok
}

// hookObjects lists every object of every kind the charts can create as a hook (Jobs, their
// Pods, ConfigMaps, Secrets, ServiceAccounts, Roles, RoleBindings) that looks like one, as
// "Kind/name", sorted. Objects being deleted count: they are not gone yet.
func (s *suite) hookObjects(ctx context.Context) []string {
	s.t.Helper()
	var out []string
	add := func(kind string, metas []metav1.ObjectMeta, err error) {
		if err != nil {
			s.t.Fatalf("listing %ss: %v", kind, err)
		}
		for _, m := range metas {
			if isHookObject(m) {
				out = append(out, kind+"/"+m.Name)
			}
		}
	}
	opts := metav1.ListOptions{}
	core, rbac := s.kube.CoreV1(), s.kube.RbacV1()
	if l, err := s.kube.BatchV1().Jobs(s.ns).List(ctx, opts); err == nil {
		add("Job", metas(l.Items, func(x batchv1.Job) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Job", nil, err)
	}
	if l, err := core.Pods(s.ns).List(ctx, opts); err == nil {
		add("Pod", metas(l.Items, func(x corev1.Pod) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Pod", nil, err)
	}
	if l, err := core.ConfigMaps(s.ns).List(ctx, opts); err == nil {
		add("ConfigMap", metas(l.Items, func(x corev1.ConfigMap) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("ConfigMap", nil, err)
	}
	if l, err := core.Secrets(s.ns).List(ctx, opts); err == nil {
		add("Secret", metas(l.Items, func(x corev1.Secret) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Secret", nil, err)
	}
	if l, err := core.ServiceAccounts(s.ns).List(ctx, opts); err == nil {
		add("ServiceAccount", metas(l.Items, func(x corev1.ServiceAccount) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("ServiceAccount", nil, err)
	}
	if l, err := rbac.Roles(s.ns).List(ctx, opts); err == nil {
		add("Role", metas(l.Items, func(x rbacv1.Role) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("Role", nil, err)
	}
	if l, err := rbac.RoleBindings(s.ns).List(ctx, opts); err == nil {
		add("RoleBinding", metas(l.Items, func(x rbacv1.RoleBinding) metav1.ObjectMeta { return x.ObjectMeta }), nil)
	} else {
		add("RoleBinding", nil, err)
	}
	slices.Sort(out)
	return out
}

func metas[T any](items []T, f func(T) metav1.ObjectMeta) []metav1.ObjectMeta {
	out := make([]metav1.ObjectMeta, 0, len(items))
	for _, x := range items {
		out = append(out, f(x))
	}
	return out
}

// assertNoHookObjects fails the test if any hook object is left in the namespace.
func (s *suite) assertNoHookObjects(when string) {
	s.t.Helper()
	if left := s.hookObjects(ctxT(s.t, 30*time.Second)); len(left) > 0 {
		s.t.Errorf("%s: hook objects left behind: %v", when, left)
	}
}

// jobPods lists the pods of Job name.
func (s *suite) jobPods(ctx context.Context, job string) []corev1.Pod {
	s.t.Helper()
	l, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
	if err != nil {
		s.t.Fatalf("listing pods of Job %s: %v", job, err)
	}
	return l.Items
}

// podLog reads a container's log through the API (the kubelet's log endpoint), as `kubectl
// logs` does.
func (s *suite) podLog(pod, container string) string {
	s.t.Helper()
	b, err := s.kube.CoreV1().Pods(s.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctxT(s.t, 30*time.Second))
	if err != nil {
		s.t.Fatalf("reading the log of %s/%s: %v", pod, container, err)
	}
	return string(b)
}

// jobLog is the log of the (only) container of the (only) pod of Job name.
func (s *suite) jobLog(job string) string {
	s.t.Helper()
	pods := s.jobPods(ctxT(s.t, 30*time.Second), job)
	if len(pods) != 1 {
		s.t.Fatalf("Job %s has %d pods, want 1", job, len(pods))
	}
	return s.podLog(pods[0].Name, pods[0].Spec.Containers[0].Name)
}

func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func (s *suite) deployment() *appsv1.Deployment {
	s.t.Helper()
	d, err := s.kube.AppsV1().Deployments(s.ns).Get(ctxT(s.t, 30*time.Second), deploymentName, metav1.GetOptions{})
	if err != nil {
		s.t.Fatalf("Deployment %s: %v", deploymentName, err)
	}
	return d
}

// migrationsVolume is the ConfigMap the Deployment's pods mount as migrations.
func migrationsVolume(d *appsv1.Deployment) string {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			return v.ConfigMap.Name
		}
	}
	return ""
}

// Pod Security and diagnostics -------------------------------------------------------------------

func (s *suite) events(ctx context.Context) []corev1.Event {
	s.t.Helper()
	l, err := s.kube.CoreV1().Events(s.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Errorf("listing events: %v", err)
		return nil
	}
	slices.SortFunc(l.Items, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	return l.Items
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// checkPodSecurity fails the test if a controller could not create a pod (FailedCreate: Pod
// Security admission refusing a Job's or ReplicaSet's pod), or if the API server warned about a
// Pod Security violation (the namespaces' `warn: restricted`, which also covers pod templates).
func (s *suite) checkPodSecurity() {
	for _, e := range s.events(context.Background()) {
		if e.Reason == "FailedCreate" || strings.Contains(e.Message, "PodSecurity") {
			s.t.Errorf("%s %s/%s: %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	for _, w := range apiWarnings.take() {
		if strings.Contains(w, "PodSecurity") || strings.Contains(w, "would violate") {
			s.t.Errorf("API warning: %s", w)
		} else {
			s.t.Logf("API warning: %s", w)
		}
	}
}

// assertCreated checks, from the namespace's events, that a controller created a pod for an
// object of this kind whose name starts with namePrefix (SuccessfulCreate of a Job or
// ReplicaSet), or that such a bare pod was scheduled: proof that admission let it through.
func (s *suite) assertCreated(kind, namePrefix string) {
	s.t.Helper()
	for _, e := range s.events(ctxT(s.t, 30*time.Second)) {
		if e.InvolvedObject.Kind == kind && strings.HasPrefix(e.InvolvedObject.Name, namePrefix) &&
			(e.Reason == "SuccessfulCreate" || e.Reason == "Scheduled") {
			return
		}
	}
	s.t.Errorf("no SuccessfulCreate/Scheduled event for %s %s*: its pod was never admitted", kind, namePrefix)
}

// dump logs the namespace's pods (with their containers' logs) and events, for a failed test.
func (s *suite) dump() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.t.Logf("---- state of namespace %s", s.ns)
	if l, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range l.Items {
			s.t.Logf("pod %s: %s", p.Name, podState(p))
			for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
				b, err := s.kube.CoreV1().Pods(s.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: ptr(int64(20))}).DoRaw(ctx)
				if err == nil && len(b) > 0 {
					sc := bufio.NewScanner(bytes.NewReader(b))
					for sc.Scan() {
						s.t.Logf("  %s/%s: %s", p.Name, c.Name, sc.Text())
					}
				}
			}
		}
	}
	if l, err := s.kube.BatchV1().Jobs(s.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, j := range l.Items {
			s.t.Logf("job %s: active %d succeeded %d failed %d conditions %v", j.Name, j.Status.Active, j.Status.Succeeded, j.Status.Failed, j.Status.Conditions)
		}
	}
	for _, e := range s.events(ctx) {
		s.t.Logf("event %s %s/%s %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
	}
}

func ptr[T any](v T) *T { return &v }
