// Package lease elects one holder among the processes that share a
// database, for the roles that must run once (a replication stream,
// publish, the reconciler, trimming), with a fencing token that turns a
// deposed holder's late writes away.
//
// A lease is a row of the table _ic_leases in the database the role
// writes to: its name, the holder, a fencing token that grows by one at
// every change of holder, and a version the holder bumps at every renewal.
// The same row works on every dialect (SQLite, MySQL/MariaDB, PostgreSQL,
// SQL Server); no advisory lock is needed, and a lease outlives the
// connection that took it.
//
// Nobody compares clocks. A candidate takes the lease over when it has
// seen the row's version unchanged for a whole TTL on its own monotonic
// clock (as Kubernetes leader election does), with a compare-and-swap on
// that version; a holder that could not renew for two thirds of the TTL,
// counted from the start of its last successful renewal, steps down before
// any candidate can take over. A holder that stops cleanly releases the
// row so that a standby takes over at its next try.
//
// Fencing: a holder's writes call Fence inside their transaction, which
// updates the lease row only while it still carries the holder's token.
// The row lock orders that transaction against a takeover: either the
// write commits before the takeover, or it fails with ErrFenced and
// changes nothing.
package lease

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// Table is the name of the lease table.
const Table = "_ic_leases"

// Writer names the lease's own database writes (campaign, renewal,
// release) for sqldb.WithWriter; the role's writes are the role's.
const Writer = "lease"

// DefaultTTL is how long a silent holder keeps its lease.
const DefaultTTL = 5 * time.Second

// ErrFenced is returned by Fence when the lease has passed to another
// holder (or was never held): the transaction must not commit.
var ErrFenced = errors.New("lease: fenced off: the lease is held by another holder")

var tableDef = sqldb.Table{
	Name: Table,
	Columns: []sqldb.Column{
		{Name: "name", Type: sqldb.Type{Kind: sqldb.KindString, Length: 190}},
		{Name: "holder", Type: sqldb.Type{Kind: sqldb.KindString, Length: 190}},
		{Name: "token", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "version", Type: sqldb.Type{Kind: sqldb.KindInt}},
		{Name: "fences", Type: sqldb.Type{Kind: sqldb.KindInt}},
	},
	PrimaryKey: []string{"name"},
}

// Ensure creates the lease table in db if it is missing.
func Ensure(ctx context.Context, db *sqldb.DB) error {
	if err := db.EnsureTable(ctx, tableDef); err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	return nil
}

// NewHolder returns a name for this process that no other process (or
// earlier run of this one) has: host, pid and random bits.
func NewHolder() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Config configures a Lease.
type Config struct {
	// DB keeps the lease row; the role's own writes should go to the same
	// database so that Fence can guard them.
	DB *sqldb.DB
	// Name names the lease (e.g. "replicate:aws-to-azure").
	Name string
	// Holder names this process (NewHolder); required.
	Holder string
	// TTL is how long a holder that stopped renewing keeps the lease
	// (default DefaultTTL, at least 300ms).
	TTL time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnChange, when set, is told each time this process gains (held) or
	// loses the lease.
	OnChange func(held bool, token int64)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.DB == nil:
		return errors.New("lease: config: DB is required")
	case c.Name == "":
		return errors.New("lease: config: Name is required")
	case len(c.Name) > 190:
		return fmt.Errorf("lease: config: Name %q is longer than 190 bytes", c.Name)
	case c.Holder == "":
		return errors.New("lease: config: Holder is required")
	case len(c.Holder) > 190:
		return fmt.Errorf("lease: config: Holder %q is longer than 190 bytes", c.Holder)
	case c.TTL < 0:
		return errors.New("lease: config: TTL is negative")
	case c.TTL > 0 && c.TTL < 300*time.Millisecond:
		return fmt.Errorf("lease: config: TTL %v is below 300ms", c.TTL)
	}
	return nil
}

