// Package dbconn turns flags and libpq-style environment into a pgx connection, waits for the
// database with bounded backoff, and renders connection strings without their passwords.
package dbconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/schemahook/schemahook/hook/backoff"
)

var (
	// ErrUnreachable means the database did not accept a connection before the wait ended.
	ErrUnreachable = errors.New("database unreachable")
	// ErrAuth means the server rejected the credentials; retrying cannot help.
	ErrAuth = errors.New("database authentication failed")
	// ErrConfig means the connection settings themselves are malformed.
	ErrConfig = errors.New("invalid database settings")
)

// Config parses a connection string (URL or keyword/value form). An empty string means
// "everything from libpq's PG* environment variables", which pgx reads for any setting the
// string leaves out — the chart passes PGPASSWORD from a Secret this way, never in a URL.
//
// A malformed string is ErrConfig, with a message that quotes nothing of it: a string that
// does not parse may hold a password anywhere.
//
// golang-migrate's URLs (pgx5://, pgx://, x- parameters) are read as TranslateMigrateURL says;
// an x- parameter that stands for a flag is an ErrConfig error naming the flag, since a
// connection cannot carry it (the CLI translates the URL before it gets here).
func Config(connString string) (*pgx.ConnConfig, error) {
	t, err := TranslateMigrateURL(connString)
	if err != nil {
		return nil, err
	}
	if len(t.Flags) > 0 {
		flag := slices.Sorted(maps.Keys(t.Flags))[0]
		return nil, fmt.Errorf("%w: the golang-migrate URL parameter for --%s cannot be used here: remove it from the URL and pass --%s %s", ErrConfig, flag, flag, t.Flags[flag])
	}
	connString = t.ConnString
	if err := ambiguousURL(connString); err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%w: the connection settings cannot be parsed: %s", ErrConfig, parseReason(connString, err))
	}
	// Every query schemahook sends once per run (lock, version, history) would cost two round
	// trips in pgx's default mode, which prepares and caches a statement first; Exec mode sends
	// Parse/Bind/Execute together. It matters on the path that runs on every deploy and sync.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	// A cancelled context (the --timeout deadline, SIGTERM) cancels the running statement on
	// the server and keeps the connection: the server answers, the transaction is rolled back
	// for certain and the migration lock can be released. pgx's default closes the connection
	// instead, which leaves the outcome of a migration whose COMMIT was sent unknown. Without an
	// answer within cancelWait the connection is closed after all.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelWait}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		// Shows up in pg_stat_activity, so a DBA (and our lock-wait message) can tell who holds locks.
		cfg.RuntimeParams["application_name"] = "schemahook"
	}
	return cfg, nil
}

// ambiguousURL refuses a connection URL with an '@' that does not end its user-info. libpq
// (and pgx, which parses URLs as libpq does) ends the user-info at the first '@' unless a '/'
// comes first, so a raw '@' or '/' in a password moves the rest of it into the host, port,
// database or query: it would be shown in messages as where schemahook connects, and the
// connection would wait for a host that does not exist. Percent-encoded, it parses as meant.
func ambiguousURL(s string) error {
	rest, ok := strings.CutPrefix(s, "postgresql://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "postgres://"); !ok {
			return nil
		}
	}
	after := 0
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		after = i + 1
	}
	if strings.IndexByte(rest[after:], '@') < 0 {
		return nil
	}
	return fmt.Errorf("%w: the connection URL has an '@' that does not end its user-info (postgres://user:password@host/db): "+
		"a password or user name holding '@', '/', ':' or '%%' must be percent-encoded in a URL ('@' → %%40, '/' → %%2F, ':' → %%3A, '%%' → %%25), "+
		"as must an '@' in a query value — or leave the password out of the URL and set PGPASSWORD", ErrConfig)
}

// parseReason is why pgx could not parse connString, without the string itself: pgx quotes it
// redacted as best it can, and quotes parts of it (a query parameter, a keyword) that may be
// pieces of a password when the string is malformed. Those are dropped.
func parseReason(connString string, err error) string {
	msg := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// "cannot parse `<string>`: <reason>"; the string may itself hold a backquote.
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+len("`: "):]
		}
	}
	return quotedRE().ReplaceAllStringFunc(msg, func(q string) string {
		inner := q[1 : len(q)-1]
		if u, err := strconv.Unquote(q); err == nil && q[0] == '"' {
			inner = u // %q quoting escapes what it quotes
		}
		if len(inner) > 1 && strings.Contains(connString, inner) {
			return q[:1] + "…" + q[len(q)-1:]
		}
		return q
	})
}

// cancelWait is how long a cancelled statement may take to end on the server before the
// connection is given up: longer than any statement takes to notice a cancel request, shorter
// than the grace period Kubernetes gives a pod after SIGTERM (30 s by default).
const cancelWait = 5 * time.Second

// Describe renders where cfg connects, for logs and errors: never the password.
func Describe(cfg *pgx.ConnConfig) string {
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, host, cfg.Port, cfg.Database)
}

