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
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
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
}

// Migration is a versioned pair of files.
type Migration struct {
	Version      uint
	Name         string // the part between the version and the direction, e.g. create_users
	Up           File
	Down         *File  // nil only for irreversible migrations
	Checksum     string // hex SHA-256 of the up file, compared with the database's history
	Irreversible bool   // "-- schemahook:irreversible" in the up file
}

// Catalog is the ordered, validated set of migrations of one directory.
type Catalog struct {
	fsys       fs.FS
	dir        string
	migrations []*Migration
}

// fileRE is golang-migrate's file name pattern, restricted to .sql files.
var fileRE = regexp.MustCompile(`^([0-9]+)_(.+)\.(up|down)\.sql$`)

// Load reads and validates every *.sql file in dir of fsys. Other files (embed.go, README) are
// ignored. An empty directory is an error: running against it would be a no-op that looks like
// success while the real migrations are elsewhere.
func Load(fsys fs.FS, dir string) (*Catalog, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("%w: reading migrations directory %q: %w", ErrInvalid, dir, err)
	}
	bodies, err := readAll(fsys, dir, entries)
	if err != nil {
		return nil, err
	}
	byVersion := map[uint]*Migration{}
	var problems []error
	for i, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := e.Name()
		m := fileRE.FindStringSubmatch(name)
		if m == nil {
			problems = append(problems, fmt.Errorf("%s: file name must look like 000001_create_users.up.sql (or .down.sql)", name))
			continue
		}
		// 63 bits, not 64: schema_migrations.version is a bigint and the driver works with int
		// versions (NilVersion is -1), so a larger version would wrap negative — seen as
		// "database newer than this release" or recorded as a negative version.
		v, err := strconv.ParseUint(m[1], 10, 63)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: version %q is out of range (at most 9223372036854775807, PostgreSQL's bigint)", name, m[1]))
			continue
		}
		body := bodies[i]
		dirs, err := ParseDirectives(string(body))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
			continue
		}
		mig := byVersion[uint(v)]
		if mig == nil {
			mig = &Migration{Version: uint(v), Name: m[2]}
			byVersion[uint(v)] = mig
		}
		f := File{Name: name, SQL: string(body), NoTransaction: dirs.Has(DirectiveNoTransaction)}
		switch {
		case mig.Name != m[2]:
			problems = append(problems, fmt.Errorf("%s: version %d is also used by %q: each version needs exactly one name", name, v, mig.Name))
		case m[3] == "up" && mig.Up.Name != "":
			problems = append(problems, fmt.Errorf("%s: duplicate up migration for version %d (also %s)", name, v, mig.Up.Name))
		case m[3] == "down" && mig.Down != nil:
			problems = append(problems, fmt.Errorf("%s: duplicate down migration for version %d (also %s)", name, v, mig.Down.Name))
		case m[3] == "up":
			mig.Up = f
			mig.Irreversible = dirs.Has(DirectiveIrreversible)
			sum := sha256.Sum256(body)
			mig.Checksum = hex.EncodeToString(sum[:])
		default:
			if dirs.Has(DirectiveIrreversible) {
				problems = append(problems, fmt.Errorf("%s: the irreversible directive belongs in the up file", name))
			}
			mig.Down = &f
		}
	}
	c := &Catalog{fsys: fsys, dir: dir}
	for _, mig := range byVersion {
		switch {
		case mig.Up.Name == "":
			problems = append(problems, fmt.Errorf("version %d (%s): down file without an up file", mig.Version, mig.Name))
		case mig.Down == nil && !mig.Irreversible:
			problems = append(problems, fmt.Errorf("%s: missing %s: add a down file, or mark the up file with %q if it cannot be undone",
				mig.Up.Name, strings.TrimSuffix(mig.Up.Name, ".up.sql")+".down.sql", "-- schemahook:"+DirectiveIrreversible))
		case mig.Down != nil && mig.Irreversible:
			problems = append(problems, fmt.Errorf("%s: marked irreversible but %s exists: remove one of them", mig.Up.Name, mig.Down.Name))
		}
		c.migrations = append(c.migrations, mig)
	}
	if len(problems) > 0 {
		slices.SortFunc(problems, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		msgs := make([]string, len(problems))
		for i, e := range problems {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%w in %s:\n  %s", ErrInvalid, describe(dir), strings.Join(msgs, "\n  "))
	}
	if len(c.migrations) == 0 {
		return nil, fmt.Errorf("%w: %w in %s: expected files like 000001_init.up.sql", ErrInvalid, ErrEmpty, describe(dir))
	}
	slices.SortFunc(c.migrations, func(a, b *Migration) int { return cmpUint(a.Version, b.Version) })
	return c, nil
}

// readAll reads the *.sql entries concurrently (nil for others). Load runs on every update,
// including the no-op on every deploy and sync, and with hundreds of files its time is almost
// all open/read/close system calls, which overlap well.
func readAll(fsys fs.FS, dir string, entries []fs.DirEntry) ([][]byte, error) {
	bodies := make([][]byte, len(entries))
	errs := make([]error, len(entries))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(8, len(entries)) {
		wg.Go(func() {
			for i := range next {
				bodies[i], errs[i] = fs.ReadFile(fsys, path.Join(dir, entries[i].Name()))
			}
		})
	}
	for i, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %w", ErrInvalid, entries[i].Name(), err)
		}
	}
	return bodies, nil
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
		if body, ok := f.c.file(path.Base(name)); ok {
			return &memFile{Reader: strings.NewReader(body), info: memInfo{name: path.Base(name), size: int64(len(body))}}, nil
		}
	}
	return f.c.fsys.Open(name)
}

func (f catalogFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(f.c.fsys, name)
	if err != nil || path.Clean(name) != path.Clean(f.c.dir) {
		return entries, err
	}
	return slices.DeleteFunc(entries, func(e fs.DirEntry) bool {
		_, ok := f.c.file(e.Name())
		return !ok
	}), nil
}

// file returns the content of one of the catalog's migration files by name.
func (c *Catalog) file(name string) (string, bool) {
	m := fileRE.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	v, err := strconv.ParseUint(m[1], 10, 63)
	if err != nil {
		return "", false
	}
	mig := c.Lookup(uint(v))
	switch {
	case mig == nil:
	case mig.Up.Name == name:
		return mig.Up.SQL, true
	case mig.Down != nil && mig.Down.Name == name:
		return mig.Down.SQL, true
	}
	return "", false
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
