// Package sqlsplit splits a PostgreSQL script into top-level statements.
//
// Only migrations marked "-- schemahook:no-transaction" need it: PostgreSQL runs a
// multi-statement simple query as one implicit transaction, so CREATE INDEX CONCURRENTLY would
// fail there ("cannot run inside a transaction block"). Transactional migrations are sent whole,
// with SQL of the driver's after them when the file ends outside any token (Unterminated).
// The lexer knows what can hide a semicolon in PostgreSQL's grammar: quoted strings (with E”
// backslash escapes), quoted identifiers, dollar-quoted bodies and nested block comments; it
// reads names whole, as they may contain '$'. The semicolons of a SQL-standard function body
// (CREATE FUNCTION … BEGIN ATOMIC … END) are the body's, as psql also reads them.
package sqlsplit

import (
	"iter"
	"strings"
)

// Statement is one top-level statement of a script.
type Statement struct {
	SQL    string // the statement text without its terminating semicolon, trimmed
	Offset int    // byte offset of SQL within the script
	Line   int    // 1-based line of SQL's first byte within the script
}

// Split returns the statements of script in order. Statements that hold only comments and
// whitespace are dropped; an unterminated quote or comment extends to the end of the script
// and is returned as the last statement, so that PostgreSQL reports the syntax error.
func Split(script string) []Statement {
	var out []Statement
	for st := range Statements(script) {
		out = append(out, st)
	}
	return out
}

// Statements yields the statements Split returns, one at a time, without building the slice.
func Statements(script string) iter.Seq[Statement] {
	return func(yield func(Statement) bool) {
		start := 0
		var body atomicBody
		emit := func(end int) bool {
			raw := script[start:end]
			// PostgreSQL's whitespace only, as below: Unicode spaces such as U+00A0 are identifier
			// bytes to PostgreSQL, and trimming them would change the SQL sent and leave Offset and
			// Line pointing before the statement.
			trimmed := strings.Trim(raw, sqlSpace)
			if trimmed == "" || onlyComments(trimmed) {
				return true
			}
			lead := len(raw) - len(strings.TrimLeft(raw, sqlSpace))
			off := start + lead
			return yield(Statement{SQL: trimmed, Offset: off, Line: 1 + strings.Count(script[:off], "\n")})
		}
		for i := 0; i < len(script); {
			if script[i] == ';' && !body.open() {
				if !emit(i) {
					return
				}
				i++
				start = i
				body = atomicBody{}
				continue
			}
			j, _ := token(script, i)
			body.see(script, i, j)
			i = j
		}
		emit(len(script))
	}
}

// atomicBody follows one statement's tokens to tell whether a semicolon ends it or belongs to
// a SQL-standard function body: CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN ATOMIC … END,
// whose body statements end with semicolons the server's grammar reads as the body's. Inside
// the body, CASE … END nests. Only words outside parentheses count, and not a word right
// after '.' or AS, where keywords are names (t.end, 1 AS case), nor a CASE that is a bare
// column label (bareLabel). psql reads such bodies the same way;
// stricter than psql, BEGIN opens a body only when ATOMIC follows, so a function named begin
// hides no later statement.
type atomicBody struct {
	head   [4]string // the statement's first words
	words  int       // how many of head are set
	create bool      // the statement is CREATE [OR REPLACE] FUNCTION|PROCEDURE
	parens int
	depth  int  // open BEGIN ATOMIC and CASE, once inside a body
	begin  bool // the previous token was the word BEGIN
	as     bool // the previous token was the word AS, after which CASE and END are names
	prev   byte // the last non-blank byte before the current token
}

func (b *atomicBody) open() bool { return b.depth > 0 }

// see takes the token s[i:j].
func (b *atomicBody) see(s string, i, j int) {
	c := s[i]
	word := isIdentStart(c) && !(j > i+1 && s[i+1] == '\'') // a name or keyword, not E'…'
	switch {
	case strings.IndexByte(sqlSpace, c) >= 0:
		return
	case c == '-' && strings.HasPrefix(s[i:], "--"), c == '/' && strings.HasPrefix(s[i:], "/*"):
		return // comments change nothing, not even prev
	case c == '(':
		b.parens++
	case c == ')':
		b.parens = max(b.parens-1, 0)
	case word:
		b.word(s[i:j], s[SkipBlanks(s, j):])
	}
	b.begin, b.as = b.begin && word, b.as && word
	b.prev = s[j-1]
}

// word takes the word w, followed by next.
func (b *atomicBody) word(w, next string) {
	wasBegin, wasAS := b.begin, b.as
	b.begin, b.as = false, strings.EqualFold(w, "as")
	if b.words < len(b.head) {
		b.head[b.words] = w
		b.words++
		h := b.head[:b.words]
		routine := func(w string) bool { return strings.EqualFold(w, "function") || strings.EqualFold(w, "procedure") }
		b.create = strings.EqualFold(h[0], "create") && (len(h) >= 2 && routine(h[1]) ||
			len(h) >= 4 && strings.EqualFold(h[1], "or") && strings.EqualFold(h[2], "replace") && routine(h[3]))
	}
	if !b.create || b.parens > 0 || b.prev == '.' || wasAS {
		return
	}
	switch {
	case strings.EqualFold(w, "begin"):
		b.begin = true
	case wasBegin && strings.EqualFold(w, "atomic"):
		b.depth++
	case b.depth > 0 && strings.EqualFold(w, "case") && !bareLabel(next):
		b.depth++
	case b.depth > 0 && strings.EqualFold(w, "end"):
		b.depth--
	}
}

