// Package load is the "load" function: it reads a raw NDJSON object that an
// ingest API wrote and inserts its records into the cloud's SQL table,
// idempotently. The record id is the primary key and the object key is
// recorded in the same transaction, so a redelivered event changes nothing.
//
// The same Loader serves the in-process function host, the AWS Lambda
// handler and the Azure Functions custom handler.
package load

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
)

// Prefixes of the raw and dead-letter areas of the object store.
const (
	RawPrefix  = "raw/"
	DeadPrefix = "dead/"
)

// Writer names the load function's database writes (sqldb.WithWriter).
const Writer = "load"

// Bookkeeping tables the loader keeps beside the records.
const (
	// LoadedTable records every object key that has been loaded.
	LoadedTable = "_ic_loaded"
	// StateTable holds the reconciler's watermark.
	StateTable = "_ic_load_state"
)

// Loader loads raw objects into a records table.
type Loader struct {
	bucket *objects.Bucket
	db     *sqldb.DB
	schema config.Schema
	table  sqldb.Table
	loaded sqldb.Table
	state  sqldb.Table
	log    *slog.Logger
	// maxRows bounds the rows of one INSERT statement.
	maxRows int
	// rows reads raw objects into the table's rows.
	rows *record.RowReader
	// inserts holds the text of the insert statements of power-of-two
	// sizes, by size, built once (see insert).
	inserts sync.Map

	// mu guards lastFull, when Pending last listed every partition.
	mu       sync.Mutex
	lastFull time.Time
	// pendingMu serialises passes of Pending and guards known.
	pendingMu sync.Mutex
	// known holds, by partition, what a pass of Pending found in the
	// loaded-objects table, so the next pass asks the database only
	// about keys new to the listing: a pass then costs what the new
	// objects cost, not the whole hour's. A loaded object stays loaded;
	// a full pass forgets it all (an object whose marker was lost is
	// found by it).
	known map[string]*partKnown
	// lookedUp counts the keys asked of the loaded-objects table.
	lookedUp atomic.Int64
	// deadListed counts the listings of a partition's dead letters.
	deadListed atomic.Int64
	// chunk is how many listed keys a pass looks up at a time
	// (reconcileChunk).
	chunk int

	// grouped: loads commit in groups (group.go), only on a database
	// that runs one write transaction at a time (sqldb.OneWriter);
	// another database overlaps concurrent loads' statements and
	// commits them with one log flush.
	grouped bool
	// groupMu guards leading and queued, the group commit's state:
	// whether a load is committing a group, and the objects waiting for
	// the next one.
	groupMu sync.Mutex
	leading bool
	queued  []*staged
	// groups counts the group transactions.
	groups atomic.Int64
}

// New returns a Loader; call Prepare before the first Load.
func New(bucket *objects.Bucket, db *sqldb.DB, schema config.Schema, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.Default()
	}
	t := record.Table(schema)
	return &Loader{
		bucket: bucket, db: db, schema: schema, table: t, log: log,
		loaded: sqldb.Table{Name: LoadedTable, PrimaryKey: []string{"key"}, Columns: []sqldb.Column{
			{Name: "key", Type: sqldb.Type{Kind: sqldb.KindString, Length: 512}},
			{Name: "records", Type: sqldb.Type{Kind: sqldb.KindInt}},
			{Name: "loaded_at", Type: sqldb.Type{Kind: sqldb.KindTimestamp}},
		}},
		state: sqldb.Table{Name: StateTable, PrimaryKey: []string{"name"}, Columns: []sqldb.Column{
			{Name: "name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 64}},
			{Name: "value", Type: sqldb.Type{Kind: sqldb.KindString, Length: 512}},
		}},
		maxRows: max(1, 30000/len(t.Columns)),
		rows:    record.NewRowReader(schema, db.Dialect),
		chunk:   reconcileChunk,
		grouped: sqldb.OneWriter(db.Dialect),
	}
}

