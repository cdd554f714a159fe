package pgdriver

import (
	"testing"
	"time"
)

func TestParseStepMark(t *testing.T) {
	since := time.Date(2026, 12, 2, 5, 30, 12, 0, time.UTC)
	for _, tc := range []struct {
		app, name string
		step      *Step
	}{
		{"schemahook applying 9 since 2026-12-02T05:30:12Z", "schemahook", &Step{Version: 9, Since: since}},
		{"my hook reverting 20240101120000 since 2026-12-02T05:30:12Z", "my hook", &Step{Reverting: true, Version: 20240101120000, Since: since}},
		{" applying 1 since 2026-12-02T05:30:12Z", "", &Step{Version: 1, Since: since}},
		{"schemahook", "schemahook", nil},
		{"schemahook lock watcher", "schemahook lock watcher", nil},
		{"psql applying x since 2026-12-02T05:30:12Z", "psql applying x since 2026-12-02T05:30:12Z", nil},
		{"psql applying 9 since yesterday", "psql applying 9 since yesterday", nil},
	} {
		name, step, ok := parseStepMark(tc.app)
		if name != tc.name || ok != (tc.step != nil) || (ok && step != *tc.step) {
			t.Errorf("parseStepMark(%q) = %q, %+v, %t; want %q, %+v", tc.app, name, step, ok, tc.name, tc.step)
		}
	}
}
