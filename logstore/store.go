// Package logstore is intercloud's central log store: it takes the JSON log
// lines that every component of both clouds ships (see telemetry), keeps
// them in SQLite with indexed columns for time, cloud, component, trace id
// and level and an FTS5 full-text index over the message and attributes,
// and answers searches from Go, over HTTP (Handler) and from a small page.
package logstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlite"
)

// MaxLineSize is the longest log line Insert accepts.
const MaxLineSize = 1 << 20

// maxFieldLen bounds the indexed short fields (level, cloud, component,
// trace id).
const maxFieldLen = 256

// maxTraceFieldLen bounds a line's trace_id field, which holds every trace
// of a batch separated by spaces; each id is at most maxFieldLen.
const maxTraceFieldLen = 256 << 10

// Entry is one stored log line.
type Entry struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Msg       string    `json:"msg"`
	Cloud     string    `json:"cloud"`
	Component string    `json:"component"`
	TraceID   string    `json:"trace_id"`
	// Attrs is the whole line as received (compacted JSON).
	Attrs json.RawMessage `json:"attrs"`
}

// Store is an open log store. It is safe for concurrent use.
type Store struct {
	db  *sqldb.DB
	log *slog.Logger
	now func() time.Time
}

// Option configures Open.
type Option func(*Store)