// Table returns the records table's schema.
func (l *Loader) Table() sqldb.Table { return l.table }

// Prepare creates the records table and the loaded-objects table.
func (l *Loader) Prepare(ctx context.Context) error {
	if err := l.db.EnsureTable(ctx, l.table); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	for _, t := range []sqldb.Table{l.loaded, l.state} {
		if err := l.db.EnsureTable(ctx, t); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	return nil
}

// Result says what one Load did.
type Result struct {
	Key      string
	Records  int  // records in the object
	Inserted int  // rows new to the table
	Skipped  bool // the object was loaded before
	TraceIDs []string
}

// Load inserts the records of one raw object. Loading an object twice, or
// records that are already present, changes nothing. A malformed object
// fails with an error wrapping functions.ErrPermanent. On a database that
// runs one write transaction at a time, loads that run at once commit in
// one transaction (see group.go).
func (l *Loader) Load(ctx context.Context, key string) (Result, error) {
	ctx = sqldb.WithWriter(ctx, Writer)
	res := Result{Key: key}
	if !strings.HasPrefix(key, RawPrefix) || !strings.HasSuffix(key, ".ndjson") {
		return res, fmt.Errorf("load: %s is not a raw object: %w", key, functions.ErrPermanent)
	}
	// Whether the object was loaded before is asked of the database only
	// when it is gone (a redelivered event of an object since expired);
	// otherwise the load marker, written first in the transaction below,
	// says it, so a load costs no query of its own.
	data, _, err := l.bucket.Get(ctx, key)
	if errors.Is(err, objects.ErrNotFound) {
		done, lerr := l.isLoaded(ctx, l.db, key)
		if lerr != nil {
			return res, lerr
		}
		if done {
			res.Skipped = true
			return res, nil
		}
		return res, fmt.Errorf("load: %s is gone (dead-lettered?): %w", key, functions.ErrPermanent)
	}
	if err != nil {
		return res, fmt.Errorf("load: %w", err)
	}
	rows, err := l.rows.Read(data)
	if err != nil {
		return res, fmt.Errorf("load: %s: %w: %w", key, err, functions.ErrPermanent)
	}
	res.Records = rows.Len()
	lastOfEachID(&rows)
	res.TraceIDs = firstTraceIDs(rows.TraceIDs, 16)
	mark, err := markArgs(l.db.Dialect, l.loaded, key, rows.Len())
	if err != nil {
		return res, fmt.Errorf("load: %s: %w", key, err)
	}
	err = l.commit(ctx, &staged{key: key, rows: rows, mark: mark, res: &res, done: make(chan outcome, 1)})
	if err != nil {
		return res, fmt.Errorf("load: %s: %w", key, err)
	}
	return res, nil
}

// Version is how a record's row is ordered against another row of the
// same id (written on the other cloud, or again on this one): by the time
// the API acknowledged it, then by the cloud's name. Load and replication
// both keep the greater (last writer wins), so both clouds converge to one
// row.
var Version = []string{record.ColIngestedAt, record.ColOrigin}

// insert returns the statement that writes n records: each is inserted,
// or overwrites a stored row of its id with a smaller Version; a stored
// row with the same or a greater Version stays (so loading an object again
// changes nothing). The texts of power-of-two sizes, those
// sqldb.StatementRows gives a statement-caching dialect, are built once.
func (l *Loader) insert(n int) string {
	pow2 := n&(n-1) == 0
	if pow2 {
		if q, ok := l.inserts.Load(n); ok {
			return q.(string)
		}
	}
	var q string
	if nu, ok := l.db.Dialect.(sqldb.NewerUpserter); ok {
		q = nu.UpsertNewer(l.table, n, Version)
	} else {
		q = l.db.Dialect.InsertIgnore(l.table, n)
	}
	if pow2 {
		l.inserts.Store(n, q)
	}
	return q
}

// lastOfEachID keeps, of rows sharing a record id within one object, the
// last, at the place of the first (one statement must not write a key
// twice). Ids in increasing order (time-ordered ids, as the API gives
// them) are distinct without a look-up.
func lastOfEachID(rs *record.Rows) {
	increasing := true
	for i := 1; i < len(rs.IDs) && increasing; i++ {
		increasing = rs.IDs[i-1] < rs.IDs[i]
	}
	if increasing {
		return
	}
	at := make(map[string]int, len(rs.IDs))
	n := 0
	for i, id := range rs.IDs {
		j, dup := at[id]
		if !dup {
			j = n
			at[id] = n
			n++
		}
		copy(rs.Row(j), rs.Row(i))
		rs.IDs[j], rs.TraceIDs[j] = id, rs.TraceIDs[i]
	}
	rs.IDs, rs.TraceIDs, rs.Values = rs.IDs[:n], rs.TraceIDs[:n], rs.Values[:n*rs.Cols]
}

// firstTraceIDs returns the first most distinct trace ids of traces.
func firstTraceIDs(traces []string, most int) []string {
	var out []string
	for i, t := range traces {
		if len(out) == most {
			break
		}
		if (i == 0 || t != traces[i-1]) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func markArgs(d sqldb.Dialect, t sqldb.Table, key string, n int) ([]any, error) {
	at, err := d.Value(t.Columns[2].Type, time.Now())
	if err != nil {
		return nil, err
	}
	return []any{key, int64(n), at}, nil
}

func (l *Loader) isLoaded(ctx context.Context, q sqldb.Querier, key string) (bool, error) {
	d := l.db.Dialect
	var one int
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE %s = %s", d.Quote(LoadedTable), d.Quote("key"), d.Placeholder(1)), key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load: check %s: %w", key, err)
	}
	return true, nil
}

// Handler adapts the Loader to the function host: the event id is the key.
func (l *Loader) Handler() functions.Handler {
	return func(ctx context.Context, e functions.Event) error {
		_, err := l.loadLogged(ctx, e.ID, e.Source)
		return err
	}
}

// loadLogged is Load with the log line every runtime writes.
func (l *Loader) loadLogged(ctx context.Context, key, source string) (Result, error) {
	start := time.Now()
	res, err := l.Load(ctx, key)
	if err == nil && !res.Skipped {
		l.log.InfoContext(ctx, "object loaded", "key", res.Key, "records", res.Records, "inserted", res.Inserted,
			"source", source, "trace_id", strings.Join(res.TraceIDs, " "), "ms", time.Since(start).Milliseconds())
	}
	return res, err
}

// LoadOrDeadLetter loads one object for a runtime that retries a failed
// invocation itself (a Lambda, an Azure function): a transient failure is
// returned for the runtime to retry; an object that can never load is
// dead-lettered at once and reported with dead set and no error.
func (l *Loader) LoadOrDeadLetter(ctx context.Context, key, source string) (res Result, dead bool, err error) {
	res, err = l.loadLogged(ctx, key, source)
	if err == nil || !errors.Is(err, functions.ErrPermanent) {
		return res, false, err
	}
	derr := l.DeadLetter()(ctx, functions.Event{ID: key, Source: source, Attempt: 1}, err)
	if derr == nil || errors.Is(derr, objects.ErrNotFound) { // gone: an earlier delivery dead-lettered it
		return res, true, nil
	}
	return res, false, derr
}

// Metadata keys of a dead letter.
const (
	MetaError        = "error"
	MetaAttempts     = "attempts"
	MetaFailingSince = "failing_since"
)

// DeadLetter moves a failed object under dead/ with its error in the
// object's metadata, so the reconciler stops retrying it and an operator
// can inspect it (DeadLetters) and load it again (Replay).
func (l *Loader) DeadLetter() functions.DeadLetter {
	return func(ctx context.Context, e functions.Event, cause error) error {
		msg := cause.Error()
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		if !strings.HasPrefix(e.ID, RawPrefix) {
			return fmt.Errorf("load: dead-letter %s: not a raw object", e.ID)
		}
		md := map[string]string{MetaError: msg, MetaAttempts: fmt.Sprint(e.Attempt)}
		if !e.FailingSince.IsZero() {
			md[MetaFailingSince] = e.FailingSince.UTC().Format(time.RFC3339)
		}
		dst := DeadPrefix + e.ID
		if err := l.bucket.Move(ctx, e.ID, dst, md); err != nil {
			return fmt.Errorf("load: dead-letter %s: %w", e.ID, err)
		}
		l.log.ErrorContext(ctx, "object dead-lettered", "key", e.ID, "dead_key", dst, "err", msg)
		return nil
	}
}

// Dead is one dead-lettered object.
type Dead struct {
	// Key is the raw object's key (without the dead/ prefix).
	Key string `json:"key"`
	// Error is why it was dead-lettered.
	Error string `json:"error"`
	// Attempts is how many deliveries it had.
	Attempts int `json:"attempts,omitempty"`
	// At is when it was dead-lettered.
	At time.Time `json:"at"`
	// Records is how many records it holds (-1 when not counted).
	Records int   `json:"records"`
	Size    int64 `json:"size"`
}

// DeadLetters lists the dead-lettered objects in key order; with records,
// each is read to count its records.
func (l *Loader) DeadLetters(ctx context.Context, records bool) ([]Dead, error) {
	var objs []objects.Object
	if err := l.bucket.List(ctx, DeadPrefix+RawPrefix, func(o objects.Object) error {
		objs = append(objs, o)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load: list dead letters: %w", err)
	}
	out := make([]Dead, 0, len(objs))
	for _, o := range objs {
		d := Dead{Key: strings.TrimPrefix(o.Key, DeadPrefix), At: o.ModTime, Size: o.Size, Records: -1}
		var data []byte
		var a *objects.Attributes
		var err error
		if records {
			data, a, err = l.bucket.Get(ctx, o.Key)
		} else {
			a, err = l.bucket.Attributes(ctx, o.Key)
		}
		if errors.Is(err, objects.ErrNotFound) {
			continue // replayed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("load: dead letter %s: %w", o.Key, err)
		}
		d.Error = a.Metadata[MetaError]
		d.Attempts, _ = strconv.Atoi(a.Metadata[MetaAttempts])
		if !a.ModTime.IsZero() {
			d.At = a.ModTime
		}
		if records {
			d.Records = countRecords(data)
		}
		out = append(out, d)
	}
	return out, nil
}

// IsDead reports whether a raw object is dead-lettered.
func (l *Loader) IsDead(ctx context.Context, key string) (bool, error) {
	if !strings.HasPrefix(key, RawPrefix) || objects.ValidateKey(key) != nil {
		return false, nil
	}
	ok, err := l.bucket.Exists(ctx, DeadPrefix+key)
	if err != nil {
		return false, fmt.Errorf("load: %w", err)
	}
	return ok, nil
}

// CountDead returns how many objects are dead-lettered (one listing).
func (l *Loader) CountDead(ctx context.Context) (int, error) {
	n := 0
	if err := l.bucket.List(ctx, DeadPrefix+RawPrefix, func(objects.Object) error {
		n++
		return nil
	}); err != nil {
		return 0, fmt.Errorf("load: list dead letters: %w", err)
	}
	return n, nil
}

// countRecords counts the records of a raw object; of a damaged one, its
// non-blank lines.
func countRecords(data []byte) int {
	if ids, err := record.StoredIDs(data); err == nil {
		return len(ids)
	}
	n := 0
	for line := range bytes.Lines(data) {
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

// Replay moves a dead-lettered object back under raw/ and loads it, the
// same idempotent load as the first time; key is the raw key or the dead
// one. If it fails for good again it is dead-lettered again with the new
// error; if it fails for now (a dependency down) it stays under raw/,
// where the reconciler retries it.
func (l *Loader) Replay(ctx context.Context, key string) (Result, error) {
	raw := strings.TrimPrefix(key, DeadPrefix)
	if !strings.HasPrefix(raw, RawPrefix) {
		return Result{Key: raw}, fmt.Errorf("load: replay %s: not a dead-lettered raw object", key)
	}
	if err := l.bucket.Move(ctx, DeadPrefix+raw, raw, map[string]string{MetaError: "", MetaAttempts: "", MetaFailingSince: ""}); err != nil {
		return Result{Key: raw}, fmt.Errorf("load: replay %s: %w", raw, err)
	}
	res, err := l.loadLogged(ctx, raw, "replay")
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, functions.ErrPermanent):
		if derr := l.DeadLetter()(ctx, functions.Event{ID: raw, Source: "replay", Attempt: 1}, err); derr != nil {
			return res, fmt.Errorf("load: replay %s: %w (and moving it back under %s failed: %v)", raw, err, DeadPrefix, derr)
		}
		return res, fmt.Errorf("load: replay %s: dead-lettered again: %w", raw, err)
	}
	return res, fmt.Errorf("load: replay %s: left under %s for the reconciler: %w", raw, RawPrefix, err)
}

// FullScanEvery is how often Pending lists every raw partition rather than
// those from the watermark on.
const FullScanEvery = time.Hour

// Pending calls submit for every raw object that is neither loaded nor
// dead-lettered, whatever its age. It lists the hourly partitions from the
// newest fully loaded one (the watermark) on, which keeps it cheap on a
// large store, and every partition on its first call and every
// FullScanEvery, so an object that lands behind the watermark (a replayed
// dead letter, a lost load marker) is found too.
func (l *Loader) Pending(ctx context.Context, submit func(functions.Event)) error {
	l.mu.Lock()
	full := time.Since(l.lastFull) >= FullScanEvery
	l.mu.Unlock()
	if full {
		return l.PendingAll(ctx, submit)
	}
	return l.pending(ctx, false, submit)
}

// PendingAll is Pending listing every partition.
func (l *Loader) PendingAll(ctx context.Context, submit func(functions.Event)) error {
	start := time.Now()
	if err := l.pending(ctx, true, submit); err != nil {
		return err
	}
	l.mu.Lock()
	l.lastFull = start
	l.mu.Unlock()
	return nil
}

func (l *Loader) pending(ctx context.Context, all bool, submit func(functions.Event)) error {
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	if all || l.known == nil {
		l.known = map[string]*partKnown{}
	}
	known := l.known
	parts, err := l.partitions(ctx)
	if err != nil {
		return err
	}
	w, hasMark, err := l.watermark(ctx)
	if err != nil {
		return err
	}
	// A partition becomes the watermark only once no writer can still be
	// writing into it: two hours after it began.
	settled := PartitionOf(time.Now().Add(-2 * time.Hour))
	allDone := true
	listed := map[string]bool{}
	defer func() {
		// Partitions this pass did not list (behind the watermark, or
		// gone) are not listed by the next either, until a full one.
		for p := range known {
			if !listed[p] {
				delete(known, p)
			}
		}
	}()
	for _, p := range parts {
		if !all && hasMark && p < w {
			continue
		}
		listed[p] = true
		if known[p] == nil {
			known[p] = &partKnown{loaded: map[string]struct{}{}}
		}
		missing, err := l.unloaded(ctx, p, known[p])
		if err != nil {
			return err
		}
		for _, k := range missing {
			submit(functions.Event{ID: k})
		}
		if len(missing) > 0 {
			allDone = false
		}
		if allDone && p <= settled && (!hasMark || p > w) {
			if err := l.setWatermark(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Unloaded returns the key of every raw object that is neither loaded nor
// dead-lettered, in key order.
func (l *Loader) Unloaded(ctx context.Context) ([]string, error) {
	parts, err := l.partitions(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range parts {
		missing, err := l.unloaded(ctx, p, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, missing...)
	}
	return out, nil
}

// partitions lists raw/YYYY/MM/DD/HH/ prefixes in order.
func (l *Loader) partitions(ctx context.Context) ([]string, error) {
	level := []string{RawPrefix}
	for depth := 0; depth < 4; depth++ {
		var next []string
		for _, p := range level {
			dirs, err := l.bucket.ListDirs(ctx, p)
			if err != nil {
				return nil, fmt.Errorf("load: %w", err)
			}
			next = append(next, dirs...)
		}
		level = next
	}
	return level, nil
}

// partKnown is what passes of Pending found loaded in one partition:
// every key up to upTo, in key order, and the keys after it in loaded. A
// loaded key moves into upTo once every key before it is loaded too and
// it is settled (see settled), so loaded holds the last few minutes'
// keys, not the hour's: at 200 objects a second an hour of keys held
// one by one was 720,000 strings on the heap.
type partKnown struct {
	upTo   string
	loaded map[string]struct{}
}

// SettleAfter is how old (by the time in its name) a loaded raw key must
// be before Pending stops asking about keys before it: an object written
// later under an earlier name (a write that took that long) is still
// found by its notification or by the next full pass (FullScanEvery).
const SettleAfter = 5 * time.Minute

// settled reports whether key is older than SettleAfter by the UUIDv7
// time in its name (raw/…/HH/<uuidv7>.ndjson, as the API names them); a
// name without one is settled.
func settled(key string, now time.Time) bool {
	u, err := uuid.Parse(strings.TrimSuffix(path.Base(key), ".ndjson"))
	if err != nil || u.Version() != 7 {
		return true
	}
	sec, nsec := u.Time().UnixTime()
	return time.Unix(sec, nsec).Before(now.Add(-SettleAfter))
}

// advance moves k.upTo over the keys after it (listed, in any order)
// that are loaded and settled, up to the first that is not, and forgets
// them from k.loaded. It reports whether it passed them all.
func (k *partKnown) advance(listed []string, now time.Time) bool {
	slices.Sort(listed)
	for _, key := range listed {
		if _, ok := k.loaded[key]; !ok || !settled(key, now) {
			return false
		}
		k.upTo = key
		delete(k.loaded, key)
	}
	return true
}

// has reports whether k (which may be nil) holds key as loaded.
func (k *partKnown) has(key string) bool {
	if k == nil {
		return false
	}
	_, ok := k.loaded[key]
	return ok
}

// unloaded lists the keys of a partition's raw objects that are neither
// in the loaded-objects table nor under dead/: a keys-only listing of
// each and a lookup of the listed keys that known (when not nil) does not
// hold; the keys found loaded are added to known, and its mark advanced.
// The listing starts after known's mark (objects.Bucket.ListKeysAfter),
// so a pass reads the last few minutes' keys, not the hour's; and it is
// looked up as it goes, a chunk of keys at a time, so a full pass
// over an hour's partition holds a chunk of it, not all of it.
func (l *Loader) unloaded(ctx context.Context, partition string, known *partKnown) ([]string, error) {
	after := ""
	if known != nil {
		after = known.upTo
	}
	var (
		ask, listed, missing []string
		dead                 map[string]bool // the partition's dead letters, once listed
		advancing            = known != nil
	)
	check := func() error {
		var done map[string]bool
		if len(ask) > 0 {
			var err error
			if done, err = l.loadedAmong(ctx, ask); err != nil {
				return err
			}
		}
		if known != nil {
			for k := range done {
				known.loaded[k] = struct{}{}
			}
			// Once a key stops the mark, the ones after it wait in
			// known.loaded for a later pass.
			if advancing {
				advancing = known.advance(listed, time.Now())
			}
		}
		if len(done) < len(ask) && dead == nil {
			// Some key is not loaded: a dead letter, or work.
			dead = map[string]bool{}
			l.deadListed.Add(1)
			if err := l.bucket.ListKeys(ctx, DeadPrefix+partition, func(k string) error {
				dead[strings.TrimPrefix(k, DeadPrefix)] = true
				return nil
			}); err != nil {
				return fmt.Errorf("load: %w", err)
			}
		}
		for _, k := range ask {
			if !done[k] && !dead[k] {
				missing = append(missing, k)
			}
		}
		ask, listed = ask[:0], listed[:0]
		return nil
	}
	if err := l.bucket.ListKeysAfter(ctx, partition, after, func(k string) error {
		if !strings.HasSuffix(k, ".ndjson") {
			return nil
		}
		if known != nil {
			listed = append(listed, k)
		}
		if !known.has(k) {
			ask = append(ask, k)
		}
		if len(listed) < l.chunk && len(ask) < l.chunk {
			return nil
		}
		return check()
	}); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := check(); err != nil {
		return nil, err
	}
	return missing, nil
}

// reconcileChunk is how many listed keys unloaded looks up at a time.
const reconcileChunk = 10_000

// loadedAmong returns which of keys the loaded-objects table holds: a
// lookup of each by the primary key, so what it costs follows the keys
// asked about (a partition's listing), not the table, which keeps every
// object ever loaded. (A prefix match, key LIKE 'raw/…/HH/%', read the
// whole table: SQLite's LIKE is case-insensitive, so the key index
// cannot serve it.)
func (l *Loader) loadedAmong(ctx context.Context, keys []string) (map[string]bool, error) {
	l.lookedUp.Add(int64(len(keys)))
	d := l.db.Dialect
	done := make(map[string]bool, len(keys))
	args := make([]any, 0, min(len(keys), 500))
	q, qn := "", 0
	for chunk := range sqldb.StatementChunks(d, keys, min(500, sqldb.MaxRows(d, 1))) {
		args = args[:0]
		for _, k := range chunk {
			args = append(args, k)
		}
		if qn != len(chunk) {
			q = fmt.Sprintf("SELECT %s FROM %s WHERE %s IN (%s)", d.Quote("key"), d.Quote(LoadedTable), d.Quote("key"), sqldb.Placeholders(d, 1, len(chunk)))
			qn = len(chunk)
		}
		if err := l.scanLoaded(ctx, q, args, done); err != nil {
			return nil, err
		}
	}
	return done, nil
}

func (l *Loader) scanLoaded(ctx context.Context, q string, args []any, done map[string]bool) error {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("load: list loaded: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return fmt.Errorf("load: list loaded: %w", err)
		}
		done[k] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load: list loaded: %w", err)
	}
	return nil
}

// The watermark is the newest partition whose objects (and all before it)
// were loaded. Objects of an hour can still arrive late (a slow writer at
// the turn of the hour), so the watermark partition itself is always
// listed again.
const watermarkName = "watermark"

func (l *Loader) watermark(ctx context.Context) (string, bool, error) {
	d := l.db.Dialect
	var v string
	err := l.db.QueryRowContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", d.Quote("value"), d.Quote(StateTable), d.Quote("name"), d.Placeholder(1)), watermarkName).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("load: watermark: %w", err)
	}
	return v, true, nil
}

func (l *Loader) setWatermark(ctx context.Context, partition string) error {
	if _, err := l.db.ExecContext(ctx, l.db.Dialect.Upsert(l.state, 1), watermarkName, partition); err != nil {
		return fmt.Errorf("load: set watermark: %w", err)
	}
	return nil
}

// PartitionOf returns the raw partition prefix for an instant:
// raw/YYYY/MM/DD/HH/ in UTC.
func PartitionOf(t time.Time) string {
	return RawPrefix + t.UTC().Format("2006/01/02/15") + "/"
}
