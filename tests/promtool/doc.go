// Package promtool pins Prometheus's promtool as a Go tool (`go tool promtool` in this
// directory), in a module of its own so that the Prometheus server's dependencies stay out of
// the tests module. The chart tests check the chart's PrometheusRule with it.
package promtool
