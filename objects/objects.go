// Package objects is intercloud's portable object store: a thin layer over
// gocloud.dev/blob with drivers chosen by URL scheme (file, s3, azblob), one
// set of portable errors, and "object created" events for the function host.
//
// Drivers live in sub-packages and register their scheme in init; import the
// ones a binary ships (cmd/intercloud imports them all).
package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/internal/registry"
)

// Portable errors; drivers' errors are mapped to these.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("objects: not found")
	// ErrExists: a conditional create found the object already there.
	ErrExists = errors.New("objects: already exists")
	// ErrInvalidKey: the key is not one every driver stores under that
	// exact name (see ValidateKey).
	ErrInvalidKey = errors.New("objects: invalid key")
	// ErrNoBucket: the bucket or container a URL names does not exist.
	ErrNoBucket = errors.New("objects: the bucket does not exist")
	// ErrDenied: the store refused the credentials or their rights.
	ErrDenied = errors.New("objects: access denied")
	// ErrUnavailable: the store could not serve the call now (unreachable,
	// throttling, a 5xx answer, a timeout); the same call may succeed
	// later.
	ErrUnavailable = errors.New("objects: store unavailable")
)

// StatusFunc returns the HTTP status of a driver's error, if it has one.
type StatusFunc func(err error) (status int, ok bool)

// hooks are functions drivers register from their init.
type hooks[F any] struct {
	mu sync.RWMutex
	fs []F
}

func (h *hooks[F]) add(f F) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fs = append(h.fs, f)
}

// all returns the functions registered so far.
func (h *hooks[F]) all() []F {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.fs
}

var (
	statusFuncs    hooks[StatusFunc]
	listStartFuncs hooks[ListStartFunc]
)

// RegisterStatus lets a driver tell the HTTP status of its SDK's errors
// whose type has no HTTPStatusCode method, so that 5xx, 429 and 408
// answers map to ErrUnavailable. Call it from the driver's init.
func RegisterStatus(f StatusFunc) { statusFuncs.add(f) }

// httpStatus returns the HTTP status an error carries.
func httpStatus(err error) (int, bool) {
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		return hs.HTTPStatusCode(), true
	}
	for _, f := range statusFuncs.all() {
		if st, ok := f(err); ok {
			return st, true
		}
	}
	return 0, false
}

// unavailable reports whether a driver error says the store could not
// serve the call now.
func unavailable(err error) bool {
	switch gcerrors.Code(err) {
	case gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	}
	if st, ok := httpStatus(err); ok && st > 0 { // 0: no answer came
		return st >= 500 || st == http.StatusTooManyRequests || st == http.StatusRequestTimeout
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded)
}

// ValidateKey reports whether key can name an object: valid UTF-8, not
// empty, and made of '/'-separated segments none of which is empty, "."
// or ".." (so no leading, trailing or doubled '/'). Such keys would be
// stored under another name by some drivers (a file system cleans the
// path), so every Bucket method refuses them with ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty path segment (leading, trailing or doubled '/')", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w %q: %q path segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// check refuses a call whose context is already done or whose key is
// invalid, before any I/O: a cancelled call changes nothing.
func check(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objects: %s %s: %w", op, key, err)
	}
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("objects: %s: %w", op, err)
	}
	return nil
}

// Opener opens a driver's bucket for a URL of its scheme. It must not log
// or return the URL's credentials.
type Opener func(ctx context.Context, u *url.URL) (*blob.Bucket, error)

// DriverKind is the registry kind of object-store drivers (see package
// internal/registry).
const DriverKind = "objects"

var drivers = registry.New[Opener](DriverKind, "scheme")

// Register makes a driver available under a URL scheme. It panics if the
// scheme is registered twice, like database/sql.Register.
func Register(scheme string, o Opener) { drivers.Register(scheme, o) }

// Schemes lists the registered schemes, sorted.
func Schemes() []string { return drivers.Names() }

// Event says an object was created.
type Event struct {
	// Key is the object's key.
	Key string
	// Size is its length in bytes, when known.
	Size int64
	// Metadata is its user metadata, when known (trace context lives there).
	Metadata map[string]string
	// Source says who noticed: "put" (our own write), "notification" (the
	// store's event), "reconcile" (a listing).
	Source string
}

// Attributes describe a stored object.
type Attributes struct {
	Size        int64
	ModTime     time.Time
	ETag        string
	ContentType string
	Metadata    map[string]string
}

// Object is one entry of a listing.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// PutOptions tune a write.
type PutOptions struct {
	ContentType string
	Metadata    map[string]string
	// IfNotExist makes the write fail with ErrExists when the key exists,
	// so a retried write can never overwrite an acknowledged one.
	IfNotExist bool
}

