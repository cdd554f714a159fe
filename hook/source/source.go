// Package source reads a directory of migration files into a validated catalog.
//
// Files follow golang-migrate's naming, NNNNNN_name.up.sql and NNNNNN_name.down.sql, and the
// catalog also hands golang-migrate an iofs source over the same files. The catalog is stricter
// than iofs, which skips names it cannot parse: a typo there would silently drop a migration, so
// here every *.sql file must parse, versions must be unique, and every up file needs a down file
// unless it is marked irreversible.
package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	msource "github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// ErrInvalid marks every error about the migration files themselves (names, duplicates,
// directives, missing files). The CLI maps it to the usage exit code: nothing was touched.
var ErrInvalid = errors.New("invalid migrations")

// ErrEmpty is returned (together with ErrInvalid) for a directory without migrations.
var ErrEmpty = errors.New("no migrations")

// File is one direction of a migration.
type File struct {
	Name          string // file name, e.g. 000001_create_users.up.sql
	SQL           string
	NoTransaction bool // "-- schemahook:no-transaction": run statement by statement, outside a transaction

	control error // transaction control of its own in a transactional file (see Runnable)
}

// Runnable returns nil when the file may run: a transactional file must not begin, end or
// split its transaction itself. Such a file is refused only where it would run (Catalog.Runnable),
// not when the catalog is read: golang-migrate wraps nothing in a transaction, so files it
// applied often say BEGIN … COMMIT themselves, and a database adopted from it must stay
// readable by every command, the gate first.
func (f *File) Runnable() error { return f.control }

// NewFile returns a file of SQL that did not come from a catalog (a down migration stored in the
// history), checked as the catalog checks its own.
func NewFile(name, sql string, noTransaction bool) *File {
	f := &File{Name: name, SQL: sql, NoTransaction: noTransaction}
	f.control = transactionControl(f)
	return f
}

// Migration is a versioned pair of files.
type Migration struct {
	Version      uint
	Name         string // the part between the version and the direction, e.g. create_users
	Up           File
	Checksum     string // hex SHA-256 of the up file, compared with the database's history
	Irreversible bool   // "-- schemahook:irreversible" in the up file

	downName string   // from the directory listing; "" when irreversible
	down     *File    // set by Catalog.ReadDowns
	catalog  *Catalog // nil for a migration built outside a catalog
}

// DownName is the name of the down file, known from the directory listing without reading it;
// "" for an irreversible migration.
func (m *Migration) DownName() string { return m.downName }

// Down returns the down file, reading the catalog's down files on first use (see
// Catalog.ReadDowns), or nil for an irreversible migration.
func (m *Migration) Down() (*File, error) {
	if m.downName == "" || m.catalog == nil {
		return nil, nil
	}
	if err := m.catalog.ReadDowns(); err != nil {
		return nil, err
	}
	return m.down, nil
}

// Catalog is the ordered, validated set of migrations of one directory.
type Catalog struct {
	fsys       fs.FS
	dir        string
	migrations []*Migration

	downsOnce sync.Once
	downsErr  error

	warnMu    sync.Mutex // warnings come from Open and, for down files, from ReadDowns
	warnings  []string
	onWarning func(string)
}

// Load reads and validates every *.sql file in dir of fsys. Other files (embed.go, README) are
// ignored. An empty directory is an error: running against it would be a no-op that looks like
// success while the real migrations are elsewhere.
func Load(fsys fs.FS, dir string) (*Catalog, error) { return load(fsys, dir, true) }

// Open is Load without reading the down files: they are listed (a missing one is still an
// error) and read on first use, by Migration.Down or Catalog.ReadDowns. Update, check and
// status run on every deploy and every sync, and a schema that is already current needs only
// the up files, for their checksums: this halves the files read on that path.
func Open(fsys fs.FS, dir string) (*Catalog, error) { return load(fsys, dir, false) }

// ReadDowns reads and validates the down files of a catalog from Open, once; later calls return
// the first call's result. Whatever applies or records migrations calls it before changing
// anything, so a bad down file stops an update before its first migration.
func (c *Catalog) ReadDowns() error {
	c.downsOnce.Do(func() {
		var names []string
		for _, m := range c.migrations {
			if m.downName != "" {
				names = append(names, m.downName)
			}
		}
		bodies, err := readAll(c.fsys, c.dir, names)
		if err != nil {
			c.downsErr = err
			return
		}
		var problems []error
		i := 0
		for _, m := range c.migrations {
			if m.downName != "" {
				problems = m.setDown(bodies[i], problems)
				i++
			}
		}
		c.downsErr = c.invalid(problems)
	})
	return c.downsErr
}