// Lease campaigns for one named lease and runs a role while it holds it.
// It is safe for concurrent use.
type Lease struct {
	cfg Config
	log *slog.Logger
	q   queries

	mu     sync.Mutex
	status Status
}

// lostNotRenewed is why a holder that could not renew in time lost its lease.
const lostNotRenewed = "not renewed in time"

// Status is what a Lease knows about its row.
type Status struct {
	Name string `json:"name"`
	// Held is true while this process holds the lease.
	Held bool `json:"held"`
	// Token is the fencing token this process holds (0 when not held).
	Token int64 `json:"token,omitempty"`
	// Holder is the holder last seen in the row ("" when released).
	Holder string `json:"holder"`
	// Since is when this process last gained or lost the lease.
	Since time.Time `json:"since,omitzero"`
	// Takeovers counts the times this process gained the lease.
	Takeovers int64 `json:"takeovers"`
	// LastError is the last error talking to the database, if the last
	// try failed.
	LastError string `json:"last_error,omitempty"`
	// Lost says why this process last lost the lease ("taken over by
	// another process", "not renewed in time: ERR"); empty while it holds
	// the lease, before it ever held it and after it released it.
	Lost string `json:"lost,omitempty"`
	// Mine is true when Holder is this process: while it holds the lease,
	// or after it lost the lease that nobody took yet (set by Status).
	Mine bool `json:"mine"`
}

// New checks cfg and returns a Lease; it starts nothing.
func New(cfg Config) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Lease{cfg: cfg, log: cfg.Logger.With("lease", cfg.Name), q: newQueries(cfg.DB.Dialect)}
	l.status.Name = cfg.Name
	return l, nil
}

// Name returns the lease's name.
func (l *Lease) Name() string { return l.cfg.Name }

// Status returns what the lease knows now.
func (l *Lease) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.status
	s.Mine = s.Holder != "" && s.Holder == l.cfg.Holder
	return s
}

// Token returns the fencing token while held, else 0.
func (l *Lease) Token() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.status.Held {
		return 0
	}
	return l.status.Token
}

// Fence must run inside every transaction of the holder's writes that a
// deposed holder must not make: it fails with ErrFenced unless the row
// still carries this holder's token, and holds the row's lock until the
// transaction ends, so a takeover waits for the commit (or sees it).
func (l *Lease) Fence(ctx context.Context, tx *sql.Tx) error {
	token := l.Token()
	if token == 0 {
		return fmt.Errorf("lease %s: %w", l.cfg.Name, ErrFenced)
	}
	return FenceToken(ctx, tx, l.cfg.DB.Dialect, l.cfg.Name, l.cfg.Holder, token)
}

// FenceToken is Fence for a holder and token known to the caller (a
// process that carries its token elsewhere).
func FenceToken(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, name, holder string, token int64) error {
	q := newQueries(d)
	res, err := tx.ExecContext(ctx, q.fence, name, token, holder)
	if err != nil {
		return fmt.Errorf("lease %s: fence: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("lease %s: fence: %w", name, err)
	} else if n != 1 {
		return fmt.Errorf("lease %s: token %d: %w", name, token, ErrFenced)
	}
	return nil
}

// Run campaigns until ctx ends. Each time the lease is gained it calls
// role with a context that is cancelled when the lease is lost (or ctx
// ends) and the fencing token; it waits for role to return before it
// campaigns again, and releases the lease when role returns by itself or
// ctx ends. Run returns nil when ctx ends.
func (l *Lease) Run(ctx context.Context, role func(ctx context.Context, token int64)) error {
	if err := Ensure(ctx, l.cfg.DB); err != nil && ctx.Err() == nil {
		l.setError(err)
		l.log.Warn("lease table not ready; retrying", "err", err)
	}
	tick := l.cfg.TTL / 3
	var (
		seenVersion int64 = -1
		seenAt      time.Time
	)
	for {
		held, token, version, err := l.campaign(ctx, &seenVersion, &seenAt)
		if err != nil && ctx.Err() == nil {
			l.setError(err)
			l.log.Debug("lease campaign failed", "err", err)
		}
		if held {
			l.hold(ctx, token, version, role)
			seenVersion, seenAt = -1, time.Time{}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tick):
		}
	}
}

