package cli

import (
	"strings"
	"testing"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// commands returns every command of the tree except cobra's own (help, completion).
func commands(t *testing.T) (*cobra.Command, []*cobra.Command) {
	t.Helper()
	root := (&app{}).rootCommand()
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" || sub.Hidden {
				continue
			}
			out = append(out, sub)
			walk(sub)
		}
	}
	walk(root)
	if len(out) < 15 {
		t.Fatalf("only %d commands in the tree", len(out))
	}
	return root, out
}

// Every command shows two or three runnable examples and a one-line Short that starts with a
// capitalized word (a verb, by review), and every top-level command but version is in a group.
func TestEveryCommandHasExamplesAndAGroup(t *testing.T) {
	root, cmds := commands(t)
	groups := map[string]bool{}
	for _, g := range root.Groups() {
		groups[g.ID] = true
	}
	for _, c := range cmds {
		runnable := 0
		for l := range strings.Lines(c.Example) {
			l = strings.TrimSpace(l)
			if l != "" && !strings.HasPrefix(l, "#") {
				if !strings.Contains(l, "schemahook ") {
					t.Errorf("%s: example line %q does not run schemahook", c.CommandPath(), l)
				}
				runnable++
			}
		}
		if runnable < 2 || runnable > 3 {
			t.Errorf("%s: %d example commands, want 2 or 3", c.CommandPath(), runnable)
		}
		if s := c.Short; s == "" || strings.Contains(s, "\n") || strings.HasSuffix(s, ".") || !unicode.IsUpper([]rune(s)[0]) ||
			strings.HasSuffix(strings.Fields(s)[0], ":") {
			t.Errorf("%s: Short %q: want one line starting with a verb, without a final period", c.CommandPath(), s)
		}
		if c.Parent() == root && c.Name() != "version" && !groups[c.GroupID] {
			t.Errorf("%s is in no group (GroupID %q)", c.CommandPath(), c.GroupID)
		}
	}
}

// One flag, one meaning: -o/--output is a format wherever it exists, a file is -f/--file, and
// every --wait-for-db has the same default.
func TestFlagsMeanTheSameEverywhere(t *testing.T) {
	_, cmds := commands(t)
	waits := 0
	for _, c := range cmds {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			switch f.Name {
			case "output":
				if f.Shorthand != "o" || !strings.HasPrefix(f.Usage, "output format") {
					t.Errorf("%s --output (-%s): %q, want -o/--output naming an output format", c.CommandPath(), f.Shorthand, f.Usage)
				}
			case "file":
				if f.Shorthand != "f" {
					t.Errorf("%s --file has shorthand %q, want f", c.CommandPath(), f.Shorthand)
				}
			case "wait-for-db":
				waits++
				if f.DefValue != DefaultWaitForDB.String() {
					t.Errorf("%s --wait-for-db defaults to %s, want %s as every command", c.CommandPath(), f.DefValue, DefaultWaitForDB)
				}
			}
			if f.Shorthand == "o" && f.Name != "output" || f.Shorthand == "f" && f.Name != "file" {
				t.Errorf("%s: -%s is --%s", c.CommandPath(), f.Shorthand, f.Name)
			}
		})
	}
	if waits < 8 {
		t.Fatalf("only %d commands have --wait-for-db", waits)
	}
}