// setDown validates and records the down file's content, appending what is wrong to problems.
func (m *Migration) setDown(body string, problems []error) []error {
	dirs, err := ParseDirectives(body)
	switch {
	case err != nil:
		return append(problems, fmt.Errorf("%s: %w", m.downName, err))
	case dirs.Has(DirectiveIrreversible):
		return append(problems, fmt.Errorf("%s: the irreversible directive belongs in the up file", m.downName))
	}
	m.catalog.emptyFile(m.downName, body)
	m.down = &File{Name: m.downName, SQL: body, NoTransaction: dirs.Has(DirectiveNoTransaction)}
	m.down.control = transactionControl(m.down)
	return problems
}

// FileName is a parsed migration file name: golang-migrate's NNN_name.(up|down).ext with the
// extension fixed to sql.
type FileName struct {
	Version string // the digits, as written
	Name    string
	Up      bool // .up.sql rather than .down.sql
}

// ParseFileName parses golang-migrate's pattern ^([0-9]+)_(.+)\.(up|down)\.sql$ by hand: Load
// runs it on every file of every update, and the regexp's allocations were most of its cost.
func ParseFileName(s string) (FileName, bool) {
	var f FileName
	rest, ok := strings.CutSuffix(s, ".up.sql")
	if f.Up = ok; !ok {
		if rest, ok = strings.CutSuffix(s, ".down.sql"); !ok {
			return f, false
		}
	}
	digits := 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		digits++
	}
	if digits == 0 || digits+1 >= len(rest) || rest[digits] != '_' {
		return f, false
	}
	f.Version, f.Name = rest[:digits], rest[digits+1:]
	return f, true
}

func load(fsys fs.FS, dir string, downs bool) (*Catalog, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("%w: reading migrations directory %q: %w", ErrInvalid, dir, err)
	}
	c := &Catalog{fsys: fsys, dir: dir}
	byVersion := map[uint]*Migration{}
	var problems []error
	type read struct {
		m  *Migration
		up bool
	}
	var names []string // the files to read now, in the order of toRead
	var toRead []read
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			if !e.IsDir() {
				c.strayFile(e.Name())
			}
			continue
		}
		name := e.Name()
		fn, ok := ParseFileName(name)
		if !ok {
			problems = append(problems, fmt.Errorf("%s: file name must look like 000001_create_users.up.sql (or .down.sql)", name))
			continue
		}
		// 63 bits, not 64: schema_migrations.version is a bigint and the driver works with int
		// versions (NilVersion is -1), so a larger version would wrap negative — seen as
		// "database newer than this release" or recorded as a negative version.
		v, err := strconv.ParseUint(fn.Version, 10, 63)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: version %q is out of range (at most 9223372036854775807, PostgreSQL's bigint)", name, fn.Version))
			continue
		}
		mig := byVersion[uint(v)]
		if mig == nil {
			mig = &Migration{Version: uint(v), Name: fn.Name, catalog: c}
			byVersion[uint(v)] = mig
		}
		switch {
		case mig.Name != fn.Name:
			problems = append(problems, fmt.Errorf("%s: version %d is also used by %q: each version needs exactly one name", name, v, mig.Name))
		case fn.Up && mig.Up.Name != "":
			problems = append(problems, fmt.Errorf("%s: duplicate up migration for version %d (also %s)", name, v, mig.Up.Name))
		case !fn.Up && mig.downName != "":
			problems = append(problems, fmt.Errorf("%s: duplicate down migration for version %d (also %s)", name, v, mig.downName))
		case fn.Up:
			mig.Up.Name = name
			names, toRead = append(names, name), append(toRead, read{mig, true})
		default:
			mig.downName = name
			if downs {
				names, toRead = append(names, name), append(toRead, read{mig, false})
			}
		}
	}
	bodies, err := readAll(fsys, dir, names)
	if err != nil {
		return nil, err
	}
	for i, r := range toRead {
		if !r.up {
			problems = r.m.setDown(bodies[i], problems)
			continue
		}
		m := r.m
		dirs, err := ParseDirectives(bodies[i])
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", m.Up.Name, err))
			continue
		}
		c.emptyFile(m.Up.Name, bodies[i])
		m.Up.SQL, m.Up.NoTransaction = bodies[i], dirs.Has(DirectiveNoTransaction)
		m.Irreversible = dirs.Has(DirectiveIrreversible)
		m.Up.control = transactionControl(&m.Up)
		sum := sha256.Sum256([]byte(bodies[i]))
		m.Checksum = hex.EncodeToString(sum[:])
	}
	for _, mig := range byVersion {
		switch {
		case mig.Up.Name == "":
			problems = append(problems, fmt.Errorf("version %d (%s): down file without an up file", mig.Version, mig.Name))
		case mig.downName == "" && !mig.Irreversible:
			problems = append(problems, fmt.Errorf("%s: missing %s: add a down file, or mark the up file with %q if it cannot be undone",
				mig.Up.Name, strings.TrimSuffix(mig.Up.Name, ".up.sql")+".down.sql", "-- schemahook:"+DirectiveIrreversible))
		case mig.downName != "" && mig.Irreversible:
			problems = append(problems, fmt.Errorf("%s: marked irreversible but %s exists: remove one of them", mig.Up.Name, mig.downName))
		}
		c.migrations = append(c.migrations, mig)
	}
	if err := c.invalid(problems); err != nil {
		return nil, err
	}
	if len(c.migrations) == 0 {
		return nil, fmt.Errorf("%w: %w in %s: expected files like 000001_init.up.sql", ErrInvalid, ErrEmpty, describe(dir))
	}
	slices.SortFunc(c.migrations, func(a, b *Migration) int { return cmpUint(a.Version, b.Version) })
	if downs {
		c.downsOnce.Do(func() {}) // read above, together with the up files
	}
	return c, nil
}

