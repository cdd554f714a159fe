package cli

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// listenUntilDone serves srv, logging msg with attrs once it listens, until ctx ends (SIGTERM,
// SIGINT); then it shuts the server down, giving requests in flight up to 10 s. A server that
// cannot listen returns its error at once. serve and exporter share it.
func (a *app) listenUntilDone(ctx context.Context, srv *http.Server, msg string, attrs ...any) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	a.log.Info(msg, attrs...)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	a.log.Info("stopped")
	return nil
}