// Bucket is an open object store. It is safe for concurrent use.
type Bucket struct {
	b      *blob.Bucket
	name   string
	log    *slog.Logger
	mu     sync.RWMutex
	notify []func(Event)
}

// Open opens the bucket a URL names, with the driver registered for its scheme.
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("objects: bad URL: %w", redact.URLError(err))
	}
	o, err := drivers.Lookup(u.Scheme)
	if err != nil {
		return nil, err
	}
	b, err := o(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("objects: open %s://%s: %w", u.Scheme, u.Host+u.Path, err)
	}
	return NewBucket(b, u.Scheme+"://"+u.Host+u.Path, log), nil
}

// NewBucket wraps an open gocloud bucket; name is for logs and must hold no
// secret.
func NewBucket(b *blob.Bucket, name string, log *slog.Logger) *Bucket {
	if log == nil {
		log = slog.Default()
	}
	return &Bucket{b: b, name: name, log: log}
}

// Name returns the bucket's URL without credentials.
func (b *Bucket) Name() string { return b.name }

// OnCreate registers fn to be called after every successful Put through
// this Bucket. fn runs on the writer's goroutine and must not block.
func (b *Bucket) OnCreate(fn func(Event)) {
	b.mu.Lock()
	b.notify = append(b.notify, fn)
	b.mu.Unlock()
}

func (b *Bucket) created(e Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, fn := range b.notify {
		fn(e)
	}
}

// Put writes data under key. It returns only after the store has the
// object; then it emits an object-created event.
func (b *Bucket) Put(ctx context.Context, key string, data []byte, opts *PutOptions) error {
	if err := check(ctx, "put", key); err != nil {
		return err
	}
	// A bytes.Reader cannot fail mid-way, and drivers upload a seekable
	// body of known size without copying it into part buffers.
	if err := b.b.Upload(ctx, key, bytes.NewReader(data), writerOptions(opts, 0)); err != nil {
		return fmt.Errorf("objects: put %s: %w", key, mapErr(err))
	}
	b.created(Event{Key: key, Size: int64(len(data)), Metadata: opts.metadata(), Source: "put"})
	return nil
}

// PutBuffers writes the slices' bytes, in order, under key, as Put
// writes one slice: a caller that holds an object in pieces (the ingest
// API's group commit, a piece per request) need not join them first. The
// file driver writes them to the file as they are; the others upload
// them as one body. The slices must not change until it returns.
func (b *Bucket) PutBuffers(ctx context.Context, key string, bufs [][]byte, opts *PutOptions) error {
	if len(bufs) == 1 {
		return b.Put(ctx, key, bufs[0], opts)
	}
	if err := check(ctx, "put", key); err != nil {
		return err
	}
	body := NewBuffers(bufs)
	size := body.Len()
	if err := b.b.Upload(ctx, key, body, writerOptions(opts, 0)); err != nil {
		return fmt.Errorf("objects: put %s: %w", key, mapErr(err))
	}
	b.created(Event{Key: key, Size: size, Metadata: opts.metadata(), Source: "put"})
	return nil
}

// writerOptions maps PutOptions to the driver's; bufferSize 0 leaves the
// driver's default.
func writerOptions(opts *PutOptions, bufferSize int) *blob.WriterOptions {
	if opts == nil {
		opts = &PutOptions{}
	}
	wo := &blob.WriterOptions{
		ContentType: opts.ContentType, Metadata: opts.Metadata, IfNotExist: opts.IfNotExist,
		BufferSize: bufferSize, MaxConcurrency: uploadConcurrency,
	}
	if wo.ContentType == "" {
		wo.ContentType = "application/octet-stream"
	}
	return wo
}

func (o *PutOptions) metadata() map[string]string {
	if o == nil {
		return nil
	}
	return o.Metadata
}

// PutStream writes the reader's bytes under key without holding them all in
// memory (drivers upload large objects in parts).
func (b *Bucket) PutStream(ctx context.Context, key string, r io.Reader, opts *PutOptions) error {
	if err := check(ctx, "put", key); err != nil {
		return err
	}
	// A failing reader cancels wctx before the driver sees its error, so
	// the driver discards the upload instead of committing a partial object.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ur := &uploadReader{r: r, cancel: cancel}
	// Upload hands the reader to the driver in one call (no pipe), which
	// streams it in parts.
	err := b.b.Upload(wctx, key, ur, writerOptions(opts, uploadPartSize))
	if ur.err != nil {
		return fmt.Errorf("objects: put %s: %w", key, ur.err)
	}
	if err != nil {
		return fmt.Errorf("objects: put %s: %w", key, mapErr(err))
	}
	b.created(Event{Key: key, Size: ur.n, Metadata: opts.metadata(), Source: "put"})
	return nil
}

