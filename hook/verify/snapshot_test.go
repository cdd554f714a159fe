package verify

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	want := Snapshot{Lines: []string{"column public.a.id bigint", "index public.a_x CREATE INDEX a_x ON public.a (x)", "table public.a"}}
	got := Snapshot{Lines: []string{"column public.a.id integer", "table public.a", "table public.b"}}
	d := Diff(want, got)
	exp := []string{
		"- column public.a.id bigint",
		"+ column public.a.id integer",
		"- index public.a_x CREATE INDEX a_x ON public.a (x)",
		"+ table public.b",
	}
	if !slices.Equal(d, exp) {
		t.Fatalf("Diff = %q, want %q", d, exp)
	}
	if len(Diff(want, want)) != 0 || !want.Equal(want) || want.Equal(got) {
		t.Fatal("equal snapshots must give no diff, different ones must not be Equal")
	}
	if d := Diff(Snapshot{}, got); len(d) != 3 || d[0][0] != '+' {
		t.Fatalf("Diff from empty = %q", d)
	}
}