// Connect opens a connection, retrying transient failures (refused, DNS, timeouts, "the
// database system is starting up", database not created yet) with backoff until wait has passed
// or ctx ends. Authentication failures return at once: retrying a wrong password only delays
// the message and can lock the role out. wait == 0 means a single attempt.
func Connect(ctx context.Context, cfg *pgx.ConnConfig, wait time.Duration, log *slog.Logger) (*pgx.Conn, error) {
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	policy := backoff.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		c := cfg.Copy()
		if c.ConnectTimeout == 0 || c.ConnectTimeout > 5*time.Second {
			c.ConnectTimeout = 5 * time.Second
		}
		conn, err := pgx.ConnectConfig(ctx, c)
		if err == nil {
			if attempt > 0 {
				log.Info("connected to the database", "target", Describe(cfg), "after", time.Since(start).Round(100*time.Millisecond).String(), "attempts", attempt+1)
			}
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to %s: %w", Describe(cfg), ctx.Err())
		}
		if fatal := classify(err); fatal != nil {
			return nil, fmt.Errorf("connecting to %s: %w", Describe(cfg), fatal)
		}
		if attempt == 0 && wait > 0 {
			log.Info("waiting for the database", "target", Describe(cfg), "wait", wait.String(), "error", Redact(err.Error()))
		}
		if wait <= 0 {
			return nil, fmt.Errorf("%w: %s did not accept a connection: %s — check the host, port and that the server is running",
				ErrUnreachable, Describe(cfg), Redact(err.Error()))
		}
		if policy.Sleep(waitCtx, attempt) != nil || waitCtx.Err() != nil {
			return nil, fmt.Errorf("%w: %s did not accept connections within %s (%d attempts): %s — check the host, port and that the server is running; raise --wait-for-db if it starts slowly",
				ErrUnreachable, Describe(cfg), time.Since(start).Round(time.Millisecond), attempt+1, Redact(err.Error()))
		}
	}
}

// classify returns a non-retryable error, or nil when err is worth retrying.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil // network-level: refused, unreachable, DNS, TLS handshake cut short
	}
	switch pgErr.Code {
	case pgerrcode.CannotConnectNow, pgerrcode.TooManyConnections, pgerrcode.InvalidCatalogName,
		pgerrcode.AdminShutdown, pgerrcode.CrashShutdown:
		return nil
	case pgerrcode.InvalidPassword, pgerrcode.InvalidAuthorizationSpecification:
		return fmt.Errorf("%w (SQLSTATE %s): %s — check the user and PGPASSWORD (in Kubernetes: the Secret named by database.existingSecret)",
			ErrAuth, pgErr.Code, pgErr.Message)
	}
	return fmt.Errorf("SQLSTATE %s: %s", pgErr.Code, pgErr.Message)
}

// Redact replaces passwords in connection strings, in either URL or keyword/value form, and in
// free text that embeds them (error messages). The replacement keeps the shape so that the
// result still reads as a connection string.
func Redact(s string) string {
	if t := strings.TrimSpace(s); urlRE().FindStringIndex(t) != nil && urlRE().FindStringIndex(t)[0] == 0 {
		// A whole connection URL: pgx accepts characters in it that the embedded-URL pattern
		// stops at (quotes, spaces), so redact it as one piece.
		return redactURL(t)
	}
	// URLs and keyword/value text follow different rules ('&' separates URL parameters but is
	// an ordinary character in a keyword/value password), so each span gets its own.
	var b strings.Builder
	last := 0
	for _, m := range urlRE().FindAllStringIndex(s, -1) {
		b.WriteString(kvRE().ReplaceAllString(s[last:m[0]], "${1}"+mask))
		b.WriteString(redactURL(s[m[0]:m[1]]))
		last = m[1]
	}
	b.WriteString(kvRE().ReplaceAllString(s[last:], "${1}"+mask))
	return b.String()
}

const mask = "xxxxx"

// The patterns compile on first use: most runs redact nothing, and every run pays for what
// package initialization does.
var (
	urlRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)(?:postgres(?:ql)?|pgx5?)://[^\s"'<>]*`) })
	// A quoted part of a message: "…", `…` or '…'.
	quotedRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("\"[^\"]*\"|`[^`]*`|'[^']*'") })
	// [ssl]password=VALUE where VALUE is single-quoted (with \' escapes) or runs to whitespace.
	kvRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']+)`)
	})
)

// redactURL masks the userinfo password and password/sslpassword query values. It finds them
// the way libpq (and pgx) parse URIs rather than with net/url: the userinfo ends at the first '@'
// unless a '/' comes first, so characters net/url rejects or reads as a fragment cannot smuggle
// a password past the mask. When another '@' follows, the password may have held a raw '@' or
// '/' (Config refuses such a URL): everything before the last '@' but the user name is masked.
func redactURL(raw string) string {
	scheme, rest, _ := strings.Cut(raw, "://")
	i := strings.IndexAny(rest, "@/")
	switch last := strings.LastIndexByte(rest, '@'); {
	case last >= 0 && (i < 0 || rest[i] != '@' || last != i):
		user, _, hasPassword := strings.Cut(rest[:last], ":")
		if !hasPassword || strings.ContainsAny(user, "@/?#") {
			rest = mask + rest[last:]
		} else {
			rest = user + ":" + mask + rest[last:]
		}
	case i >= 0 && rest[i] == '@':
		if user, _, hasPassword := strings.Cut(rest[:i], ":"); hasPassword {
			rest = user + ":" + mask + rest[i:]
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		params := strings.Split(rest[q+1:], "&")
		for j, p := range params {
			k, _, _ := strings.Cut(p, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				key = k
			}
			if key = strings.ToLower(key); key == "password" || key == "sslpassword" {
				params[j] = k + "=" + mask
			}
		}
		rest = rest[:q+1] + strings.Join(params, "&")
	}
	return scheme + "://" + rest
}