// bareLabel reports whether a CASE followed by next is a column label ("SELECT 1 case;"): a
// CASE expression never ends where it starts, nor runs into FROM or END.
func bareLabel(next string) bool {
	if next == "" || strings.IndexByte(";,)", next[0]) >= 0 {
		return true
	}
	w, _ := Keyword(next)
	return w == "FROM" || w == "END"
}

// Unterminated reports whether script ends inside a quoted string, quoted identifier,
// dollar-quoted string or block comment: text appended to it would be read as part of that
// token, and could close it. A trailing "--" comment does not count; a newline ends it.
func Unterminated(script string) bool {
	for i := 0; i < len(script); {
		var open bool
		if i, open = token(script, i); open {
			return true
		}
	}
	return false
}

// token returns the offset after the lexical item at s[i] — a quoted string or identifier, a
// dollar-quoted string, a comment, a name, or a single byte — and whether it is a quote or a
// block comment still open at the end of s.
func token(s string, i int) (int, bool) {
	switch c := s[i]; {
	case c == '\'' || c == '"':
		return skipQuoted(s, i, c, false)
	case c == '-' && strings.HasPrefix(s[i:], "--"):
		return skipLine(s, i), false
	case c == '/' && strings.HasPrefix(s[i:], "/*"):
		return skipBlock(s, i)
	case c == '$':
		return skipDollar(s, i)
	case isIdentStart(c):
		// E'…' has backslash escapes. Otherwise this is a name, read whole as PostgreSQL does:
		// names may contain '$', so "a$$b$" opens no dollar quote and a "B'…'" or "xe'…'" string
		// after a name is an ordinary one.
		if (c == 'e' || c == 'E') && i+1 < len(s) && s[i+1] == '\'' {
			return skipQuoted(s, i+1, '\'', true)
		}
		j := i + 1
		for j < len(s) && (isIdent(s[j]) || s[j] == '$') {
			j++
		}
		return j, false
	default:
		return i + 1, false
	}
}

// sqlSpace is what PostgreSQL's lexer treats as whitespace.
const sqlSpace = " \t\r\n\f\v"

// onlyComments reports whether s (trimmed, non-empty) holds nothing but comments.
func onlyComments(s string) bool { return SkipBlanks(s, 0) == len(s) }

// SkipBlanks returns the byte offset of the first token at or after off: whitespace, "--" line
// comments and (nested) block comments are skipped, as PostgreSQL's lexer does. It returns
// len(s) when nothing but blanks follow.
func SkipBlanks(s string, off int) int {
	for i := off; i < len(s); {
		switch {
		case strings.IndexByte(sqlSpace, s[i]) >= 0:
			i++
		case strings.HasPrefix(s[i:], "--"):
			i = skipLine(s, i)
		case strings.HasPrefix(s[i:], "/*"):
			i, _ = skipBlock(s, i)
		default:
			return i
		}
	}
	return len(s)
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipQuoted returns the index after the quote that closes the one at i, or len(s) and true
// when none does. A doubled quote is an escaped quote; with backslashes set (E” strings) a
// backslash escapes the next byte.
func skipQuoted(s string, i int, q byte, backslashes bool) (int, bool) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if backslashes {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, false
		}
	}
	return len(s), true
}

func skipLine(s string, i int) int {
	if n := strings.IndexByte(s[i:], '\n'); n >= 0 {
		return i + n + 1
	}
	return len(s)
}

// skipBlock skips a block comment (they nest), returning len(s) and true when it is not closed.
func skipBlock(s string, i int) (int, bool) {
	depth := 0
	for j := i; j < len(s); {
		switch {
		case strings.HasPrefix(s[j:], "/*"):
			depth++
			j += 2
		case strings.HasPrefix(s[j:], "*/"):
			depth--
			j += 2
			if depth == 0 {
				return j, false
			}
		default:
			j++
		}
	}
	return len(s), true
}

// skipDollar skips a dollar-quoted string starting at i ($$…$$ or $tag$…$tag$), returning
// len(s) and true when it is not closed. A '$' that does not open a valid tag (e.g. the
// parameter $1) is skipped as a single byte.
func skipDollar(s string, i int) (int, bool) {
	j := i + 1
	for j < len(s) && s[j] != '$' {
		c := s[j]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || (j > i+1 && c >= '0' && c <= '9')) {
			return i + 1, false
		}
		j++
	}
	if j >= len(s) {
		return i + 1, false
	}
	tag := s[i : j+1]
	if end := strings.Index(s[j+1:], tag); end >= 0 {
		return j + 1 + end + len(tag), false
	}
	return len(s), true
}

// TransactionControl reports whether stmt, one statement of Split, controls transactions:
// BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK (also ROLLBACK TO and ROLLBACK PREPARED),
// ABORT, SAVEPOINT, RELEASE [SAVEPOINT], PREPARE TRANSACTION and COMMIT PREPARED. At the top
// level, each of these is nothing else in PostgreSQL's grammar; PREPARE name AS … is a
// prepared statement, not one of them.
func TransactionControl(stmt string) bool {
	switch w, rest := Keyword(stmt); w {
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE":
		return true
	case "PREPARE":
		w, _ = Keyword(rest)
		return w == "TRANSACTION"
	}
	return false
}

// Keyword returns the first word of s, after blanks and comments, in upper case, and the rest
// of s after it. A word is ASCII letters only: enough for keywords.
func Keyword(s string) (string, string) {
	i := SkipBlanks(s, 0)
	j := i
	for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
		j++
	}
	if j < len(s) && (isIdent(s[j]) || s[j] == '$') {
		return "", s // a longer name such as begin_x or end2: no keyword
	}
	return strings.ToUpper(s[i:j]), s[j:]
}