// campaign reads the row once and takes the lease when it is free,
// released, or its version stood still for a TTL.
func (l *Lease) campaign(ctx context.Context, seenVersion *int64, seenAt *time.Time) (held bool, token, version int64, err error) {
	ctx, cancel := context.WithTimeout(sqldb.WithWriter(ctx, Writer), l.cfg.TTL)
	defer cancel()
	db := l.cfg.DB
	var holder string
	err = db.QueryRowContext(ctx, l.q.read, l.cfg.Name).Scan(&holder, &token, &version)
	if errors.Is(err, sql.ErrNoRows) {
		res, err := db.ExecContext(ctx, l.q.insert, l.cfg.Name, l.cfg.Holder, int64(1), int64(1), int64(0))
		if err != nil {
			return false, 0, 0, fmt.Errorf("lease %s: create: %w", l.cfg.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			l.gained(1, "")
			return true, 1, 1, nil
		}
		return false, 0, 0, nil // another process created it first
	}
	if err != nil {
		if errors.Is(err, sqldb.ErrNoTable) || isNoTable(err) {
			_ = Ensure(ctx, db)
		}
		return false, 0, 0, fmt.Errorf("lease %s: read: %w", l.cfg.Name, err)
	}
	l.clearError(holder)
	now := time.Now()
	if holder != "" && version != *seenVersion {
		*seenVersion, *seenAt = version, now
		return false, 0, 0, nil
	}
	if holder != "" && now.Sub(*seenAt) < l.cfg.TTL {
		return false, 0, 0, nil
	}
	res, err := db.ExecContext(ctx, l.q.take, l.cfg.Holder, l.cfg.Name, version, token)
	if err != nil {
		return false, 0, 0, fmt.Errorf("lease %s: take over: %w", l.cfg.Name, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		*seenVersion = -1 // someone else moved it; watch again
		return false, 0, 0, nil
	}
	l.gained(token+1, holder)
	return true, token + 1, version + 1, nil
}

// hold runs role while renewing, and releases the lease afterwards.
func (l *Lease) hold(ctx context.Context, token, version int64, role func(context.Context, int64)) {
	roleCtx, stopRole := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		role(roleCtx, token)
	}()
	tick := time.NewTicker(l.cfg.TTL / 3)
	defer tick.Stop()
	lastRenew := time.Now()
	lost := func(why string, err error) {
		l.log.Warn("lease lost; role stopped", "why", why, "fencing", token, "err", err)
		stillNamed := why == lostNotRenewed // nobody took it: the row still names this process
		if err != nil {
			why += ": " + err.Error()
		}
		l.lost(why, stillNamed)
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-done:
			break loop
		case <-tick.C:
			start := time.Now()
			ok, err := l.renew(ctx, token)
			switch {
			case err == nil && ok:
				lastRenew = start
				l.clearError(l.cfg.Holder)
			case err == nil && !ok:
				stopRole()
				<-done
				lost("taken over by another process", nil)
				return
			case ctx.Err() != nil:
				break loop
			default:
				l.setError(err)
				if time.Since(lastRenew) >= 2*l.cfg.TTL/3 {
					stopRole()
					<-done
					lost(lostNotRenewed, err)
					return
				}
			}
		}
	}
	stopRole()
	<-done
	l.release(token)
	l.lost("", false)
}

