package cli

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemahook/schemahook/hook/kube"
	"github.com/schemahook/schemahook/hook/runner"
)

// stopFlags are update's --stop-workloads settings: scale the database's writers to zero before
// migrating, restore them if the migration fails.
type stopFlags struct {
	selector string
	timeout  time.Duration
}

func (s *stopFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.selector, "stop-workloads", "", "label selector of the Deployments and StatefulSets in this pod's namespace to scale to 0 (waiting until their pods are gone) before migrating, "+
		"and to scale back if the migration fails; only when something is pending. Needs the Kubernetes API (in-cluster service account)")
	f.DurationVar(&s.timeout, "stop-timeout", 2*time.Minute, "how long --stop-workloads waits for the workloads' pods to go before giving up and scaling them back (counts against --timeout)")
}

// update runs r.Update, first stopping the selected workloads when something is pending. A
// failed update restores them (the error joined); a successful one leaves them at zero for the
// release that follows the hook (helm upgrade, an Argo CD sync) to scale back from its manifests.
// Without a selector it is r.Update.
func (s *stopFlags) update(ctx context.Context, a *app, r *runner.Runner) (runner.Result, error) {
	if strings.TrimSpace(s.selector) == "" {
		return r.Update(ctx)
	}
	if s.timeout <= 0 {
		return runner.Result{}, usagef("--stop-timeout %s: must be positive", s.timeout)
	}
	c, err := kube.InCluster()
	if err != nil {
		return runner.Result{}, err
	}
	n, err := r.Pending(ctx)
	if err != nil || n == 0 {
		// Nothing to migrate, or Update refuses anyway: the workloads keep running.
		return r.Update(ctx)
	}
	a.log.Info("migrations pending: stopping workloads first", "pending", n, "selector", s.selector, "namespace", c.Namespace())
	self, _ := os.Hostname() // the pod's name: never wait for ourselves
	stopped, err := c.Stop(ctx, s.selector, s.timeout, self, a.log)
	if err != nil {
		return runner.Result{}, err
	}
	res, err := r.Update(ctx)
	if err != nil {
		a.log.Warn("update failed: restoring the stopped workloads", "count", len(stopped.Workloads))
		err = errors.Join(err, stopped.Restore(context.WithoutCancel(ctx)))
	}
	return res, err
}
