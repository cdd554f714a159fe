// Command pause is the pod sandbox ("infra") container of the local e2e cluster: a static
// replacement for registry.k8s.io/pause, which cannot be pulled here (no registry). It holds the
// pod's namespaces open, reaps zombies when it is PID 1 of a shared PID namespace, and exits on
// SIGTERM/SIGINT like the original.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
