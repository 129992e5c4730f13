package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/permanent"
	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// checkTimeout bounds one store's start check.
const checkTimeout = 15 * time.Second

// StartError is a configured store that failed its start check. Its
// message is one line: the key, the URL (credentials masked), what is
// wrong and how to fix it.
type StartError struct {
	// Key is the topology file's key ("clouds.azure.objects").
	Key string
	// URL is the store's URL with its credentials masked.
	URL string
	// Problem says what is wrong, Fix what to do about it.
	Problem, Fix string
	// Err is the cause.
	Err error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("%s %s: %s; fix: %s", e.Key, e.URL, e.Problem, e.Fix)
}

func (e *StartError) Unwrap() error { return e.Err }

// CheckStores checks, before anything starts, every store the roles use:
// each cloud's object store (it answers, the bucket or container exists,
// the credentials are taken) and database (it answers, the database
// exists, the credentials are taken), and, on a replication source, that
// the server's settings allow change capture and (on replication.from)
// that the tables replication.tables names outright exist. The error joins one
// *StartError per failing store.
func CheckStores(ctx context.Context, cfg *config.Config, roles []string, log *slog.Logger) error {
	type job struct {
		key, url string
		check    func(ctx context.Context) (problem, fix string, err error)
	}
	var jobs []job
	sources := map[string]bool{cfg.Replication.From: true}
	if cfg.Replication.ReverseEnabled() {
		sources[cfg.Replication.To] = true
	}
	dbs := map[string]bool{}
	for _, name := range cfg.CloudNames() {
		if !slices.Contains(roles, name) {
			continue
		}
		cc := cfg.Clouds[name]
		jobs = append(jobs, job{"clouds." + name + ".objects", cc.Objects, func(ctx context.Context) (string, string, error) {
			return checkObjects(ctx, cc.Objects, log)
		}})
		dbs[name] = true
		// A stream into this cloud reads the other cloud's database.
		r := cfg.Replication
		if r.To == name {
			dbs[r.From] = true
		}
		if r.From == name && r.ReverseEnabled() {
			dbs[r.To] = true
		}
	}
	for _, name := range cfg.CloudNames() {
		if !dbs[name] {
			continue
		}
		u := cfg.Clouds[name].SQL
		// The tables the forward stream reads must exist already (on the
		// other side, its full load creates them for the reverse one).
		var tables []string
		if name == cfg.Replication.From {
			tables = namedTables(cfg)
		}
		jobs = append(jobs, job{"clouds." + name + ".sql", u, func(ctx context.Context) (string, string, error) {
			problem, fix, err := checkSQL(ctx, u, sources[name], func(db *sqldb.DB) string { return SourceMode(cfg, db) }, log)
			if err == nil && len(tables) > 0 {
				problem, fix, err = checkTables(ctx, u, tables, log)
			}
			return problem, fix, err
		}})
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			problem, fix, err := j.check(cctx)
			switch {
			case err == nil:
				return
			case ctx.Err() != nil && timedOut(err):
				// The caller's context ended (start's own deadline,
				// spent on a busy machine or on other stores): this
				// store gave no answer, good or bad.
				problem = fmt.Sprintf("start ended (%v) before the check of this store finished", context.Cause(ctx))
				fix = "start again, or give start more time; the store itself gave no error"
				err = fmt.Errorf("%w: %w", errCheckCut, err)
			case cctx.Err() != nil && timedOut(err):
				problem += fmt.Sprintf(" (waited %s)", checkTimeout)
			}
			errs[i] = &StartError{Key: j.key, URL: redact.URL(j.url), Problem: problem, Fix: fix, Err: err}
		})
	}
	wg.Wait()
	// A store that answered wrong is the start's error; the checks the
	// caller's end cut short are named only when no store answered wrong.
	if slices.ContainsFunc(errs, func(e error) bool { return e != nil && !errors.Is(e, errCheckCut) }) {
		for i := range errs {
			if errors.Is(errs[i], errCheckCut) {
				errs[i] = nil
			}
		}
	}
	return errors.Join(errs...)
}