func (l *Lease) renew(ctx context.Context, token int64) (bool, error) {
	ctx, cancel := context.WithTimeout(sqldb.WithWriter(ctx, Writer), l.cfg.TTL/3)
	defer cancel()
	res, err := l.cfg.DB.ExecContext(ctx, l.q.renew, l.cfg.Name, token, l.cfg.Holder)
	if err != nil {
		return false, fmt.Errorf("lease %s: renew: %w", l.cfg.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("lease %s: renew: %w", l.cfg.Name, err)
	}
	return n == 1, nil
}

// release hands the lease back so that a standby need not wait a TTL.
func (l *Lease) release(token int64) {
	ctx, cancel := context.WithTimeout(sqldb.WithWriter(context.Background(), Writer), l.cfg.TTL/3)
	defer cancel()
	if _, err := l.cfg.DB.ExecContext(ctx, l.q.release, l.cfg.Name, token, l.cfg.Holder); err != nil {
		l.log.Warn("lease not released; a standby takes over after the TTL", "err", err)
		return
	}
	l.log.Info("lease released", "fencing", token)
}

func (l *Lease) gained(token int64, from string) {
	l.mu.Lock()
	l.status.Held, l.status.Token, l.status.Holder = true, token, l.cfg.Holder
	l.status.Since, l.status.LastError, l.status.Lost = time.Now(), "", ""
	l.status.Takeovers++
	l.mu.Unlock()
	l.log.Info("lease gained", "fencing", token, "previous_holder", from)
	if l.cfg.OnChange != nil {
		l.cfg.OnChange(true, token)
	}
}

// lost records that this process no longer holds the lease, and why
// ("" after a release). Who holds it now is known at the next campaign;
// only a lease not renewed in time (stillNamed) may still name this
// process.
func (l *Lease) lost(why string, stillNamed bool) {
	l.mu.Lock()
	token := l.status.Token
	l.status.Held, l.status.Token, l.status.Since, l.status.Lost = false, 0, time.Now(), why
	if !stillNamed {
		l.status.Holder = ""
	}
	l.mu.Unlock()
	if l.cfg.OnChange != nil {
		l.cfg.OnChange(false, token)
	}
}

func (l *Lease) setError(err error) {
	l.mu.Lock()
	l.status.LastError = err.Error()
	l.mu.Unlock()
}

func (l *Lease) clearError(holder string) {
	l.mu.Lock()
	l.status.LastError, l.status.Holder = "", holder
	l.mu.Unlock()
}

// isNoTable reports whether a read failed because the table is missing
// (the drivers word it differently).
func isNoTable(err error) bool {
	s := err.Error()
	for _, m := range []string{"no such table", "doesn't exist", "does not exist", "Invalid object name"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// queries are the statements of one dialect.
type queries struct {
	read, insert, take, renew, release, fence string
}

func newQueries(d sqldb.Dialect) queries {
	t := d.Quote(Table)
	c := func(n string) string { return d.Quote(n) }
	p := d.Placeholder
	return queries{
		read:   fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s = %s", c("holder"), c("token"), c("version"), t, c("name"), p(1)),
		insert: d.InsertIgnore(tableDef, 1),
		take: fmt.Sprintf("UPDATE %s SET %s = %s, %s = %s + 1, %s = %s + 1 WHERE %s = %s AND %s = %s AND %s = %s",
			t, c("holder"), p(1), c("token"), c("token"), c("version"), c("version"), c("name"), p(2), c("version"), p(3), c("token"), p(4)),
		renew: fmt.Sprintf("UPDATE %s SET %s = %s + 1 WHERE %s = %s AND %s = %s AND %s = %s",
			t, c("version"), c("version"), c("name"), p(1), c("token"), p(2), c("holder"), p(3)),
		release: fmt.Sprintf("UPDATE %s SET %s = '', %s = %s + 1 WHERE %s = %s AND %s = %s AND %s = %s",
			t, c("holder"), c("version"), c("version"), c("name"), p(1), c("token"), p(2), c("holder"), p(3)),
		fence: fmt.Sprintf("UPDATE %s SET %s = %s + 1 WHERE %s = %s AND %s = %s AND %s = %s",
			t, c("fences"), c("fences"), c("name"), p(1), c("token"), p(2), c("holder"), p(3)),
	}
}
