// Package file is the objects driver for a directory on local disk, the
// embedded default: file:///abs/dir. The directory is created if missing.
//
// Every object is one file under its key's path that holds its attributes
// (content type, metadata, ETag) and its body together, so an object is
// never seen without its attributes or the other way round. A write goes
// to a temporary file in the bucket's directory of temporary files,
// written with the header in one call (a body in pieces, objects.Buffers,
// in one writev(2) with it) and flushed with fdatasync(2) (its data and
// size), then moved under its name (rename(2); renameat2(2) with
// RENAME_NOREPLACE for a conditional create, which fails atomically when
// the name exists, or link(2) where the file system has no such rename),
// and the object's directory is fsynced (writers that finish together
// share one fsync that started after their names were made): a Put that
// returned survives a power loss, and a crash mid-write leaves no partial
// object under the key. A directory is held open while writers use it,
// and the calls are made relative to it.
//
// A temporary file is locked (flock(2)) by its writer until its name is
// gone, so what a killed writer left behind can be told from a live
// writer's file, whichever process it is in: opening a bucket removes, in
// the background, the temporary files that no writer holds and that were
// last written more than TempGrace ago (the age also spares the files of
// versions that did not lock them). It reads the directory of temporary
// files alone, whatever the bucket's size; earlier versions left their
// temporary files beside the objects, which the first open of a bucket
// walks it for, once. Listings never show temporary files.
//
// Objects written by earlier versions (the body alone, attributes in a
// sidecar "<key>.attrs" file) are read as they are; keys ending in
// ".attrs" are therefore refused.
package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	"github.com/intercloud/intercloud/internal/datasync"
	"github.com/intercloud/intercloud/objects"
)

// TempGrace is how long after its last write a temporary file that no
// writer holds is kept by the sweep at open.
const TempGrace = 15 * time.Minute

// Scheme is the URL scheme this driver registers.
const Scheme = "file"

func init() { objects.Register(Scheme, open) }

func open(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return OpenBucket(u.Path)
}

// magic starts every object file this driver writes; then a big-endian
// uint32 length and that many bytes of JSON header, then the body. A file
// without it is an object of an earlier version (body only).
const magic = "\x00icobj1\n"

// legacyAttrs is the suffix of the sidecar attribute files of earlier
// versions.
const legacyAttrs = ".attrs"

// tempMark starts the names of temporary files. It is not valid UTF-8, so
// no key can name such a file and listings skip them.
const tempMark = ".\xfftmp-"

// tempDirName is the directory, under the bucket's, of the temporary
// files (its name starts with tempMark, so listings skip it). In it,
// sweptMark, a directory, says that the temporary files earlier versions
// left beside the objects were swept.
const (
	tempDirName = tempMark + "files"
	sweptMark   = "swept-beside-objects"
)

