package load

import (
	"context"
	"fmt"
	"strings"

	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/sqldb"
)

// Cloud is one cloud's loader (its raw objects and database) for
// CheckComplete.
type Cloud struct {
	Name   string
	Loader *Loader
}

// ObjectRef names an object of a cloud.
type ObjectRef struct {
	Cloud string `json:"cloud"`
	Key   string `json:"key"`
	// Records is how many records it holds.
	Records int `json:"records"`
	// Error is a dead letter's error.
	Error string `json:"error,omitempty"`
}

// MissingID is an acknowledged record that a database lacks.
type MissingID struct {
	ID string `json:"id"`
	// Object is the raw object that holds it, of the cloud that took it.
	Object ObjectRef `json:"object"`
	// From lists the clouds whose database lacks it.
	From []string `json:"missing_from"`
}

// Completeness is CheckComplete's report: every record of every raw object
// an ingest API wrote (every acknowledged record) against every cloud's
// database.
type Completeness struct {
	// Objects and Records count the raw objects read and their records.
	Objects int `json:"objects"`
	Records int `json:"records"`
	// Unloaded are raw objects not in their cloud's loaded-objects table
	// (and not dead-lettered).
	Unloaded []ObjectRef `json:"unloaded,omitempty"`
	// Dead are the dead letters: acknowledged records not loaded.
	Dead []ObjectRef `json:"dead,omitempty"`
	// DeadRecords counts the records of the dead letters.
	DeadRecords int `json:"dead_records"`
	// Missing are records of raw objects that some database lacks.
	Missing []MissingID `json:"missing,omitempty"`
}

// OK reports whether every acknowledged record is in every database.
func (c Completeness) OK() bool {
	return len(c.Unloaded) == 0 && len(c.Dead) == 0 && len(c.Missing) == 0
}

// String summarises the report, naming at most max of each kind of
// problem.
func (c Completeness) String() string {
	const max = 20
	var b strings.Builder
	fmt.Fprintf(&b, "completeness: %d raw objects, %d records", c.Objects, c.Records)
	if c.OK() {
		b.WriteString(": ok, every record is in every database\n")
		return b.String()
	}
	fmt.Fprintf(&b, ": %d objects not loaded, %d dead letters (%d records), %d records missing\n",
		len(c.Unloaded), len(c.Dead), c.DeadRecords, len(c.Missing))
	more := func(n int) {
		if n > max {
			fmt.Fprintf(&b, "  ... and %d more\n", n-max)
		}
	}
	for _, o := range c.Unloaded[:min(len(c.Unloaded), max)] {
		fmt.Fprintf(&b, "  not loaded: %s %s (%d records)\n", o.Cloud, o.Key, o.Records)
	}
	more(len(c.Unloaded))
	for _, o := range c.Dead[:min(len(c.Dead), max)] {
		fmt.Fprintf(&b, "  dead letter: %s %s (%d records): %s\n", o.Cloud, o.Key, o.Records, strings.Join(strings.Fields(o.Error), " "))
	}
	more(len(c.Dead))
	for _, m := range c.Missing[:min(len(c.Missing), max)] {
		fmt.Fprintf(&b, "  missing: id %s (from %s %s) not in %s\n", m.ID, m.Object.Cloud, m.Object.Key, strings.Join(m.From, ", "))
	}
	more(len(c.Missing))
	return b.String()
}

// CheckComplete checks that every record of every raw object of every
// cloud is in every cloud's database: first the raw objects against each
// cloud's loaded-objects table, then the ids of their records against each
// database. Dead letters are reported as such (their records are not
// looked up). It reads every raw object.
func CheckComplete(ctx context.Context, clouds []Cloud) (Completeness, error) {
	var rep Completeness
	for _, c := range clouds {
		dead, err := c.Loader.DeadLetters(ctx, true)
		if err != nil {
			return rep, fmt.Errorf("load: %s: %w", c.Name, err)
		}
		for _, d := range dead {
			rep.Dead = append(rep.Dead, ObjectRef{Cloud: c.Name, Key: d.Key, Records: d.Records, Error: d.Error})
			rep.DeadRecords += d.Records
		}
		unloaded, err := c.Loader.Unloaded(ctx)
		if err != nil {
			return rep, fmt.Errorf("load: %s: %w", c.Name, err)
		}
		isUnloaded := map[string]bool{}
		for _, k := range unloaded {
			isUnloaded[k] = true
		}
		parts, err := c.Loader.partitions(ctx)
		if err != nil {
			return rep, err
		}
		for _, p := range parts {
			var keys []string
			if err := c.Loader.bucket.ListKeys(ctx, p, func(k string) error {
				if strings.HasSuffix(k, ".ndjson") {
					keys = append(keys, k)
				}
				return nil
			}); err != nil {
				return rep, fmt.Errorf("load: %s: %w", c.Name, err)
			}
			for _, k := range keys {
				if err := checkObject(ctx, c, k, isUnloaded[k], clouds, &rep); err != nil {
					return rep, err
				}
			}
		}
	}
	return rep, nil
}

// checkObject reads one raw object and looks its ids up in every database.
func checkObject(ctx context.Context, c Cloud, key string, unloaded bool, clouds []Cloud, rep *Completeness) error {
	data, _, err := c.Loader.bucket.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("load: %s: %w", c.Name, err)
	}
	ids, err := record.StoredIDs(data)
	if err != nil {
		return fmt.Errorf("load: %s: %s: %w", c.Name, key, err)
	}
	ref := ObjectRef{Cloud: c.Name, Key: key, Records: len(ids)}
	rep.Objects++
	rep.Records += len(ids)
	if unloaded {
		rep.Unloaded = append(rep.Unloaded, ref)
	}
	missing := map[string][]string{}
	for _, other := range clouds {
		lacks, err := Absent(ctx, other.Loader.db, other.Loader.table.Name, ids)
		if err != nil {
			return fmt.Errorf("load: %s: %w", other.Name, err)
		}
		for _, id := range lacks {
			missing[id] = append(missing[id], other.Name)
		}
	}
	for _, id := range ids {
		if from := missing[id]; len(from) > 0 {
			rep.Missing = append(rep.Missing, MissingID{ID: id, Object: ref, From: from})
		}
	}
	return nil
}

// Absent returns the ids (of records) that a table lacks, in their order,
// looking them up 500 at a time.
func Absent(ctx context.Context, db *sqldb.DB, table string, ids []string) ([]string, error) {
	d := db.Dialect
	present := map[string]bool{}
	for i := 0; i < len(ids); i += 500 {
		chunk := ids[i:min(len(ids), i+500)]
		args := make([]any, len(chunk))
		for j, id := range chunk {
			args[j] = id
		}
		rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s IN (%s)", d.Quote(record.ColID), d.Quote(table), d.Quote(record.ColID),
			sqldb.Placeholders(d, 1, len(chunk))), args...)
		if err != nil {
			return nil, fmt.Errorf("look up ids in %s: %w", table, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			present[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, id := range ids {
		if !present[id] {
			out = append(out, id)
		}
	}
	return out, nil
}