// WithLogger sets the logger for the store's own errors (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.log = l
		}
	}
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS logs (
		id INTEGER PRIMARY KEY,
		time TEXT NOT NULL,
		level TEXT NOT NULL,
		msg TEXT NOT NULL,
		cloud TEXT NOT NULL,
		component TEXT NOT NULL,
		trace_id TEXT NOT NULL,
		line TEXT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS logs_time ON logs (time)`,
	`CREATE INDEX IF NOT EXISTS logs_trace_id ON logs (trace_id, time)`,
	`CREATE INDEX IF NOT EXISTS logs_cloud ON logs (cloud, time)`,
	`CREATE INDEX IF NOT EXISTS logs_component ON logs (component, time)`,
	`CREATE INDEX IF NOT EXISTS logs_level ON logs (level, time)`,
	// A line about a batch names every trace it carries ("trace_id": "a b c"):
	// one row per trace id, so trace_id:a finds it.
	`CREATE TABLE IF NOT EXISTS log_traces (trace_id TEXT NOT NULL, log_id INTEGER NOT NULL, PRIMARY KEY (trace_id, log_id)) WITHOUT ROWID`,
	// Contentless: the text lives in logs; the index only maps terms to ids.
	// The keys of the batches stored (a shipper's Idempotency-Key), so a
	// batch sent again after a lost answer is not stored twice.
	`CREATE TABLE IF NOT EXISTS log_batches (key TEXT PRIMARY KEY, at TEXT NOT NULL) WITHOUT ROWID`,
	`CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(msg, attrs, content='', contentless_delete=1, tokenize='unicode61')`,
}

// Open opens (creating if needed) the store at a sqlite:///path/logs.db URL.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	s := &Store{log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	db, err := sqldb.Open(ctx, url, s.log)
	if err != nil {
		return nil, fmt.Errorf("logstore: %w", err)
	}
	if db.Dialect.Name() != sqlite.Scheme {
		db.Close()
		return nil, fmt.Errorf("logstore: open %s: only sqlite:// is supported", db.Name)
	}
	for _, stmt := range schema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("logstore: create schema in %s: %w", db.Name, err)
		}
	}
	s.db = db
	return s, nil
}

// Close closes the database; it is safe to call more than once.
func (s *Store) Close() error {
	if s == nil || s.db == nil {
		return nil
	}
	err := s.db.Close()
	if err != nil {
		return fmt.Errorf("logstore: close: %w", err)
	}
	return nil
}

// row is a parsed line ready to insert.
type row struct {
	time                                time.Time
	level, msg, cloud, component, trace string
	text                                string // attribute text for the full-text index
	line                                []byte
}

// builtin fields are columns; the rest is attribute text.
var builtin = map[string]bool{
	"time": true, "@timestamp": true, "level": true, "msg": true, "message": true,
	"cloud": true, "component": true, "trace_id": true,
}

// parseLine reads one JSON log line. A missing time is now; a missing level
// is INFO; "@timestamp" and "message" are read when "time" and "msg" are
// absent. The line must be a JSON object whose known fields are strings.
func parseLine(line []byte, now time.Time) (row, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return row{}, errors.New("empty line")
	}
	if len(line) > MaxLineSize {
		return row{}, fmt.Errorf("line of %d bytes is over %d", len(line), MaxLineSize)
	}
	line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return row{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if m == nil {
		return row{}, errors.New("not a JSON object")
	}
	str := func(keys ...string) (string, error) {
		for _, k := range keys {
			v, ok := m[k]
			if !ok {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", fmt.Errorf("field %q is not a string", k)
			}
			return s, nil
		}
		return "", nil
	}
	var r row
	var err error
	fields := []struct {
		dst  *string
		keys []string
	}{
		{&r.level, []string{"level"}}, {&r.msg, []string{"msg", "message"}},
		{&r.cloud, []string{"cloud"}}, {&r.component, []string{"component"}},
		{&r.trace, []string{"trace_id"}},
	}
	for _, f := range fields {
		if *f.dst, err = str(f.keys...); err != nil {
			return row{}, err
		}
		limit := maxFieldLen
		switch f.dst {
		case &r.msg:
			continue
		case &r.trace: // a line about a batch names all its traces
			limit = maxTraceFieldLen
		}
		if len(*f.dst) > limit {
			return row{}, fmt.Errorf("field %q is longer than %d bytes", f.keys[0], limit)
		}
	}
	r.level = strings.ToUpper(r.level)
	if r.level == "" {
		r.level = "INFO"
	}
	ts, err := str("time", "@timestamp")
	if err != nil {
		return row{}, err
	}
	if ts == "" {
		r.time = now.UTC()
	} else if r.time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return row{}, fmt.Errorf("time %q is not RFC 3339", truncate(ts, 64))
	}
	r.time = r.time.UTC()
	if y := r.time.Year(); y < 1 || y > 9999 {
		return row{}, fmt.Errorf("time %q is out of range", truncate(ts, 64))
	}
	var b strings.Builder
	keys := make([]string, 0, len(m))
	for k := range m {
		if !builtin[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(' ')
		attrText(&b, m[k])
	}
	r.text = b.String()
	var c bytes.Buffer
	if err := json.Compact(&c, line); err != nil {
		return row{}, fmt.Errorf("not a JSON object: %w", err)
	}
	r.line = c.Bytes()
	return r, nil
}

// attrText writes the words of a JSON value: object keys and scalar values.
func attrText(b *strings.Builder, raw json.RawMessage) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	for {
		t, err := d.Token()
		if err != nil {
			return
		}
		switch v := t.(type) {
		case string:
			b.WriteString(v)
		case json.Number:
			b.WriteString(v.String())
		case bool:
			b.WriteString(strconv.FormatBool(v))
		default:
			continue
		}
		b.WriteByte(' ')
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Insert stores JSON log lines in one transaction and returns how many were
// accepted. Lines that cannot be parsed (not a JSON object, a bad time, a
// non-string known field, over MaxLineSize) are skipped; blank lines count
// as rejected too. An error means nothing was stored.
func (s *Store) Insert(ctx context.Context, lines [][]byte) (int, error) {
	return s.InsertBatch(ctx, "", lines)
}

// InsertBatch is Insert for a batch named by key (a shipper's
// Idempotency-Key): a batch whose key was stored before is not stored
// again (it returns 0 and no error). An empty key is Insert.
func (s *Store) InsertBatch(ctx context.Context, key string, lines [][]byte) (int, error) {
	now := s.now()
	rows := make([]row, 0, len(lines))
	for _, l := range lines {
		r, err := parseLine(l, now)
		if err != nil {
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	dup := false
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		dup = false
		if key != "" {
			res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO log_batches (key, at) VALUES (?, ?)`, key, now.UTC().Format(sqlite.TimeFormat))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				dup = true
				return err
			}
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO logs (time, level, msg, cloud, component, trace_id, line) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		fts, err := tx.PrepareContext(ctx, `INSERT INTO logs_fts (rowid, msg, attrs) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer fts.Close()
		trc, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO log_traces (trace_id, log_id) VALUES (?, ?)`)
		if err != nil {
			return err
		}
		defer trc.Close()
		for _, r := range rows {
			res, err := ins.ExecContext(ctx, r.time.Format(sqlite.TimeFormat), r.level, r.msg, r.cloud, r.component, r.trace, string(r.line))
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if _, err := fts.ExecContext(ctx, id, r.msg, r.text); err != nil {
				return err
			}
			for _, tid := range TraceIDs(r.trace) {
				if len(tid) > maxFieldLen {
					continue
				}
				if _, err := trc.ExecContext(ctx, tid, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("logstore: insert %d lines: %w", len(rows), err)
	}
	if dup {
		return 0, nil
	}
	return len(rows), nil
}

// Search returns the entries matching q, newest first.
func (s *Store) Search(ctx context.Context, q Query) ([]Entry, error) {
	var where []string
	var args []any
	var match []string
	for _, t := range terms(q.Text) {
		if indexable(t) {
			match = append(match, ftsPhrase(t))
		} else {
			// Punctuation only: the tokenizer does not index it, so look
			// for it literally in the line.
			where = append(where, "instr(l.line, ?) > 0")
			args = append(args, t)
		}
	}
	if len(match) > 0 {
		where = append(where, "l.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?)")
		args = append(args, strings.Join(match, " AND "))
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, "l."+col+" = ?")
			args = append(args, v)
		}
	}
	eq("cloud", q.Cloud)
	eq("component", q.Component)
	if q.TraceID != "" {
		where = append(where, "l.id IN (SELECT log_id FROM log_traces WHERE trace_id = ?)")
		args = append(args, q.TraceID)
	}
	eq("level", strings.ToUpper(q.Level))
	if !q.Since.IsZero() {
		where = append(where, "l.time >= ?")
		args = append(args, q.Since.UTC().Format(sqlite.TimeFormat))
	}
	if !q.Until.IsZero() {
		where = append(where, "l.time < ?")
		args = append(args, q.Until.UTC().Format(sqlite.TimeFormat))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	stmt := "SELECT l.time, l.level, l.msg, l.cloud, l.component, l.trace_id, l.line FROM logs l"
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	stmt += " ORDER BY l.time DESC, l.id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("logstore: search: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		var ts, line string
		if err := rows.Scan(&ts, &e.Level, &e.Msg, &e.Cloud, &e.Component, &e.TraceID, &line); err != nil {
			return nil, fmt.Errorf("logstore: search: %w", err)
		}
		if e.Time, err = time.Parse(sqlite.TimeFormat, ts); err != nil {
			return nil, fmt.Errorf("logstore: search: stored time %q: %w", ts, err)
		}
		e.Attrs = json.RawMessage(line)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("logstore: search: %w", err)
	}
	return out, nil
}

// Prune deletes the entries older than before and returns how many.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	cut := before.UTC().Format(sqlite.TimeFormat)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM logs_fts WHERE rowid IN (SELECT id FROM logs WHERE time < ?)`, cut); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM log_traces WHERE log_id IN (SELECT id FROM logs WHERE time < ?)`, cut); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM logs WHERE time < ?`, cut)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("logstore: prune: %w", err)
	}
	return n, nil
}

// TraceIDs splits a line's trace_id field: one id, or several separated by
// spaces or commas (a line about a batch names every trace in it).
func TraceIDs(field string) []string {
	return strings.FieldsFunc(field, func(r rune) bool { return r == ' ' || r == ',' })
}