// invalid turns the problems found in the files into one ErrInvalid error, sorted so that the
// message does not depend on the order the files were read in; nil when there are none.
// Runnable returns an ErrInvalid error naming every file of migs that may not run (see
// File.Runnable): their up files and, when read (ReadDowns), their down files, which the
// history stores for a later downgrade. Callers check the migrations a command is about to
// run, before anything runs.
func (c *Catalog) Runnable(migs []*Migration) error {
	var problems []error
	for _, m := range migs {
		if err := m.Up.Runnable(); err != nil {
			problems = append(problems, err)
		}
		if m.down != nil {
			if err := m.down.Runnable(); err != nil {
				problems = append(problems, err)
			}
		}
	}
	return c.invalid(problems)
}

func (c *Catalog) invalid(problems []error) error {
	if len(problems) == 0 {
		return nil
	}
	slices.SortFunc(problems, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	msgs := make([]string, len(problems))
	for i, e := range problems {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%w in %s:\n  %s", ErrInvalid, describe(c.dir), strings.Join(msgs, "\n  "))
}

// readAll reads the named files of dir concurrently. Load runs on every update, including the
// no-op on every deploy and sync, and with hundreds of files its time is almost all
// open/read/close system calls, which overlap well. Each worker reads into one reusable buffer
// and keeps an exact-size copy: no stat call, no 512-byte minimum buffer, no second copy to a
// string — on that path every page of fresh memory is a page fault.
func readAll(fsys fs.FS, dir string, names []string) ([]string, error) {
	bodies := make([]string, len(names))
	errs := make([]error, len(names))
	// Workers take the next file from a shared counter: handing each file over a channel
	// cost a goroutine switch per file, more than reading it.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(4, len(names)) {
		wg.Go(func() {
			var buf []byte
			for i := next.Add(1) - 1; i < int64(len(names)); i = next.Add(1) - 1 {
				bodies[i], buf, errs[i] = readFile(fsys, path.Join(dir, names[i]), buf)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %w", ErrInvalid, names[i], err)
		}
	}
	return bodies, nil
}

// readFile reads name into buf (grown as needed and returned for reuse) and returns a copy.
func readFile(fsys fs.FS, name string, buf []byte) (string, []byte, error) {
	var f io.ReadCloser
	var err error
	if d, ok := fsys.(dirFS); ok {
		f, err = d.open(name)
	} else {
		f, err = fsys.Open(name)
	}
	if err != nil {
		return "", buf, err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return string(buf), buf, nil
		}
		if err != nil {
			return "", buf, err
		}
	}
}

func describe(dir string) string {
	if dir == "." {
		return "the migrations directory"
	}
	return dir
}

func cmpUint(a, b uint) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Migrations returns the migrations in ascending version order. The slice must not be modified.
func (c *Catalog) Migrations() []*Migration { return c.migrations }

// Head returns the highest version; a loaded catalog always has one.
func (c *Catalog) Head() *Migration { return c.migrations[len(c.migrations)-1] }

// Lookup returns the migration with version v, or nil.
func (c *Catalog) Lookup(v uint) *Migration {
	i, ok := slices.BinarySearchFunc(c.migrations, v, func(m *Migration, v uint) int { return cmpUint(m.Version, v) })
	if !ok {
		return nil
	}
	return c.migrations[i]
}

// After returns the migrations with a version above v (all of them when v is nil).
func (c *Catalog) After(v *uint) []*Migration {
	if v == nil {
		return c.migrations
	}
	i, _ := slices.BinarySearchFunc(c.migrations, *v+1, func(m *Migration, v uint) int { return cmpUint(m.Version, v) })
	return c.migrations[i:]
}

// Driver returns golang-migrate's iofs source over the same files.
func (c *Catalog) Driver() (msource.Driver, error) {
	// iofs would list the directory itself and parse every name like NNN_name.up.EXT, so a
	// file Load ignores on purpose (000003_x.up.sql.orig left by a merge tool, NNN_x.down.md)
	// would become a duplicate version (iofs refuses to start) or a version the catalog never
	// validated. It gets exactly the files of the catalog.
	d, err := iofs.New(catalogFS{c}, c.dir)
	if err != nil {
		return nil, fmt.Errorf("opening migration source: %w", err)
	}
	return d, nil
}

// catalogFS serves golang-migrate the catalog itself: its directory lists only the catalog's
// migration files, and opening one returns the bytes Load read and checksummed, so what runs
// is exactly what was validated even if the directory changes meanwhile, and no file is read
// twice. Anything else is passed through to the underlying file system.
type catalogFS struct{ c *Catalog }

func (f catalogFS) Open(name string) (fs.File, error) {
	if path.Dir(name) == path.Clean(f.c.dir) {
		if m, up := f.c.fileOf(path.Base(name)); m != nil {
			body := m.Up.SQL
			if !up {
				// golang-migrate opens a down file only to run it; the driver has read them all
				// by then, so this is the error of that read, never a fallback to the disk.
				down, err := m.Down()
				if err != nil {
					return nil, err
				}
				body = down.SQL
			}
			return &memFile{Reader: strings.NewReader(body), info: memInfo{name: path.Base(name), size: int64(len(body))}}, nil
		}
	}
	return f.c.fsys.Open(name)
}

// ReadDir lists the catalog's own directory from memory: golang-migrate lists it once per run,
// and reading it from disk again would only find what Load found, or a change to ignore.
func (f catalogFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if path.Clean(name) != path.Clean(f.c.dir) {
		return fs.ReadDir(f.c.fsys, name)
	}
	if err := f.c.ReadDowns(); err != nil { // their sizes, and whether they are usable
		return nil, err
	}
	entries := make([]fs.DirEntry, 0, 2*len(f.c.migrations))
	for _, m := range f.c.migrations {
		entries = append(entries, fs.FileInfoToDirEntry(memInfo{name: m.Up.Name, size: int64(len(m.Up.SQL))}))
		if m.down != nil {
			entries = append(entries, fs.FileInfoToDirEntry(memInfo{name: m.down.Name, size: int64(len(m.down.SQL))}))
		}
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// fileOf returns the migration that name is a file of, and whether it is the up file; nil when
// name is not one of the catalog's files.
func (c *Catalog) fileOf(name string) (m *Migration, up bool) {
	fn, ok := ParseFileName(name)
	if !ok {
		return nil, false
	}
	v, err := strconv.ParseUint(fn.Version, 10, 63)
	if err != nil {
		return nil, false
	}
	switch m := c.Lookup(uint(v)); {
	case m == nil:
	case m.Up.Name == name:
		return m, true
	case m.downName == name:
		return m, false
	}
	return nil, false
}

type memFile struct {
	*strings.Reader
	info memInfo
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
