package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// testRenameTable renames the replicated table items during change data
// capture while a writer inserts rows under whichever name the table has:
// the new name matches the stream's globs, so the target table is renamed
// and every row written before, during and after the rename is there once,
// under the new name. A second rename, to a name the globs do not match,
// takes the table out of the stream: later rows stay on the source and the
// target table keeps what it had.
func testRenameTable(t *testing.T, h Harness) {
	src := h.Source(t)
	createItems(t, h, src)
	insertItems(t, src, 1, 51)
	const renamed, away = "goods_2024", "archive_goods"
	streams := map[string]*Running{}
	targets := map[string]*sqldb.DB{}
	for _, name := range slices.Sorted(maps.Keys(h.Targets)) {
		dst := h.Targets[name](t)
		r := Start(t, replicate.Config{SourceMode: h.SourceMode, Name: "conf-rename-" + name, Source: src, Target: dst,
			Mapping: &replicate.Mapping{Include: []string{"item*", "goods_*"}}, BatchSize: 16})
		WaitFor(t, "full load into "+name, 120*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
		streams[name], targets[name] = r, dst
	}
	insertItems(t, src, 100, 120) // before the rename, during CDC
	for name, r := range streams {
		waitSame(t, r, src, targets[name], nil, "items")
	}

	// A writer inserts ids from 1000 on, under the old name and, once it
	// is gone, the new one, while the table is renamed under it.
	written := make(chan int, 1000)
	var wg sync.WaitGroup
	renamedAt := make(chan struct{})
	wg.Go(func() {
		defer close(written)
		names := []string{"items", renamed}
		cur := 0
		for id := 1000; id < 1150; id++ {
			if id == 1040 {
				<-renamedAt // some rows after the rename, for sure
			}
			for attempt := 0; ; attempt++ {
				err := insertInto(src, names[cur], id)
				if err != nil && cur+1 < len(names) {
					if insertInto(src, names[cur+1], id) == nil {
						cur++
						err = nil
					}
				}
				if err == nil {
					written <- id
					break
				}
				if attempt > 200 {
					t.Errorf("insert %d: %v", id, err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
	time.Sleep(50 * time.Millisecond)
	Exec(t, src, fmt.Sprintf(h.RenameDDL, src.Dialect.Quote("items"), src.Dialect.Quote(renamed)))
	close(renamedAt)
	wg.Wait()
	var ids []int
	for id := range written {
		ids = append(ids, id)
	}
	if len(ids) != 150 {
		t.Fatalf("the writer inserted %d rows, want 150", len(ids))
	}
	insertItemsInto(t, src, renamed, 2000, 2020) // after the rename
	Exec(t, src, fmt.Sprintf("UPDATE %s SET %s = 1 WHERE %s = 1", src.Dialect.Quote(renamed), src.Dialect.Quote("qty"), src.Dialect.Quote("id")))
	Exec(t, src, fmt.Sprintf("DELETE FROM %s WHERE %s = 2", src.Dialect.Quote(renamed), src.Dialect.Quote("id")))
	want := 50 + 20 + 150 + 20 - 1
	kept := map[string][]string{}
	for name, r := range streams {
		t.Run(name, func(t *testing.T) {
			dst := targets[name]
			waitSame(t, r, src, dst, nil, renamed)
			if n := len(Dump(t, dst, renamed, nil)); n != want {
				t.Errorf("target %s has %d rows, want %d", renamed, n, want)
			}
			if _, err := dst.Dialect.Describe(context.Background(), dst, "items"); !errors.Is(err, sqldb.ErrNoTable) {
				t.Errorf("target still has table items (err %v)", err)
			}
			st := r.Stream.Status()
			if len(st.StoppedTables) > 0 {
				t.Errorf("stopped tables: %+v", st.StoppedTables)
			}
			if !slices.ContainsFunc(st.RenamedTables, func(tr replicate.TableRename) bool {
				return tr.From == "items" && tr.To == renamed && tr.Target == renamed && !tr.Left
			}) {
				t.Errorf("status does not list the rename: %+v", st.RenamedTables)
			}
			rep, err := replicate.ValidateMapping(context.Background(), src, dst, &replicate.Mapping{Include: []string{"item*", "goods_*"}}, 100)
			if err != nil || !rep.OK() || len(rep.Tables) != 1 || rep.Tables[0].Table != renamed {
				t.Errorf("validate after the rename: %v\n%s", err, rep)
			}
			kept[name] = Dump(t, dst, renamed, nil)
		})
	}

	// Out of the globs: the table leaves the stream, the target keeps it.
	Exec(t, src, fmt.Sprintf(h.RenameDDL, src.Dialect.Quote(renamed), src.Dialect.Quote(away)))
	insertItemsInto(t, src, away, 3000, 3005)
	for name, r := range streams {
		t.Run(name+"/left", func(t *testing.T) {
			dst := targets[name]
			WaitFor(t, "the table leaving the stream", 60*time.Second, func() bool {
				return slices.ContainsFunc(r.Stream.Status().RenamedTables, func(tr replicate.TableRename) bool { return tr.From == renamed && tr.Left })
			})
			// Give the rows after it the time to (wrongly) arrive.
			time.Sleep(500 * time.Millisecond)
			if d := DiffDumps(kept[name], Dump(t, dst, renamed, nil)); d != "" {
				t.Errorf("the target table changed after the table left the stream:\n%s", d)
			}
			if _, err := dst.Dialect.Describe(context.Background(), dst, away); !errors.Is(err, sqldb.ErrNoTable) {
				t.Errorf("target has table %s (err %v)", away, err)
			}
			if st := r.Stream.Status(); st.Phase != replicate.PhaseCDC || len(st.StoppedTables) > 0 {
				t.Errorf("stream after the table left: phase %s, stopped %+v, last error %q", st.Phase, st.StoppedTables, st.LastError)
			}
		})
	}
}

// insertInto inserts the items row of id into table.
func insertInto(db *sqldb.DB, table string, id int) error {
	d := db.Dialect
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", d.Quote(table), sqldb.QuoteList(d, items.ColumnNames()), sqldb.Placeholders(d, 1, 4))
	var qty any
	if id%3 != 0 {
		qty = id * 7
	}
	_, err := db.ExecContext(context.Background(), q, int64(id), fmt.Sprintf("item %d ñ \U0001F600 '", id), qty, fmt.Sprintf("%d.%02d", id, id%100))
	return err
}

// insertItemsInto inserts the items rows lo..hi-1 into table.
func insertItemsInto(t testing.TB, db *sqldb.DB, table string, lo, hi int) {
	t.Helper()
	for i := lo; i < hi; i++ {
		if err := insertInto(db, table, i); err != nil {
			t.Fatalf("insert %d into %s: %v", i, table, err)
		}
	}
}
