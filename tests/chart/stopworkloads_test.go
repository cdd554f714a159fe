package chart_test

import (
	"fmt"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// stopOn are the values that turn schemaUpdate.stopWorkloads on, for chart c.
func stopOn(c chartCase, extra ...string) []string {
	p := c.prefix
	return append([]string{p + "config.updateSchema=true", p + "database.host=pg.example",
		p + "schemaUpdate.stopWorkloads.enabled=true", p + "schemaUpdate.stopWorkloads.selector=app.kubernetes.io/name=web"}, extra...)
}

// TestStopWorkloadsHooks: with stopWorkloads the ServiceAccount, Role and RoleBinding are hooks of
// the schema update's events at weight -10, before the ConfigMap (-5) and the Job (0), with the
// chart's delete policies; the Job runs as that ServiceAccount with its token mounted and gets the
// selector and timeout through the ConfigMap.
func TestStopWorkloadsHooks(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			for _, upgrade := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/upgrade=%t", c.name, upgrade), func(t *testing.T) {
					rel, err := render(t, sdk, c.load(t), vals(t, stopOn(c, c.prefix+"schemaUpdate.stopWorkloads.timeout=90s")...), upgrade)
					if err != nil {
						t.Fatal(err)
					}
					hooks := hookSet(rel)
					for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding"} {
						h, ok := hooks[kind+"/"+schemaUpdateName]
						if !ok {
							t.Errorf("hook %s/%s missing; hooks: %v", kind, schemaUpdateName, keys(hooks))
							continue
						}
						if h.Weight != -10 || !slices.Equal(h.Events, schemaUpdateEvents) || !sameSet(h.DeletePolicies, supportDeletePolicies) {
							t.Errorf("%s: weight %d events %v delete %v; want -10 %v %v", kind, h.Weight, h.Events, h.DeletePolicies, schemaUpdateEvents, supportDeletePolicies)
						}
					}
					if cm, job := hooks["ConfigMap/"+schemaUpdateName], hooks["Job/"+schemaUpdateName]; cm == nil || job == nil || !(-10 < cm.Weight && cm.Weight < job.Weight) {
						t.Errorf("want weights ServiceAccount/Role/RoleBinding -10 < ConfigMap < Job; got ConfigMap %v Job %v", cm, job)
					}
					objs := objects(t, rel)
					o, ok := find(objs, "Job", schemaUpdateName)
					if !ok {
						t.Fatal("no schema-update Job")
					}
					tmpl := o.Obj.(*batchv1.Job).Spec.Template
					spec := tmpl.Spec
					if spec.ServiceAccountName != schemaUpdateName {
						t.Errorf("Job serviceAccountName %q, want %q", spec.ServiceAccountName, schemaUpdateName)
					}
					if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
						t.Errorf("Job automountServiceAccountToken %v, want true", spec.AutomountServiceAccountToken)
					}
					env := containerEnv(t, objs, podTemplate{o, tmpl.ObjectMeta, spec}, spec.Containers[0])
					if env["SCHEMAHOOK_STOP_WORKLOADS"] != "app.kubernetes.io/name=web" || env["SCHEMAHOOK_STOP_TIMEOUT"] != "90s" {
						t.Errorf("Job env: SCHEMAHOOK_STOP_WORKLOADS=%q SCHEMAHOOK_STOP_TIMEOUT=%q", env["SCHEMAHOOK_STOP_WORKLOADS"], env["SCHEMAHOOK_STOP_TIMEOUT"])
					}
					// The guard Job stays without a token.
					if g, ok := find(objs, "Job", rollbackGuardName); ok {
						gs := g.Obj.(*batchv1.Job).Spec.Template.Spec
						if gs.AutomountServiceAccountToken == nil || *gs.AutomountServiceAccountToken || gs.ServiceAccountName != "" {
							t.Errorf("guard Job: automount %v serviceAccountName %q, want false and none", gs.AutomountServiceAccountToken, gs.ServiceAccountName)
						}
					}
					sa, _ := find(objs, "ServiceAccount", schemaUpdateName)
					if a := sa.Obj.(*corev1.ServiceAccount).AutomountServiceAccountToken; a == nil || *a {
						t.Errorf("ServiceAccount automountServiceAccountToken %v, want false (the Job opts in)", a)
					}
				})
			}
		}
	})
}

