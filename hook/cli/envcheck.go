package cli

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemahook/schemahook/hook/lint"
)

// envPrefix: every flag of every command is also SCHEMAHOOK_<FLAG> (see setup).
const envPrefix = "SCHEMAHOOK_"

// serviceLinkRE matches the variables Kubernetes adds to every pod for each Service in the
// namespace (enableServiceLinks): a Service named schemahook or schemahook-exporter gives
// SCHEMAHOOK_SERVICE_HOST, SCHEMAHOOK_EXPORTER_PORT_9090_TCP_ADDR and the like. They are not
// settings, so they are not warned about.
var serviceLinkRE = regexp.MustCompile(`_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_ADDR|_PORT|_PROTO)?)?)$`)

// unknownEnv returns a warning for each SCHEMAHOOK_* variable of environ that no command reads:
// a typo (SCHEMAHOOK_LOCKTIMEOUT) would otherwise leave a setting at its default without a
// word. Flags of every command count, not only this one's: a chart sets one environment for
// several commands.
func unknownEnv(root *cobra.Command, environ []string) []string {
	known := map[string]bool{lint.CacheDirEnv: true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { known[envName(f.Name)] = true }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || known[name] || serviceLinkRE.MatchString(name) {
			continue
		}
		msg := fmt.Sprintf("environment variable %s is not a setting of schemahook and is ignored", name)
		if near := closest(name, known); near != "" {
			msg += fmt.Sprintf(": did you mean %s?", near)
		} else {
			msg += ": each flag --some-flag is SCHEMAHOOK_SOME_FLAG (see schemahook --help)"
		}
		warnings = append(warnings, msg)
	}
	slices.Sort(warnings)
	return warnings
}

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// closest is the known name nearest to name by edit distance, ignoring underscores' absence
// (LOCKTIMEOUT for LOCK_TIMEOUT), or "" when none is near enough to be a typo of it.
func closest(name string, known map[string]bool) string {
	best, bestD := "", 0
	for k := range known {
		d := editDistance(strings.ReplaceAll(name, "_", ""), strings.ReplaceAll(k, "_", ""))
		if best == "" || d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if bestD > 2 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (ASCII names).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