// header is the JSON stored before an object's body.
type header struct {
	ContentType        string            `json:"content_type,omitempty"`
	CacheControl       string            `json:"cache_control,omitempty"`
	ContentDisposition string            `json:"content_disposition,omitempty"`
	ContentEncoding    string            `json:"content_encoding,omitempty"`
	ContentLanguage    string            `json:"content_language,omitempty"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	ETag               string            `json:"etag,omitempty"`
}

// legacyHeader is the sidecar JSON of earlier versions.
type legacyHeader struct {
	CacheControl       string            `json:"user.cache_control"`
	ContentDisposition string            `json:"user.content_disposition"`
	ContentEncoding    string            `json:"user.content_encoding"`
	ContentLanguage    string            `json:"user.content_language"`
	ContentType        string            `json:"user.content_type"`
	Metadata           map[string]string `json:"user.metadata"`
}

var (
	errExists        = errors.New("file: object already exists")
	errInvalidKey    = errors.New("file: key cannot be stored in a file system")
	errUnimplemented = errors.New("file: not implemented")
)

// OpenBucket opens (creating if needed) a directory as a bucket.
func OpenBucket(dir string) (*blob.Bucket, error) {
	if dir == "" {
		return nil, fmt.Errorf("file: a directory path is required (file:///abs/dir)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("file: open %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file: open %s: not a directory", dir)
	}
	b := newBucket(abs)
	b.startSweep()
	return blob.NewBucket(b), nil
}

func newBucket(dir string) *bucket {
	return &bucket{dir: dir, tempDir: filepath.Join(dir, tempDirName), durable: map[string]bool{dir: true},
		dirs: map[string]*dirHandle{}, syncFile: datasync.File, fsyncDir: syncDirFile}
}

// bucket implements gocloud's driver.Bucket over a directory.
type bucket struct {
	dir string
	// tempDir holds the temporary files of writes in progress (and those
	// killed writers left), so that the sweep at open reads it alone,
	// however large the bucket.
	tempDir string
	// syncFile flushes a written file (datasync.File) and fsyncDir an open
	// directory (syncDirFile); tests watch or fail them.
	syncFile func(f *os.File) error
	fsyncDir func(d *os.File) error

	mu      sync.Mutex
	durable map[string]bool       // directories whose entry in their parent is fsynced
	dirs    map[string]*dirHandle // directories writers are using, by path

	// The sweep of temporary files started at open: cancelled and
	// waited for by Close.
	stopSweep func()
	swept     chan struct{} // closed when the sweep has ended
}

// maxDurable bounds the set of directories known to be durable; past it
// the set starts over (the cost is one more fsync per directory).
const maxDurable = 4096

// path returns the file of a key.
func (b *bucket) path(key string) (string, error) {
	if strings.HasSuffix(key, legacyAttrs) {
		return "", fmt.Errorf("%w: %q ends in %q", errInvalidKey, key, legacyAttrs)
	}
	if strings.ContainsRune(key, 0) {
		return "", fmt.Errorf("%w: %q holds a NUL byte", errInvalidKey, key)
	}
	if err := objects.ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.dir, filepath.FromSlash(key)), nil
}

func (b *bucket) ErrorCode(err error) gcerrors.ErrorCode {
	switch {
	case errors.Is(err, errExists):
		return gcerrors.FailedPrecondition
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return gcerrors.NotFound
	case errors.Is(err, errInvalidKey), errors.Is(err, objects.ErrInvalidKey), errors.Is(err, syscall.ENAMETOOLONG):
		return gcerrors.InvalidArgument
	case errors.Is(err, errUnimplemented):
		return gcerrors.Unimplemented
	case errors.Is(err, context.Canceled):
		return gcerrors.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return gcerrors.DeadlineExceeded
	}
	return gcerrors.Unknown
}

func (b *bucket) As(i any) bool { return false }

func (b *bucket) ErrorAs(err error, i any) bool {
	if p, ok := i.(**os.PathError); ok {
		return errors.As(err, p)
	}
	return false
}

// Close stops the sweep of temporary files if it still runs. Nothing
// else is to release: a directory is held open only while a writer uses
// it, and its last writer closes it.
func (b *bucket) Close() error {
	if b.stopSweep != nil {
		b.stopSweep()
		<-b.swept
	}
	return nil
}

func (b *bucket) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	return "", fmt.Errorf("%w: signed URLs", errUnimplemented)
}

// stored is an open object file: its header, where its body starts and
// its size.
type stored struct {
	f       *os.File
	hdr     header
	bodyOff int64
	size    int64
	modTime time.Time
}

// openObject opens the file of key and reads its header.
func (b *bucket) openObject(key string) (*stored, error) {
	path, err := b.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s, err := readHeader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// readHeader reads the header of an open object file.
func readHeader(f *os.File, path string) (*stored, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &os.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	s := &stored{f: f, modTime: fi.ModTime()}
	var pre [len(magic) + 4]byte
	n, err := io.ReadFull(f, pre[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n == len(pre) && string(pre[:len(magic)]) == magic {
		hlen := int64(binary.BigEndian.Uint32(pre[len(magic):]))
		if hlen > fi.Size()-int64(len(pre)) {
			return nil, fmt.Errorf("file: %s: truncated header", path)
		}
		raw := make([]byte, hlen)
		if _, err := io.ReadFull(f, raw); err != nil {
			return nil, fmt.Errorf("file: %s: header: %w", path, err)
		}
		if err := json.Unmarshal(raw, &s.hdr); err != nil {
			return nil, fmt.Errorf("file: %s: header: %w", path, err)
		}
		s.bodyOff = int64(len(pre)) + hlen
		s.size = fi.Size() - s.bodyOff
		return s, nil
	}
	// An object of an earlier version: the body alone, attributes in a
	// sidecar file when it has any.
	s.size = fi.Size()
	s.hdr = header{ContentType: "application/octet-stream",
		ETag: fmt.Sprintf("\"%x-%x\"", fi.ModTime().UnixNano(), fi.Size())}
	if raw, err := os.ReadFile(path + legacyAttrs); err == nil {
		var lh legacyHeader
		if err := json.Unmarshal(raw, &lh); err != nil {
			return nil, fmt.Errorf("file: %s%s: %w", path, legacyAttrs, err)
		}
		s.hdr.ContentType, s.hdr.Metadata = lh.ContentType, lh.Metadata
		s.hdr.CacheControl, s.hdr.ContentDisposition = lh.CacheControl, lh.ContentDisposition
		s.hdr.ContentEncoding, s.hdr.ContentLanguage = lh.ContentEncoding, lh.ContentLanguage
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s, nil
}

func (b *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	s, err := b.openObject(key)
	if err != nil {
		return nil, err
	}
	s.f.Close()
	return &driver.Attributes{
		CacheControl:       s.hdr.CacheControl,
		ContentDisposition: s.hdr.ContentDisposition,
		ContentEncoding:    s.hdr.ContentEncoding,
		ContentLanguage:    s.hdr.ContentLanguage,
		ContentType:        s.hdr.ContentType,
		Metadata:           s.hdr.Metadata,
		ModTime:            s.modTime,
		Size:               s.size,
		ETag:               s.hdr.ETag,
	}, nil
}

func (b *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	s, err := b.openObject(key)
	if err != nil {
		return nil, err
	}
	if opts != nil && opts.BeforeRead != nil {
		if err := opts.BeforeRead(func(any) bool { return false }); err != nil {
			s.f.Close()
			return nil, err
		}
	}
	offset = min(offset, s.size)
	if _, err := s.f.Seek(s.bodyOff+offset, io.SeekStart); err != nil {
		s.f.Close()
		return nil, err
	}
	n := s.size - offset
	if length >= 0 {
		n = min(n, length)
	}
	return &reader{r: io.LimitReader(s.f, n), f: s.f,
		attrs: driver.ReaderAttributes{ContentType: s.hdr.ContentType, ModTime: s.modTime, Size: s.size}}, nil
}

type reader struct {
	r     io.Reader
	f     *os.File
	attrs driver.ReaderAttributes
}

func (r *reader) Read(p []byte) (int, error)           { return r.r.Read(p) }
func (r *reader) Close() error                         { return r.f.Close() }
func (r *reader) Attributes() *driver.ReaderAttributes { return &r.attrs }
func (r *reader) As(any) bool                          { return false }

func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	path, err := b.path(key)
	if err != nil {
		return nil, err
	}
	if opts.BeforeWrite != nil {
		if err := opts.BeforeWrite(func(any) bool { return false }); err != nil {
			return nil, err
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	h := header{
		ContentType: contentType, CacheControl: opts.CacheControl, ContentDisposition: opts.ContentDisposition,
		ContentEncoding: opts.ContentEncoding, ContentLanguage: opts.ContentLanguage,
		ETag: "\"" + strconv.FormatInt(time.Now().UnixNano(), 16) + "-" + hex.EncodeToString(rnd[:4]) + "\"",
	}
	if len(opts.Metadata) > 0 {
		h.Metadata = opts.Metadata
	}
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, 0, len(magic)+4+len(raw))
	hdr = append(hdr, magic...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(raw)))
	hdr = append(hdr, raw...)

	dir, name := filepath.Split(path)
	dir = filepath.Clean(dir)
	tmp := tempMark + hex.EncodeToString(rnd[:])
	var d, td *dirHandle
	var f *os.File
	for attempt := 0; ; attempt++ {
		if d, err = b.openDir(dir); err != nil {
			return nil, err
		}
		if td, err = b.openDir(b.tempDir); err != nil {
			b.releaseDir(d)
			return nil, err
		}
		f, err = createAt(td.f, tmp)
		if err == nil {
			// Held until the temporary name is gone: the sweep at open
			// leaves a locked temporary file alone.
			if err = lockFile(f); err == nil {
				break
			}
			f.Close()
			_ = removeAt(td.f, tmp)
			b.releaseDir(td)
			b.releaseDir(d)
			return nil, fmt.Errorf("file: lock %s: %w", f.Name(), err)
		}
		b.releaseDir(td)
		b.releaseDir(d)
		if !errors.Is(err, fs.ErrNotExist) || attempt > 0 {
			return nil, err
		}
		// The directory was removed from under the bucket: make it again.
		b.forget(b.tempDir)
	}
	return &writer{ctx: ctx, b: b, d: d, td: td, f: f, tmp: tmp, name: name, path: path, hdr: hdr, ifNotExist: opts.IfNotExist}, nil
}

// writer writes a temporary file and moves it under its name on Close.
type writer struct {
	ctx        context.Context
	b          *bucket
	d          *dirHandle // the object's directory
	td         *dirHandle // the bucket's directory of temporary files
	f          *os.File
	tmp, name  string // the temporary file's name in td and the object's in d
	path       string
	hdr        []byte // the header, until written with the first bytes of the body
	ifNotExist bool
	// err is the first write's failure: Close then discards the
	// temporary file instead of naming an object cut short (gocloud
	// closes a writer whose write failed, expecting no object).
	err error
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.hdr != nil {
		// The header and the body's first bytes in one call.
		hdr := w.hdr
		w.hdr = nil
		if err := writeAll(w.f, hdr, p); err != nil {
			w.err = err
			return 0, err
		}
		return len(p), nil
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Upload lets gocloud hand over the whole body in one call: a body that
// writes itself (a bytes.Reader) goes in one write with the header, and a
// body in pieces (objects.Buffers) in one writev(2) with it.
func (w *writer) Upload(r io.Reader) error {
	if bufs, ok := r.(*objects.Buffers); ok && w.err == nil && w.hdr != nil {
		// A body in pieces: the header and every piece in one call,
		// not joined first.
		hdr := w.hdr
		w.hdr = nil
		if err := writeAll(w.f, append([][]byte{hdr}, bufs.Slices()...)...); err != nil {
			w.err = err
			return err
		}
		return nil
	}
	if wt, ok := r.(io.WriterTo); ok {
		_, err := wt.WriteTo(w)
		return err
	}
	if _, err := w.Write(nil); err != nil {
		return err
	}
	if _, err := io.Copy(w.f, r); err != nil {
		if w.err == nil {
			w.err = err
		}
		return err
	}
	return nil
}

func (w *writer) Close() error {
	defer w.b.releaseDir(w.d)
	defer w.b.releaseDir(w.td)
	named, closed := false, false
	// The file (and its lock) is closed only once its temporary name is
	// gone, moved under the key or removed.
	defer func() {
		if !named {
			_ = removeAt(w.td.f, w.tmp)
		}
		if !closed {
			w.f.Close()
		}
	}()
	if w.err != nil {
		return fmt.Errorf("file: write %s: %w", w.path, w.err)
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.hdr != nil { // an empty body
		if _, err := w.Write(nil); err != nil {
			return err
		}
	}
	// The data and its size, before the name: fdatasync(2) flushes what
	// reading the file back needs, not its timestamps.
	if err := w.b.syncFile(w.f); err != nil {
		return fmt.Errorf("file: fsync %s: %w", w.path, err)
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.ifNotExist {
		if err := renameNoReplace(w.td.f, w.tmp, w.d.f, w.name); err != nil {
			if errors.Is(err, fs.ErrExist) {
				if isDirAt(w.d.f, w.name) {
					return fmt.Errorf("file: %s: a directory of that name exists", w.path)
				}
				// The object under the name may be one whose writer
				// failed after naming it, before the directory's fsync
				// (a caller that finds its own bytes there takes the
				// write as done): the name is made durable first.
				if err := w.d.sync(); err != nil {
					return fmt.Errorf("file: fsync the directory of %s: %w", w.path, err)
				}
				return fmt.Errorf("%w: %s", errExists, w.path)
			}
			return err
		}
		named = true
		// No object had the name, so no sidecar of an earlier
		// version's object applies to it.
	} else {
		if err := renameAt(w.td.f, w.tmp, w.d.f, w.name); err != nil {
			return err
		}
		named = true
		// A sidecar of an earlier version's object no longer applies.
		if err := removeAt(w.d.f, w.name+legacyAttrs); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	closed = true
	cerr := w.f.Close()
	// The name: an fsync of the directory that started after the rename,
	// whatever the close said (the data was synced before the rename).
	if err := w.d.sync(); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("file: close %s: %w", w.path, cerr)
	}
	return nil
}

// dirHandle is a directory of the bucket held open while writers use it:
// objects are created and named relative to it, and the fsyncs that make
// its entries durable are shared (dirSyncer). It is closed when its last
// writer is done, so that the next write opens the directory by its path
// again: a directory renamed or replaced from under the bucket is not
// written through a handle that still points at it elsewhere.
type dirHandle struct {
	f    *os.File
	path string
	dirSyncer
	refs    int  // writers using it (under bucket.mu)
	dropped bool // out of bucket.dirs: closed by its last writer (under bucket.mu)
}

// openDir returns dir held open, made first (durably) if missing. Release
// it with releaseDir.
func (b *bucket) openDir(dir string) (*dirHandle, error) {
	if err := b.ensureDir(dir); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if d := b.dirs[dir]; d != nil {
		d.refs++
		b.mu.Unlock()
		return d, nil
	}
	b.mu.Unlock()
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed from under the bucket since it was made: make it again.
		b.forget(dir)
		if err := b.ensureDir(dir); err != nil {
			return nil, err
		}
		f, err = os.Open(dir)
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.dirs[dir]; d != nil { // opened meanwhile by another writer
		d.refs++
		f.Close()
		return d, nil
	}
	d := &dirHandle{f: f, path: dir, refs: 1, dirSyncer: dirSyncer{d: f, fsync: b.fsyncDir}}
	b.dirs[dir] = d
	return d, nil
}

// releaseDir ends a writer's use of d, closing it after its last.
func (b *bucket) releaseDir(d *dirHandle) {
	b.mu.Lock()
	d.refs--
	last := d.refs == 0
	if last {
		b.unshareLocked(d)
	}
	b.mu.Unlock()
	if last {
		d.f.Close()
	}
}

// unshareLocked takes d out of bucket.dirs, so that the next writer of its
// directory opens it by path again; its last writer closes it. b.mu is
// held.
func (b *bucket) unshareLocked(d *dirHandle) {
	if !d.dropped {
		d.dropped = true
		delete(b.dirs, d.path)
	}
}

// dirSyncer coalesces the fsyncs of one directory, as a database
// group-commits its log: an fsync of a directory makes every entry made in
// it before the fsync started durable, so the callers that arrive while
// one runs wait for the next round, which one fsync serves for all of
// them. A caller never counts a round that started before it called.
type dirSyncer struct {
	d     *os.File
	fsync func(d *os.File) error

	mu      sync.Mutex
	running bool       // a round's fsync is running
	next    *syncRound // the round that starts when it ends; callers join it
}

// syncRound is one fsync of a directory and the callers it serves.
type syncRound struct {
	done    chan struct{} // closed when err is set
	err     error
	callers int
}

// sync makes the entries created or removed in the directory so far
// durable: it returns once a round that started after the call has
// ended, with that round's error.
func (s *dirSyncer) sync() error {
	s.mu.Lock()
	r := s.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		s.next = r
	}
	r.callers++
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		s.round()
	}
	<-r.done
	return r.err
}

// round runs the waiting round, then hands the next one, if callers
// joined it meanwhile, to a goroutine of its own (so that no caller runs
// rounds for others after its own).
func (s *dirSyncer) round() {
	s.mu.Lock()
	r := s.next
	s.next = nil // callers from now on join a round that starts after this one
	s.mu.Unlock()
	r.err = s.fsync(s.d)
	close(r.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next != nil {
		go s.round()
		return
	}
	s.running = false
}

// ensureDir creates dir and its missing parents, each made durable by
// fsyncing its parent directory (once per directory per process).
func (b *bucket) ensureDir(dir string) error {
	b.mu.Lock()
	ok := b.durable[dir]
	b.mu.Unlock()
	if ok {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent == dir || !strings.HasPrefix(dir, b.dir) {
		return fmt.Errorf("file: %s is outside the bucket", dir)
	}
	if err := b.ensureDir(parent); err != nil {
		return err
	}
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) {
		// A parent was removed from under the bucket: make it again.
		b.forget(parent)
		if err := b.ensureDir(parent); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o700)
	}
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
			return fmt.Errorf("file: %s is an object, so no key can continue it with '/'", dir)
		}
	} else if err != nil {
		return err
	}
	// Whoever created it, its entry is durable once the parent is synced.
	if err := syncDir(parent); err != nil {
		return err
	}
	b.mu.Lock()
	if len(b.durable) >= maxDurable {
		b.durable = map[string]bool{b.dir: true}
	}
	b.durable[dir] = true
	b.mu.Unlock()
	return nil
}

// forget drops dir and its parents from the directories known durable
// and held open.
func (b *bucket) forget(dir string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for d := dir; d != b.dir && strings.HasPrefix(d, b.dir); d = filepath.Dir(d) {
		delete(b.durable, d)
		if h := b.dirs[d]; h != nil {
			b.unshareLocked(h)
		}
	}
}

// syncDir fsyncs a directory, which makes the entries created or removed
// in it durable.
func syncDir(dir string) error {
	if err := datasync.Dir(dir); err != nil {
		return fmt.Errorf("file: fsync directory %s: %w", dir, err)
	}
	return nil
}

// syncDirFile fsyncs an open directory.
func syncDirFile(d *os.File) error {
	if err := d.Sync(); err != nil {
		return fmt.Errorf("file: fsync directory %s: %w", d.Name(), err)
	}
	return nil
}

func (b *bucket) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	if opts != nil && opts.BeforeCopy != nil {
		if err := opts.BeforeCopy(func(any) bool { return false }); err != nil {
			return err
		}
	}
	s, err := b.openObject(srcKey)
	if err != nil {
		return err
	}
	defer s.f.Close()
	if _, err := s.f.Seek(s.bodyOff, io.SeekStart); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewTypedWriter(wctx, dstKey, s.hdr.ContentType, &driver.WriterOptions{
		CacheControl: s.hdr.CacheControl, ContentDisposition: s.hdr.ContentDisposition,
		ContentEncoding: s.hdr.ContentEncoding, ContentLanguage: s.hdr.ContentLanguage, Metadata: s.hdr.Metadata,
	})
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, io.LimitReader(s.f, s.size)); err != nil {
		cancel()
		w.Close()
		return err
	}
	return w.Close()
}

func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if opts != nil && opts.BeforeDelete != nil {
		if err := opts.BeforeDelete(func(any) bool { return false }); err != nil {
			return err
		}
	}
	path, err := b.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return &os.PathError{Op: "delete", Path: path, Err: fs.ErrNotExist}
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	if err := os.Remove(path + legacyAttrs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	d, err := b.openDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer b.releaseDir(d)
	return d.sync()
}

// defaultPageSize is the page size of a listing that asks for none (an
// iterator's: Bucket.List). Each page reads the directory that holds its
// token from the start, keeping the page's keys only (on Linux the
// entries up to the token, or past the page's last key so far, cost no
// allocation, see readDir), so a listing of n objects reads it
// n/defaultPageSize + 1 times. A page holds its objects' keys, sizes and
// times (about 100 bytes each).
const defaultPageSize = 1 << 14

// keysOnlyPageSize is the page size of a keys-only listing
// (objects.ListRequest): a key costs no open, so a page can be larger;
// the reconciler's pass after its mark (the last few minutes' keys) is
// one page, a full pass over an hour's partition at 20,000 records/s
// (about 670,000 objects) eleven.
const keysOnlyPageSize = 1 << 16

func (b *bucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	var req objects.ListRequest
	if opts.BeforeList != nil {
		if err := opts.BeforeList(func(i any) bool {
			p, ok := i.(**objects.ListRequest)
			if ok {
				*p = &req
			}
			return ok
		}); err != nil {
			return nil, err
		}
	}
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = defaultPageSize
		if req.KeysOnly {
			pageSize = keysOnlyPageSize
		}
	}
	token := string(opts.PageToken)
	if req.StartAfter > token {
		token = req.StartAfter
	}
	// Only the directory of the prefix's last '/' can hold matches.
	root, rootKey := b.dir, ""
	if i := strings.LastIndex(opts.Prefix, "/"); i >= 0 {
		// Segments no key has (empty, "." or "..", a NUL) name no
		// directory of the bucket: nothing starts so.
		for seg := range strings.SplitSeq(opts.Prefix[:i], "/") {
			if seg == "" || seg == "." || seg == ".." || strings.IndexByte(seg, 0) >= 0 {
				return &driver.ListPage{}, nil
			}
		}
		root = filepath.Join(b.dir, filepath.FromSlash(opts.Prefix[:i]))
		rootKey = opts.Prefix[:i+1]
		if !strings.HasPrefix(root, b.dir) {
			return &driver.ListPage{}, nil
		}
		if name := filepath.Base(root); !utf8.ValidString(name) || strings.HasPrefix(name, tempMark) {
			return &driver.ListPage{}, nil
		}
	}
	// The walk names the candidates after the token; only those of the
	// page are then opened for their size and time (and a directory
	// checked for an object), so listing n objects in pages costs n
	// opens, not n for every page; a keys-only listing
	// (objects.ListRequest) opens none.
	w := &walk{ctx: ctx, prefix: opts.Prefix, delim: opts.Delimiter, token: token, keysOnly: req.KeysOnly, seenDir: map[string]bool{}}
	if opts.Delimiter == "" {
		// Every candidate is an object, each key once: the walk keeps
		// the page's keys and one more (to know there is a next page),
		// not all those after the token.
		w.limit = min(pageSize, math.MaxInt-1) + 1
	}
	if err := w.dir(root, rootKey); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENAMETOOLONG) {
			return &driver.ListPage{}, nil // no such directory: nothing under the prefix
		}
		return nil, err
	}
	cands := w.cands
	slices.SortStableFunc(cands, func(a, b candidate) int { return strings.Compare(a.key, b.key) })
	page := &driver.ListPage{}
	page.Objects = make([]*driver.ListObject, 0, min(len(cands), pageSize))
	for _, c := range cands {
		if n := len(page.Objects); n > 0 && page.Objects[n-1].Key == c.key {
			continue // a prefix listed already
		}
		if n := len(page.Objects); n == pageSize {
			page.NextPageToken = []byte(page.Objects[n-1].Key)
			break
		}
		switch {
		case c.dir:
			if !hasObject(ctx, c.path) {
				continue
			}
			page.Objects = append(page.Objects, &driver.ListObject{Key: c.key, IsDir: true})
		case c.prefix: // a prefix met in an object's key
			page.Objects = append(page.Objects, &driver.ListObject{Key: c.key, IsDir: true})
		case req.KeysOnly:
			// The walk saw the file; its size and time are not asked
			// for, so it is not opened.
			page.Objects = append(page.Objects, &driver.ListObject{Key: c.key})
		default:
			size, mod, err := statObject(c.path)
			if errors.Is(err, fs.ErrNotExist) { // deleted since the walk
				continue
			}
			if err != nil {
				return nil, err
			}
			page.Objects = append(page.Objects, &driver.ListObject{Key: c.key, Size: size, ModTime: mod})
		}
	}
	if w.over && page.NextPageToken == nil && len(cands) > 0 {
		// The walk left keys after its last candidate for a next page,
		// and objects deleted since the walk left this one short.
		page.NextPageToken = []byte(cands[len(cands)-1].key)
	}
	return page, nil
}

// candidate is an entry a listing's walk found after its token: an
// object (its path set unless the listing is keys-only), a directory
// standing for a delimited prefix (dir), or a prefix met in an object's
// key (prefix).
type candidate struct {
	key, path   string
	dir, prefix bool
}

// walk is one listing's walk of the bucket's directories: it collects
// the candidates after token, in the order the file system gives them;
// with a limit, only the limit smallest (cands is then a max-heap by key,
// and over says some were left out).
type walk struct {
	ctx                  context.Context
	prefix, delim, token string
	keysOnly             bool
	limit                int
	over                 bool
	cands                []candidate
	seenDir              map[string]bool
}

// full reports whether the walk holds its limit of candidates, so that
// only a key before the largest of them can still enter.
func (w *walk) full() bool { return w.limit > 0 && len(w.cands) == w.limit }

// add collects a candidate, keeping the limit smallest when there is one.
func (w *walk) add(c candidate) {
	if w.limit == 0 {
		w.cands = append(w.cands, c)
		return
	}
	if len(w.cands) < w.limit {
		w.cands = append(w.cands, c)
		for i := len(w.cands) - 1; i > 0; {
			parent := (i - 1) / 2
			if w.cands[parent].key >= w.cands[i].key {
				break
			}
			w.cands[parent], w.cands[i] = w.cands[i], w.cands[parent]
			i = parent
		}
		return
	}
	w.over = true
	if c.key >= w.cands[0].key {
		return
	}
	w.cands[0] = c
	for i, n := 0, len(w.cands); ; {
		largest := i
		if l := 2*i + 1; l < n && w.cands[l].key > w.cands[largest].key {
			largest = l
		}
		if r := 2*i + 2; r < n && w.cands[r].key > w.cands[largest].key {
			largest = r
		}
		if largest == i {
			return
		}
		w.cands[i], w.cands[largest] = w.cands[largest], w.cands[i]
		i = largest
	}
}

// past reports whether key+name sorts after the largest candidate of a
// full walk, without building it.
func (w *walk) past(key string, name []byte) bool {
	top := w.cands[0].key
	if rest, ok := strings.CutPrefix(top, key); ok {
		return string(name) >= rest
	}
	return key > top
}

// dir walks the directory at path, whose objects' keys start with key
// (ending in '/', or "" for the bucket's root). A directory whose every
// key is at or before the token is not read at all, and in the one that
// holds the token, names up to it are skipped before any key is built.
func (w *walk) dir(path, key string) error {
	rest, within := strings.CutPrefix(w.token, key)
	if !within && key < w.token {
		return nil // every key under it sorts before the token
	}
	if w.full() {
		if top := w.cands[0].key; key > top && !strings.HasPrefix(top, key) {
			w.over = true
			return nil // every key under it sorts after the page's
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return readDir(w.ctx, f, func(name []byte, isDir bool) error {
		if !isDir {
			if within && string(name) <= rest {
				return nil // its key, key+name, is at or before the token
			}
			if w.full() && w.past(key, name) {
				w.over = true
				return nil // after every key of the page
			}
		}
		return w.entry(path, key, string(name), isDir)
	})
}

// entry handles one directory entry of dir (whose keys start with key).
func (w *walk) entry(dir, key, name string, isDir bool) error {
	if !utf8.ValidString(name) || strings.HasPrefix(name, tempMark) {
		return nil
	}
	if isDir {
		dk := key + name + "/"
		if !strings.HasPrefix(dk, w.prefix) && !strings.HasPrefix(w.prefix, dk) {
			return nil
		}
		// With a delimiter, a directory past the prefix is one entry when
		// it holds any object.
		if w.delim != "" && strings.HasPrefix(dk, w.prefix) {
			rest := dk[len(w.prefix):]
			if i := strings.Index(rest, w.delim); i >= 0 {
				// Several directories may map to one prefix, and one
				// without an object must not hide the others: each stays
				// a candidate, checked when the page is cut.
				if p := w.prefix + rest[:i+len(w.delim)]; !w.seenDir[p] && p > w.token {
					w.add(candidate{key: p, path: filepath.Join(dir, name), dir: true})
				}
				return nil
			}
		}
		err := w.dir(filepath.Join(dir, name), dk)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		return err
	}
	k := key + name
	if !strings.HasPrefix(k, w.prefix) || strings.HasSuffix(k, legacyAttrs) {
		return nil
	}
	if w.delim != "" {
		rest := k[len(w.prefix):]
		if i := strings.Index(rest, w.delim); i >= 0 {
			p := w.prefix + rest[:i+len(w.delim)]
			if !w.seenDir[p] && p > w.token {
				w.seenDir[p] = true
				w.add(candidate{key: p, prefix: true})
			}
			return nil
		}
	}
	if k > w.token {
		c := candidate{key: k}
		if !w.keysOnly {
			c.path = filepath.Join(dir, name)
		}
		w.add(c)
	}
	return nil
}

// errObjectFound stops hasObject's read at the first object.
var errObjectFound = errors.New("file: an object found")

// hasObject reports whether a directory holds an object at any depth. It
// reads the directory's entries in the order the file system gives them
// (readDir) and stops at the first object: a partition of tens of
// thousands of objects costs one read, not a sorted read of them all.
func hasObject(ctx context.Context, dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	var sub []string
	err = readDir(ctx, f, func(name []byte, isDir bool) error {
		if !utf8.Valid(name) || bytes.HasPrefix(name, []byte(tempMark)) {
			return nil
		}
		if isDir {
			sub = append(sub, string(name))
			return nil
		}
		if !bytes.HasSuffix(name, []byte(legacyAttrs)) {
			return errObjectFound
		}
		return nil
	})
	if err == errObjectFound {
		return true
	}
	for _, name := range sub {
		if hasObject(ctx, filepath.Join(dir, name)) {
			return true
		}
	}
	return false
}

// statObject returns the body size and modification time of an object
// file, reading only the start of its header.
func statObject(path string) (int64, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, time.Time{}, err
	}
	var pre [len(magic) + 4]byte
	n, _ := io.ReadFull(f, pre[:])
	if n == len(pre) && string(pre[:len(magic)]) == magic {
		return fi.Size() - int64(len(pre)) - int64(binary.BigEndian.Uint32(pre[len(magic):])), fi.ModTime(), nil
	}
	return fi.Size(), fi.ModTime(), nil
}

// startSweep removes, in the background, the temporary files that killed
// writers left (sweepDir of the bucket's directory of temporary files);
// Close stops it. Earlier versions wrote their temporary files beside the
// objects: the first open that finds no sweptMark also walks the whole
// bucket once for those (sweepTree), then leaves the mark.
func (b *bucket) startSweep() {
	ctx, cancel := context.WithCancel(context.Background())
	b.stopSweep, b.swept = cancel, make(chan struct{})
	go func() {
		defer close(b.swept)
		olderThan := time.Now().Add(-TempGrace)
		n, err := b.sweepDir(ctx, b.tempDir, olderThan)
		if err == nil {
			var m int
			m, err = b.sweepBesideObjects(ctx, olderThan)
			n += m
		}
		if err != nil && ctx.Err() == nil {
			slog.Warn("file: sweeping temporary files", "dir", b.dir, "removed", n, "err", err)
		}
	}()
}

// sweepBesideObjects walks the bucket once for the temporary files of
// earlier versions (sweepTree), unless sweptMark says a walk was done.
func (b *bucket) sweepBesideObjects(ctx context.Context, olderThan time.Time) (int, error) {
	mark := filepath.Join(b.tempDir, sweptMark)
	if fi, err := os.Stat(mark); err == nil && fi.IsDir() {
		return 0, nil
	}
	n, err := b.sweepTree(ctx, olderThan)
	if err != nil {
		return n, err
	}
	if err := os.MkdirAll(mark, 0o700); err != nil {
		return n, fmt.Errorf("file: mark the sweep done: %w", err)
	}
	return n, nil
}

// sweepDir removes the temporary files in dir (not below it) that no
// writer holds and that were last written before olderThan (see
// removeStale). A missing dir holds none. It returns how many it removed.
func (b *bucket) sweepDir(ctx context.Context, dir string, olderThan time.Time) (int, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	removed := 0
	for {
		ents, err := f.ReadDir(256)
		for _, d := range ents {
			if err := ctx.Err(); err != nil {
				return removed, err
			}
			if d.IsDir() || !strings.HasPrefix(d.Name(), tempMark) {
				continue
			}
			ok, err := removeStale(filepath.Join(dir, d.Name()), olderThan)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
			if ok {
				removed++
			}
		}
		if errors.Is(err, io.EOF) || len(ents) == 0 {
			return removed, nil
		}
		if err != nil {
			return removed, err
		}
	}
}

// sweepTree removes the temporary files anywhere under the bucket, but
// for its directory of temporary files, that no writer holds and that
// were last written before olderThan. It returns how many it removed.
func (b *bucket) sweepTree(ctx context.Context, olderThan time.Time) (int, error) {
	removed := 0
	err := filepath.WalkDir(b.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while walking
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if path == b.tempDir {
				return fs.SkipDir // swept on its own
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), tempMark) {
			return nil
		}
		ok, err := removeStale(path, olderThan)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if ok {
			removed++
		}
		return nil
	})
	return removed, err
}

// removeStale removes the temporary file at path if it was last written
// before olderThan and no writer holds its lock, reporting whether it did.
func removeStale(path string, olderThan time.Time) (bool, error) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(olderThan) {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	held, err := tryLockFile(f)
	if err != nil || !held {
		return false, err // a live writer's
	}
	// The file locked is the one still under that name.
	if now, err := os.Lstat(path); err != nil || !os.SameFile(fi, now) {
		return false, err
	}
	if err := os.Remove(path); err != nil {
		return false, err
	}
	return true, nil
}