// uploadReader counts the bytes read and, when the reader fails, records
// the error and cancels the upload's context first.
type uploadReader struct {
	r      io.Reader
	cancel context.CancelFunc
	n      int64
	err    error
}

func (u *uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.n += int64(n)
	if err != nil && err != io.EOF {
		u.err = err
		u.cancel()
	}
	return n, err
}

// Large objects are uploaded in parts of uploadPartSize (the smallest part
// S3 accepts), uploadConcurrency at a time, which bounds the memory of one
// streamed write to a few parts whatever the object's size.
const (
	uploadPartSize    = 5 << 20
	uploadConcurrency = 4
)

// Get reads a whole object.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, *Attributes, error) {
	r, attrs, err := b.NewReader(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("objects: get %s: %w", key, mapErr(err))
	}
	return data, attrs, nil
}

// NewReader opens an object for streaming. The attributes are those of the
// object being read.
func (b *Bucket) NewReader(ctx context.Context, key string) (io.ReadCloser, *Attributes, error) {
	a, err := b.Attributes(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	r, err := b.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("objects: get %s: %w", key, mapErr(err))
	}
	return r, a, nil
}

// NewRangeReader reads length bytes from offset (length < 0: to the end).
func (b *Bucket) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := check(ctx, "get", key); err != nil {
		return nil, err
	}
	r, err := b.b.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, fmt.Errorf("objects: get %s: %w", key, mapErr(err))
	}
	return r, nil
}

// Attributes returns an object's attributes.
func (b *Bucket) Attributes(ctx context.Context, key string) (*Attributes, error) {
	if err := check(ctx, "attributes", key); err != nil {
		return nil, err
	}
	a, err := b.b.Attributes(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("objects: attributes %s: %w", key, mapErr(err))
	}
	return &Attributes{Size: a.Size, ModTime: a.ModTime, ETag: a.ETag, ContentType: a.ContentType, Metadata: a.Metadata}, nil
}

// List calls fn for every object whose key starts with prefix, in key order.
// An error from fn stops the listing and is returned.
func (b *Bucket) List(ctx context.Context, prefix string, fn func(Object) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objects: list %s: %w", prefix, err)
	}
	return b.list(ctx, &blob.ListOptions{Prefix: prefix}, func(o *blob.ListObject) error {
		return fn(Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
	})
}

// list calls fn for every object (not directory) of the listing opts
// asks for, in key order; an error from fn stops it and is returned.
func (b *Bucket) list(ctx context.Context, opts *blob.ListOptions, fn func(*blob.ListObject) error) error {
	it := b.b.List(opts)
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("objects: list %s: %w", opts.Prefix, mapErr(err))
		}
		if o.IsDir {
			continue
		}
		if err := fn(o); err != nil {
			return err
		}
	}
}

// ListRequest is what ListKeys hands a driver that asks for it in its
// listing's BeforeList callback (as a **ListRequest, the way gocloud.dev
// drivers expose their SDK's request): the listing's options the portable
// API has no field for.
type ListRequest struct {
	// KeysOnly says the caller reads only the listed keys: a driver that
	// must do more work per object for its size and time (the file driver
	// opens each file) may leave them zero.
	KeysOnly bool
	// StartAfter asks for the keys after it (in byte order) only. A
	// driver may list more: ListKeysAfter drops the rest.
	StartAfter string
}

// ListStartFunc sets a listing's start key on a driver's own request,
// which it reaches through the As function gocloud.dev hands a listing's
// BeforeList (S3's StartAfter on its ListObjectsV2Input, say). It
// reports whether it set it; it must not when the store could then skip
// a key after after (a key the driver escapes on the wire, whose order
// there may differ).
type ListStartFunc func(as func(any) bool, after string) bool

// RegisterListStart lets a driver start ListKeysAfter's listings where
// they begin on the store, not at the prefix. Call it from the driver's
// init.
func RegisterListStart(f ListStartFunc) { listStartFuncs.add(f) }

// ListKeys calls fn with the key of every object whose key starts with
// prefix, in key order, as List does, but asks the driver for keys only:
// Size and ModTime are not known. On a directory it reads the directory
// entries without opening the objects; S3 and Azure list keys and sizes
// in one answer anyway. An error from fn stops the listing and is
// returned.
func (b *Bucket) ListKeys(ctx context.Context, prefix string, fn func(key string) error) error {
	return b.ListKeysAfter(ctx, prefix, "", fn)
}

