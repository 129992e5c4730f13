package replicate

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// Defaults for Validator.
const (
	DefaultValidateEvery   = 10 * time.Minute
	DefaultValidateRecheck = 10 * time.Second
)

// Validator validates a source against its target again and again in the
// background (continuous validation), so a divergence that the change log
// cannot show (a cascade the source did not log, a write straight into the
// target) is found without anyone asking. While a stream applies changes,
// a row can differ only because its change is in flight: a row counts as
// differing when it differs in a round and again in a second look
// Recheck later.
type Validator struct {
	// Source and Target are the databases compared; Mapping (nil: the
	// tables as they are) selects and maps the tables, like the stream's.
	Source, Target *sqldb.DB
	Mapping        *Mapping
	// Tables are compared when Mapping is nil.
	Tables []string
	// Every is the time between rounds (default DefaultValidateEvery);
	// Recheck the wait before the second look (default
	// DefaultValidateRecheck).
	Every, Recheck time.Duration
	// Options tune each comparison.
	Options ValidateOptions
	// Ready, when set, says whether a round may run now (for example once
	// the stream's full load is done); a round waits for it.
	Ready func() bool
	// Name names the validated stream in logs and status.
	Name   string
	Logger *slog.Logger

	mu         sync.Mutex
	last       ValidationStatus
	afterFirst func() // test hook: called after the first look of a round
}

// ValidationStatus is the outcome of a Validator's last round.
type ValidationStatus struct {
	Name string `json:"name"`
	// At is when the last round ended; Rounds counts them.
	At     time.Time `json:"at,omitzero"`
	Rounds int       `json:"rounds"`
	// DifferingRows counts, per table, the rows that differed in both
	// looks of the last round.
	DifferingRows map[string]int64 `json:"differing_rows,omitempty"`
	// Rows lists the first of them, per table.
	Rows map[string][]RowDiff `json:"rows,omitempty"`
	// Error is why the last round failed, if it did.
	Error string `json:"error,omitempty"`
}

// Status returns the last round's outcome.
func (v *Validator) Status() ValidationStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.last
	st.Name = v.Name
	return st
}

// Run validates every Every until ctx is done.
func (v *Validator) Run(ctx context.Context) {
	every, recheck := v.Every, v.Recheck
	if every <= 0 {
		every = DefaultValidateEvery
	}
	if recheck <= 0 {
		recheck = DefaultValidateRecheck
	}
	log := v.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "validate", "stream", v.Name)
	for {
		for v.Ready != nil && !v.Ready() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		st, err := v.Round(ctx, recheck)
		if ctx.Err() != nil {
			return
		}
		v.mu.Lock()
		v.last.Rounds++
		v.last.At = time.Now().UTC()
		if err != nil {
			v.last.Error = err.Error()
			log.Warn("continuous validation failed", "err", err)
		} else {
			v.last.Error, v.last.DifferingRows, v.last.Rows = "", st.DifferingRows, st.Rows
			var total int64
			for _, n := range st.DifferingRows {
				total += n
			}
			if total > 0 {
				var tables []string
				for t, n := range st.DifferingRows {
					if n > 0 {
						tables = append(tables, t)
					}
				}
				slices.Sort(tables)
				log.Error("continuous validation: source and target differ", "differing_rows", total, "tables", strings.Join(tables, ", "))
			}
		}
		v.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Round validates once: a first look, and for the tables that differ a
// second look recheck later; a row counts when it differs in both.
func (v *Validator) Round(ctx context.Context, recheck time.Duration) (ValidationStatus, error) {
	first, err := v.validate(ctx, nil)
	if err != nil {
		return ValidationStatus{}, err
	}
	st := ValidationStatus{DifferingRows: map[string]int64{}, Rows: map[string][]RowDiff{}}
	var again []string
	for _, tr := range first.Tables {
		st.DifferingRows[tr.Table] = 0
		if !tr.OK() {
			again = append(again, tr.Table)
		}
	}
	if len(again) == 0 {
		return st, nil
	}
	if v.afterFirst != nil {
		v.afterFirst()
	}
	select {
	case <-ctx.Done():
		return ValidationStatus{}, ctx.Err()
	case <-time.After(recheck):
	}
	second, err := v.validate(ctx, again)
	if err != nil {
		return ValidationStatus{}, err
	}
	byTable := map[string]TableReport{}
	for _, tr := range first.Tables {
		byTable[tr.Table] = tr
	}
	for _, tr := range second.Tables {
		f := byTable[tr.Table]
		n, rows := persistent(f, tr)
		st.DifferingRows[tr.Table] = n
		if len(rows) > 0 {
			st.Rows[tr.Table] = rows
		}
	}
	return st, nil
}

// persistent counts the rows that differ in both reports of a table, and
// lists them (those the second report lists).
func persistent(first, second TableReport) (int64, []RowDiff) {
	if first.Missing || second.Missing || first.fixesCut || second.fixesCut {
		return min(first.DifferingRows, second.DifferingRows), second.Rows
	}
	before := make(map[string]bool, len(first.keys))
	for _, k := range first.keys {
		before[k] = true
	}
	var n int64
	for _, k := range second.keys {
		if before[k] {
			n++
		}
	}
	var rows []RowDiff
	for _, r := range second.Rows {
		if before[strings.Join(r.Key, "\x00")] {
			rows = append(rows, r)
		}
	}
	return n, rows
}

func (v *Validator) validate(ctx context.Context, tables []string) (Report, error) {
	opts := v.Options
	if v.Mapping != nil {
		m := v.Mapping
		if tables != nil {
			cp := *m
			cp.Include, cp.Exclude = tables, nil
			m = &cp
		}
		return ValidateMappingWith(ctx, v.Source, v.Target, m, opts)
	}
	if tables == nil {
		tables = v.Tables
	}
	return ValidateWith(ctx, v.Source, v.Target, tables, opts)
}
