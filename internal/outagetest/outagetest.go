// Package outagetest is what the outage tests share: a client that keeps
// sending records through a front door while databases go down and come
// back, and checks of the end state that do not go through the code under
// test (the databases' own command-line clients, the edge's summary).
package outagetest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
)

// Sender keeps sending records through a front door until Stop.
type Sender struct {
	mu    sync.Mutex
	acked map[string]demo.Record
	err   error
	stop  chan struct{}
	done  chan struct{}
}

// Send starts sending rounds of records (batch records per request,
// concurrency requests at once, a short pause between rounds) to url.
// Every request is finished before Stop returns, so that every record the
// front door acknowledged is known.
func Send(client *http.Client, url, key string, batch, concurrency int) *Sender {
	s := &Sender{acked: map[string]demo.Record{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			acked, err := demo.Send(context.Background(), url, key, demo.Options{Records: batch * concurrency, BatchSize: batch, Concurrency: concurrency, Client: client})
			s.mu.Lock()
			maps.Copy(s.acked, acked)
			if err != nil && s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return s
}

// Acked returns how many records were acknowledged so far.
func (s *Sender) Acked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// Stop stops sending and returns the acknowledged records by id. A request
// that was cut by the stop is not acknowledged; a rejected one fails the
// test.
func (s *Sender) Stop(t testing.TB) map[string]demo.Record {
	t.Helper()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatalf("sending: %v", s.err)
	}
	return maps.Clone(s.acked)
}

// WaitFor waits until n more records are acknowledged.
func (s *Sender) WaitFor(t testing.TB, n int) {
	t.Helper()
	want := s.Acked() + n
	deadline := time.Now().Add(time.Minute)
	for s.Acked() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records acknowledged after a minute", s.Acked(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Database reads one database's record ids with its own client.
type Database struct {
	Name string
	IDs  func(t testing.TB) []string
}

// MariaDB reads the ids of table in database db of m.
func MariaDB(m *peers.MariaDB, db, table string) Database {
	return Database{"mariadb", func(t testing.TB) []string { return m.Query(t, db, "SELECT id FROM `"+table+"`") }}
}

// Postgres reads the ids of table in database db of p.
func Postgres(p *peers.Postgres, db, table string) Database {
	return Database{"postgres", func(t testing.TB) []string { return p.Query(t, db, `SELECT id FROM "`+table+`"`) }}
}

// ExactlyOnce waits until every database holds every acknowledged id
// exactly once, and fails the test naming what is missing or doubled when
// that does not happen within timeout. (Records written but never
// acknowledged, whose client gave up, may be there too.)
func ExactlyOnce(t testing.TB, acked map[string]demo.Record, timeout time.Duration, dbs ...Database) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, db := range dbs {
		for {
			problem := compare(db.IDs(t), acked)
			if problem == "" {
				t.Logf("%s holds the %d acknowledged records, each once", db.Name, len(acked))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s after %s: %s", db.Name, timeout, problem)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// compare describes how ids differ from the acknowledged set ("" when
// they match exactly).
func compare(ids []string, acked map[string]demo.Record) string {
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	var missing, doubled, extra []string
	for id := range acked {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range seen {
		if n > 1 {
			doubled = append(doubled, id)
		}
		if _, ok := acked[id]; !ok {
			extra = append(extra, id)
		}
	}
	// A record written but never acknowledged (the client gave up on its
	// request) may be there: it is not a loss.
	if len(missing)+len(doubled) == 0 {
		return ""
	}
	head := func(s []string) string {
		sort.Strings(s)
		return strings.Join(s[:min(5, len(s))], " ")
	}
	return fmt.Sprintf("%d rows for %d acknowledged: %d missing (%s), %d doubled (%s), %d not acknowledged (%s)",
		len(ids), len(acked), len(missing), head(missing), len(doubled), head(doubled), len(extra), head(extra))
}

// CountedOnce waits until the edge's published summary counts exactly n
// records (the rows of the publishing database, every acknowledged record
// among them).
func CountedOnce(t testing.TB, client *http.Client, edgeURL string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sum, err := demo.FetchSummary(context.Background(), client, edgeURL)
		if err == nil && sum.Records == int64(n) {
			var per int64
			for _, n := range sum.Groups {
				per += n
			}
			if per != sum.Records {
				t.Fatalf("summary groups add up to %d, records %d", per, sum.Records)
			}
			t.Logf("the edge counts the %d records once", n)
			return
		}
		if time.Now().After(deadline) {
			got := int64(-1)
			if sum != nil {
				got = sum.Records
			}
			t.Fatalf("the edge counts %d records, want %d (%v)", got, n, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Origins counts acknowledged records by the cloud that took them, read
// from a database with its own client.
func Origins(t testing.TB, m *peers.MariaDB, db, table string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, line := range m.Query(t, db, "SELECT `_origin`, COUNT(*) FROM `"+table+"` GROUP BY `_origin`") {
		var origin string
		var n int
		if _, err := fmt.Sscanf(strings.ReplaceAll(line, "\t", " "), "%s %d", &origin, &n); err == nil {
			out[origin] = n
		}
	}
	return out
}

// Keys returns a map's keys, sorted.
func Keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// Get GETs a URL (with a bearer key unless key is empty) and returns the
// status and body; a request that fails returns status 0 and the error's text.
func Get(client *http.Client, url, key string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