// ListKeysAfter is ListKeys for the keys after after (in byte order)
// only, so a caller that walks a growing prefix again and again reads
// what is new, not the whole prefix each time. The file driver starts
// its walk there and S3 its listing (StartAfter); Azure, whose listing
// marker is opaque, lists the prefix and the keys up to after are
// dropped here.
func (b *Bucket) ListKeysAfter(ctx context.Context, prefix, after string, fn func(key string) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objects: list %s: %w", prefix, err)
	}
	opts := &blob.ListOptions{Prefix: prefix, BeforeList: func(as func(any) bool) error {
		var r *ListRequest
		if as(&r) {
			r.KeysOnly = true
			r.StartAfter = after
			return nil
		}
		if after == "" {
			return nil
		}
		for _, f := range listStartFuncs.all() {
			if f(as, after) {
				break
			}
		}
		return nil
	}}
	return b.list(ctx, opts, func(o *blob.ListObject) error {
		if o.Key <= after {
			return nil
		}
		return fn(o.Key)
	})
}

// ListDirs returns the "directories" directly under prefix (ending in
// delim), in key order, so a caller can walk time partitions cheaply.
func (b *Bucket) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objects: list %s: %w", prefix, err)
	}
	it := b.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var dirs []string
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return dirs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("objects: list %s: %w", prefix, mapErr(err))
		}
		if o.IsDir {
			dirs = append(dirs, o.Key)
		}
	}
}

// Delete removes an object.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := check(ctx, "delete", key); err != nil {
		return err
	}
	if err := b.b.Delete(ctx, key); err != nil {
		return fmt.Errorf("objects: delete %s: %w", key, mapErr(err))
	}
	return nil
}

// Check reports whether the store answers and the bucket (container,
// directory) the URL names exists: nil, an error wrapping ErrNoBucket or
// ErrUnavailable, or the driver's own (rejected credentials, say). It lists
// at most one object.
func (b *Bucket) Check(ctx context.Context) error {
	ok, err := b.b.IsAccessible(ctx)
	if err != nil {
		if st, known := httpStatus(err); known && (st == http.StatusUnauthorized || st == http.StatusForbidden) ||
			gcerrors.Code(err) == gcerrors.PermissionDenied {
			return fmt.Errorf("objects: check %s: %w", b.name, errors.Join(ErrDenied, err))
		}
		return fmt.Errorf("objects: check %s: %w", b.name, mapErr(err))
	}
	if !ok {
		return fmt.Errorf("objects: check %s: %w", b.name, ErrNoBucket)
	}
	return nil
}

// Exists reports whether an object exists.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	if err := check(ctx, "exists", key); err != nil {
		return false, err
	}
	ok, err := b.b.Exists(ctx, key)
	if err != nil {
		return false, fmt.Errorf("objects: exists %s: %w", key, mapErr(err))
	}
	return ok, nil
}

// Move copies src to dst with extra metadata merged in (an empty value
// removes that key), then deletes src. It is safe to repeat after a crash:
// a missing src with an existing dst counts as done.
func (b *Bucket) Move(ctx context.Context, src, dst string, metadata map[string]string) error {
	if err := check(ctx, "move", dst); err != nil {
		return err
	}
	data, attrs, err := b.Get(ctx, src)
	if errors.Is(err, ErrNotFound) {
		if ok, _ := b.Exists(ctx, dst); ok {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	md := map[string]string{}
	for k, v := range attrs.Metadata {
		md[k] = v
	}
	for k, v := range metadata {
		if v == "" {
			delete(md, k)
		} else {
			md[k] = v
		}
	}
	ct := attrs.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	if err := b.b.Upload(ctx, dst, bytes.NewReader(data), &blob.WriterOptions{ContentType: ct, Metadata: md}); err != nil {
		return fmt.Errorf("objects: move %s: %w", src, mapErr(err))
	}
	if err := b.Delete(ctx, src); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// As exposes the driver's types (see gocloud.dev/blob.Bucket.As).
func (b *Bucket) As(i any) bool { return b.b.As(i) }

// Close releases the bucket.
func (b *Bucket) Close() error { return b.b.Close() }

// mapErr turns gocloud error codes into the portable errors, keeping the
// cause for errors.As.
func mapErr(err error) error {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return errors.Join(ErrNotFound, err)
	case gcerrors.FailedPrecondition, gcerrors.AlreadyExists:
		return errors.Join(ErrExists, err)
	}
	if unavailable(err) {
		return errors.Join(ErrUnavailable, err)
	}
	return err
}
