package lint

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	_ "unsafe" // go:linkname, see libPGQuery

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	pgparser "github.com/wasilibs/go-pgquery/parser"
	"github.com/wasilibs/wazero-helpers/allocator"
)

// Why this file exists: go-pgquery compiles its 2 MB WebAssembly build of libpg_query into
// machine code on every process start (its runtime takes only an in-memory compilation cache and
// offers no way to configure one), which costs seconds and ~250 MB — too slow for a pre-commit
// hook. The module and its host functions are the library's, reached with go:linkname since
// they live in internal packages; this file runs them in a wazero runtime whose compilation
// cache is a directory under the user's cache dir, so only the first run on a machine compiles.
// When that directory cannot be created (read-only root file system in a pod, no HOME) the
// cache stays in memory, silently: lint still works, only slower.

//go:linkname libPGQuery github.com/wasilibs/go-pgquery/internal/wasm.LibPGQuery
var libPGQuery []byte

//go:linkname wasixInstantiate github.com/wasilibs/go-pgquery/internal/wasix32v1.MustInstantiate
func wasixInstantiate(ctx context.Context, r wazero.Runtime)

// wasixContext carries the setjmp/longjmp state libpg_query's error handling needs per call.
//
//go:linkname wasixContext github.com/wasilibs/go-pgquery/internal/wasix32v1.BackgroundContext
func wasixContext() context.Context

// CacheDirEnv overrides where the compiled parser is cached; "off" disables the disk cache.
const CacheDirEnv = "SCHEMAHOOK_CACHE_DIR"

var (
	pqOnce sync.Once
	pq     *pgQuery
	pqErr  error
	pqMu   sync.Mutex // the module instance is single-threaded
)

type pgQuery struct {
	mod                          api.Module
	malloc, free, parse, freeRes api.Function
}

// cacheDir returns the compilation cache directory, or "" for none.
func cacheDir() string {
	if d := os.Getenv(CacheDirEnv); d != "" {
		if d == "off" {
			return ""
		}
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	// One subdirectory per module build: wazero keys entries by the module's hash already,
	// but separating them lets an old build's entries be removed by deleting one directory.
	sum := sha256.Sum256(libPGQuery)
	return filepath.Join(base, "schemahook", "pgquery-"+hex.EncodeToString(sum[:6]))
}

func newCache() wazero.CompilationCache {
	if dir := cacheDir(); dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			return c
		}
	}
	return wazero.NewCompilationCache()
}

func loadPGQuery() (*pgQuery, error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(newCache()).
		// Without debug info a cached module loads in a few large reads; with it, wazero
		// reads a source map entry by entry (half a million system calls, ~0.5 s). It only
		// names functions in the parser's own stack traces, which a user never sees.
		WithDebugInfoEnabled(false).
		WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesThreads))
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	wasixInstantiate(ctx, rt)
	code, err := rt.CompileModule(ctx, libPGQuery)
	if err != nil {
		return nil, fmt.Errorf("loading the SQL parser: %w", err)
	}
	mctx := experimental.WithMemoryAllocator(ctx, allocator.NewNonMoving())
	mod, err := rt.InstantiateModule(mctx, code, wazero.NewModuleConfig().
		WithSysNanotime().WithStdout(os.Stderr).WithStderr(os.Stderr).WithStartFunctions("_initialize"))
	if err != nil {
		return nil, fmt.Errorf("starting the SQL parser: %w", err)
	}
	p := &pgQuery{
		mod:     mod,
		malloc:  mod.ExportedFunction("malloc"),
		free:    mod.ExportedFunction("free"),
		parse:   mod.ExportedFunction("pg_query_parse"),
		freeRes: mod.ExportedFunction("pg_query_free_parse_result"),
	}
	if init := mod.ExportedFunction("pg_query_init"); init != nil {
		if _, err := init.Call(ctx); err != nil {
			return nil, fmt.Errorf("starting the SQL parser: %w", err)
		}
	}
	if p.malloc == nil || p.free == nil || p.parse == nil || p.freeRes == nil {
		return nil, errors.New("starting the SQL parser: the module lacks pg_query_parse")
	}
	return p, nil
}

var errMemory = errors.New("SQL parser: memory access out of range")

// parseToJSON is libpg_query's pg_query_parse: the JSON parse tree, or a *pgparser.Error.
func parseToJSON(sql string) (string, error) {
	pqOnce.Do(func() { pq, pqErr = loadPGQuery() })
	if pqErr != nil {
		return "", pqErr
	}
	pqMu.Lock()
	defer pqMu.Unlock()
	return pq.parseJSON(sql)
}

func (p *pgQuery) call(ctx context.Context, f api.Function, args ...uint64) (uint64, error) {
	res, err := f.Call(ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("SQL parser: %w", err)
	}
	if len(res) == 0 {
		return 0, nil
	}
	return res[0], nil
}

func (p *pgQuery) parseJSON(sql string) (string, error) {
	ctx := wasixContext()
	mem := p.mod.Memory()
	in, err := p.call(ctx, p.malloc, uint64(len(sql)+1))
	if err != nil {
		return "", err
	}
	defer p.call(ctx, p.free, in) //nolint:errcheck // freeing wasm memory cannot fail usefully
	if !mem.WriteString(uint32(in), sql) || !mem.WriteByte(uint32(in)+uint32(len(sql)), 0) {
		return "", errMemory
	}
	// PgQueryParseResult {char *parse_tree; char *stderr_buffer; PgQueryError *error}: 12 bytes
	// on wasm32, returned through a pointer the caller allocates.
	res, err := p.call(ctx, p.malloc, 12)
	if err != nil {
		return "", err
	}
	defer p.call(ctx, p.free, res) //nolint:errcheck // as above
	if _, err := p.call(ctx, p.parse, res, in); err != nil {
		return "", err
	}
	defer p.call(ctx, p.freeRes, res) //nolint:errcheck // as above
	buf, ok := mem.Read(uint32(res), 12)
	if !ok {
		return "", errMemory
	}
	if e := binary.LittleEndian.Uint32(buf[8:]); e != 0 {
		// PgQueryError {message, funcname, filename; int lineno, cursorpos; context}
		pe := &pgparser.Error{}
		pe.Message = cString(mem, e)
		pe.Funcname = cString(mem, e+4)
		pe.Filename = cString(mem, e+8)
		if v, ok := mem.ReadUint32Le(e + 12); ok {
			pe.Lineno = int(v)
		}
		if v, ok := mem.ReadUint32Le(e + 16); ok {
			pe.Cursorpos = int(v)
		}
		pe.Context = cString(mem, e+20)
		return "", pe
	}
	return cString(mem, uint32(res)), nil
}

// cString reads the NUL-terminated string whose address is stored at ptrptr.
func cString(mem api.Memory, ptrptr uint32) string {
	ptr, ok := mem.ReadUint32Le(ptrptr)
	if !ok || ptr == 0 {
		return ""
	}
	end := ptr
	for {
		b, ok := mem.ReadByte(end)
		if !ok || b == 0 {
			break
		}
		end++
	}
	buf, _ := mem.Read(ptr, end-ptr)
	return string(buf)
}