// errCheckCut marks a store's check that the caller's context cut short.
var errCheckCut = errors.New("check cut short")

// timedOut reports whether err is a context's end or a network timeout.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne) && ne.Timeout()
}

// checkObjects opens an object store and checks its bucket.
func checkObjects(ctx context.Context, u string, log *slog.Logger) (problem, fix string, err error) {
	b, err := objects.Open(ctx, u, log)
	if err != nil {
		return "cannot open the store: " + oneLine(err), "correct the URL (see the driver's query parameters)", err
	}
	defer b.Close()
	err = b.Check(ctx)
	switch {
	case err == nil:
		return "", "", nil
	case errors.Is(err, objects.ErrNoBucket):
		return "the bucket or container does not exist", "create it (aws s3 mb, az storage container create) or name an existing one", err
	case errors.Is(err, objects.ErrDenied):
		return "the store refused the credentials: " + oneLine(err), "check the access key and secret (or account key, SAS, role) and their rights on the bucket", err
	case unreachable(err) || errors.Is(err, objects.ErrUnavailable):
		return "the store does not answer: " + oneLine(err), "start it or correct the endpoint's host and port", err
	}
	return oneLine(err), "check the URL and the store", err
}

// checkSQL opens a database, pings it and, on a replication source, checks
// that its settings allow change capture.
func checkSQL(ctx context.Context, u string, source bool, mode func(*sqldb.DB) string, log *slog.Logger) (problem, fix string, err error) {
	db, err := sqldb.Open(ctx, u, log)
	if err != nil {
		return sqlProblem(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return sqlProblem(err)
	}
	if source {
		if err := replicate.CheckMode(ctx, db, mode(db)); err != nil {
			if permanent.Is(err) {
				return "cannot capture changes: " + oneLine(err), "change the server setting named and restart it", err
			}
			return sqlProblem(err)
		}
	}
	return "", "", nil
}

// namedTables are the tables replication.tables names outright (not by a
// pattern), but for the schema's table, which the load function creates.
func namedTables(cfg *config.Config) []string {
	var out []string
	for _, t := range cfg.Replication.Tables {
		if t != cfg.Schema.Table && !strings.ContainsAny(t, `*?[\`) {
			out = append(out, t)
		}
	}
	return out
}

// checkTables checks that a replication source holds tables.
func checkTables(ctx context.Context, u string, tables []string, log *slog.Logger) (problem, fix string, err error) {
	db, err := sqldb.Open(ctx, u, log)
	if err != nil {
		return sqlProblem(err)
	}
	defer db.Close()
	for _, name := range tables {
		if _, err := db.Dialect.Describe(ctx, db, name); err != nil {
			if errors.Is(err, sqldb.ErrNoTable) {
				return fmt.Sprintf("replication.tables names %q, which this database does not have", name),
					"create the table, or remove it from replication.tables (or correct its name)", err
			}
			return sqlProblem(err)
		}
	}
	return "", "", nil
}

// sqlProblem explains a database's refusal.
func sqlProblem(err error) (problem, fix string, _ error) {
	var me *mysql.MySQLError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &me) && (me.Number == 1045 || me.Number == 1044),
		errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000"):
		return "the database refused the credentials: " + oneLine(err), "check the user and password in the URL and the user's grants", err
	case errors.As(err, &me) && me.Number == 1049, errors.As(err, &pe) && pe.Code == "3D000":
		return "the database does not exist: " + oneLine(err), "create it (CREATE DATABASE) or name an existing one in the URL's path", err
	case unreachable(err) || sqldb.Unavailable(err):
		return "the database does not answer: " + oneLine(err), "start it or correct the host and port in the URL", err
	}
	return oneLine(err), "check the URL and the database", err
}

// unreachable reports whether nothing answered at all.
func unreachable(err error) bool {
	var ne net.Error
	var de *net.DNSError
	return errors.As(err, &de) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection refused")
}