// TestStopWorkloadsRBACIsMinimal: the Role grants exactly what `update --stop-workloads` uses, in
// the release namespace only, and the RoleBinding gives it to the Job's ServiceAccount alone.
func TestStopWorkloadsRBACIsMinimal(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			t.Run(c.name, func(t *testing.T) {
				objs := objects(t, mustRender(t, sdk, c.load(t), vals(t, stopOn(c)...)))
				want := []rbacv1.PolicyRule{
					{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: []string{"get", "list"}},
					{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale", "statefulsets/scale"}, Verbs: []string{"get", "patch", "update"}},
					{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
				}
				o, ok := find(objs, "Role", schemaUpdateName)
				if !ok {
					t.Fatal("no Role")
				}
				if got := o.Obj.(*rbacv1.Role).Rules; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("Role rules\n got %v\nwant %v", got, want)
				}
				if ns := objectMeta(t, o).GetNamespace(); ns != "" && ns != releaseNamespace {
					t.Errorf("Role namespace %q", ns)
				}
				for _, k := range []string{"ClusterRole", "ClusterRoleBinding"} {
					for _, x := range objs {
						if x.Kind == k {
							t.Errorf("unexpected %s", x)
						}
					}
				}
				b, ok := find(objs, "RoleBinding", schemaUpdateName)
				if !ok {
					t.Fatal("no RoleBinding")
				}
				rb := b.Obj.(*rbacv1.RoleBinding)
				wantSub := []rbacv1.Subject{{Kind: "ServiceAccount", Name: schemaUpdateName, Namespace: releaseNamespace}}
				if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: schemaUpdateName}) || !slices.Equal(rb.Subjects, wantSub) {
					t.Errorf("RoleBinding roleRef %v subjects %v", rb.RoleRef, rb.Subjects)
				}
			})
		}
	})
}

// TestStopWorkloadsOffRendersNothing: without stopWorkloads (the default), or with only a selector,
// there is no ServiceAccount, Role or RoleBinding, no stop setting, and no pod gets a token. (On
// with the schema update off is rejected: TestValidationRules.)
func TestStopWorkloadsOffRendersNothing(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			p := c.prefix
			for name, sets := range map[string][]string{
				"default":                  {p + "config.updateSchema=true", p + "database.host=pg.example"},
				"selector without enabled": {p + "config.updateSchema=true", p + "database.host=pg.example", p + "schemaUpdate.stopWorkloads.selector=app=web"},
			} {
				t.Run(c.name+"/"+name, func(t *testing.T) {
					objs := objects(t, mustRender(t, sdk, c.load(t), vals(t, sets...)))
					for _, o := range objs {
						switch o.Kind {
						case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
							t.Errorf("unexpected %s", o)
						case "ConfigMap":
							cm := o.Obj.(*corev1.ConfigMap)
							for _, k := range []string{"SCHEMAHOOK_STOP_WORKLOADS", "SCHEMAHOOK_STOP_TIMEOUT"} {
								if _, ok := cm.Data[k]; ok {
									t.Errorf("%s has %s", o, k)
								}
							}
						}
					}
					for _, pt := range pods(objs) {
						if a := pt.Spec.AutomountServiceAccountToken; a == nil || *a || pt.Spec.ServiceAccountName != "" {
							t.Errorf("%s: automountServiceAccountToken %v serviceAccountName %q", pt.Owner, a, pt.Spec.ServiceAccountName)
						}
					}
				})
			}
		}
	})
}

// TestStopWorkloadsPodsAreRestricted: the token is the only thing stopWorkloads loosens; every pod
// is still admitted by Pod Security "restricted" and hardened otherwise.
func TestStopWorkloadsPodsAreRestricted(t *testing.T) {
	forEachHelm(t, func(t *testing.T, sdk helm) {
		for _, c := range charts(t) {
			t.Run(c.name, func(t *testing.T) {
				ps := pods(objects(t, mustRender(t, sdk, c.load(t), vals(t, stopOn(c)...))))
				if len(ps) == 0 {
					t.Fatal("no pods")
				}
				for _, p := range ps {
					for _, v := range evaluateRestricted(t, p) {
						t.Errorf("%s: PSS restricted: %s", p.Owner, v)
					}
					for _, ctr := range containers(p.Spec) {
						checkHardenedContainer(t, p, ctr)
					}
					tok := p.Spec.AutomountServiceAccountToken
					isUpdate := p.Owner.Kind == "Job" && p.Owner.Name == schemaUpdateName
					if isUpdate != (tok != nil && *tok) {
						t.Errorf("%s: automountServiceAccountToken %v: only the schema-update Job may have a token", p.Owner, tok)
					}
				}
			})
		}
	})
}
