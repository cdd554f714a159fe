package bluegreen

import (
	"strings"
	"testing"
	"time"
)

func TestDiffCountsWritesPerTable(t *testing.T) {
	reset := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := &Counters{Tables: map[string][3]int64{"public.a": {10, 2, 1}, "public.b": {5, 0, 0}, "public.gone": {3, 0, 0}}, Reset: &reset}
	now := &Counters{Tables: map[string][3]int64{"public.a": {13, 2, 1}, "public.b": {5, 0, 0}, "public.new": {0, 4, 2}}, Reset: &reset}
	w := diff("app__v5", nil, base, now)
	if !w.Lost() || len(w.Tables) != 2 || w.Tables["public.a"] != [3]int64{3, 0, 0} || w.Tables["public.new"] != [3]int64{0, 4, 2} {
		t.Fatalf("diff = %+v", w)
	}
	if got := w.String(); !strings.Contains(got, "took 9 row write(s)") || strings.Index(got, "public.new") > strings.Index(got, "public.a") {
		t.Fatalf("String() = %q, want the total and the largest table first", got)
	}
	if w := diff("app__v5", nil, base, base); w.Lost() {
		t.Fatalf("no change counted as writes: %+v", w)
	}
}

func TestDiffCannotTellAfterAReset(t *testing.T) {
	r1, r2 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	base := &Counters{Tables: map[string][3]int64{"public.a": {10, 0, 0}}, Reset: &r1}
	for name, now := range map[string]*Counters{
		"reset time moved":  {Tables: map[string][3]int64{"public.a": {0, 0, 0}}, Reset: &r2},
		"counter went down": {Tables: map[string][3]int64{"public.a": {4, 0, 0}}, Reset: &r1},
	} {
		if w := diff("x", nil, base, now); w.Unknown == "" || !w.Lost() {
			t.Errorf("%s: %+v, want unknown (assumed lost)", name, w)
		}
	}
	if w := diff("x", nil, nil, base); w.Unknown == "" {
		t.Error("no baseline: want unknown")
	}
}
