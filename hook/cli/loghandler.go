package cli

// Log lines for people. slog's text handler writes logfmt for machines: a message of several
// lines (a drift report, a migration error with its advice) comes out as one line full of `\n`
// escapes. On a terminal schemahook prints the time, the level, the message and its attributes,
// with the message's further lines and any multi-line value as lines of their own, in colour
// unless NO_COLOR is set (https://no-color.org). Off a terminal the default stays JSON lines.

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ANSI SGR sequences.
const (
	sgrReset  = "\x1b[0m"
	sgrBold   = "\x1b[1m"
	sgrDim    = "\x1b[2m"
	sgrRed    = "\x1b[31m"
	sgrGreen  = "\x1b[32m"
	sgrYellow = "\x1b[33m"
	sgrBlue   = "\x1b[34m"
	sgrCyan   = "\x1b[36m"
)

// humanHandler is a slog.Handler that writes one readable entry per record.
type humanHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	color bool
	level slog.Leveler
	attrs []groupedAttr // from WithAttrs
	group string        // prefix of the attributes' keys, from WithGroup
}

type groupedAttr struct {
	prefix string
	attr   slog.Attr
}

func newHumanHandler(w io.Writer, color bool, level slog.Leveler) *humanHandler {
	return &humanHandler{mu: &sync.Mutex{}, w: w, color: color, level: level}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// wantColor reports whether output to w may be coloured: a terminal that understands escapes,
// and no NO_COLOR (set to anything but the empty string) in the environment.
func wantColor(w io.Writer) bool {
	return isTerminal(w) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *humanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]groupedAttr{}, h.attrs...)
	for _, a := range as {
		c.attrs = append(c.attrs, groupedAttr{h.group, a})
	}
	return &c
}

func (h *humanHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

// indent starts the further lines of an entry.
const indent = "    "

func (h *humanHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if !r.Time.IsZero() {
		b.WriteString(h.paint(sgrDim, r.Time.Format("15:04:05")))
		b.WriteByte(' ')
	}
	b.WriteString(h.paint(levelColor(r.Level), padRight(r.Level.String(), 5)))
	b.WriteByte(' ')
	lines := strings.Split(strings.TrimRight(r.Message, "\n"), "\n")
	b.WriteString(h.paint(sgrBold, lines[0]))
	var blocks strings.Builder // multi-line values, after the message's own lines
	for _, ga := range h.attrs {
		h.appendAttr(&b, &blocks, ga.prefix, ga.attr)
	}
	r.Attrs(func(a slog.Attr) bool {
		h.appendAttr(&b, &blocks, h.group, a)
		return true
	})
	b.WriteByte('\n')
	for _, l := range lines[1:] {
		b.WriteString(indent + l + "\n")
	}
	b.WriteString(blocks.String())
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// appendAttr writes a as key=value on the entry's line, or, when its value has several lines,
// as a block of lines under its key.
func (h *humanHandler) appendAttr(line, blocks *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			h.appendAttr(line, blocks, prefix, g)
		}
		return
	}
	key := prefix + a.Key
	var val string
	switch a.Value.Kind() {
	case slog.KindTime:
		val = a.Value.Time().Format(time.RFC3339Nano)
	default:
		val = a.Value.String()
	}
	if strings.Contains(strings.TrimRight(val, "\n"), "\n") {
		blocks.WriteString(indent + h.paint(sgrCyan, key) + ":\n")
		for _, l := range strings.Split(strings.TrimRight(val, "\n"), "\n") {
			blocks.WriteString(indent + indent + l + "\n")
		}
		return
	}
	if val == "" || strings.ContainsAny(val, " =\"\t") {
		val = strconv.Quote(val)
	}
	line.WriteString("  " + h.paint(sgrCyan, key) + h.paint(sgrDim, "=") + val)
}

func (h *humanHandler) paint(sgr, s string) string {
	if !h.color || s == "" {
		return s
	}
	return sgr + s + sgrReset
}

func levelColor(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return sgrRed + sgrBold
	case l >= slog.LevelWarn:
		return sgrYellow
	case l >= slog.LevelInfo:
		return sgrGreen
	}
	return sgrBlue
}

func padRight(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}
