package cli

import (
	"log/slog"
	"strings"
	"testing"
)

func TestHumanHandlerPrintsLines(t *testing.T) {
	var b strings.Builder
	log := slog.New(newHumanHandler(&b, false, slog.LevelInfo)).With("run", 1).WithGroup("g")
	log.Debug("hidden")
	log.Error("drift:\n  file changed\nrestore it", "exit_code", 4, "note", "two words", "sql", "SELECT 1;\nSELECT 2;\n")
	got := b.String()
	// The time comes first and varies; compare from the level on.
	if i := strings.Index(got, "ERROR"); i >= 0 {
		got = got[i:]
	}
	want := "ERROR drift:  run=1  g.exit_code=4  g.note=\"two words\"\n" +
		"      file changed\n" +
		"    restore it\n" +
		"    g.sql:\n" +
		"        SELECT 1;\n" +
		"        SELECT 2;\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(b.String(), "\x1b") || strings.Contains(b.String(), "hidden") {
		t.Errorf("colour without asking, or a record below the level:\n%q", b.String())
	}
	b.Reset()
	slog.New(newHumanHandler(&b, true, slog.LevelInfo)).Warn("w")
	if !strings.Contains(b.String(), sgrYellow+"WARN "+sgrReset) {
		t.Errorf("no colour when asked: %q", b.String())
	}
}
