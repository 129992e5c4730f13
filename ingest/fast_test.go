package ingest

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/record"
)

// TestFastPathTakesCommonBodies: the bodies clients send (NDJSON and JSON
// arrays, offsets in timestamps, client ids, HTML characters, optional
// fields null or absent) take the fast path, and what it renders is what
// Parse and prepare render.
func TestFastPathTakesCommonBodies(t *testing.T) {
	a := &API{cfg: Config{Cloud: "aws", Schema: testSchema}, fast: newFastPlan(testSchema, "aws")}
	now := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	for i, tt := range []struct {
		ct, body string
		take     bool
	}{
		{MediaNDJSON, fastSeeds[0], true},
		{MediaJSON, fastSeeds[1], true},
		{MediaNDJSON, fastSeeds[2], true},
		{MediaJSON, fastSeeds[3], true},
		{MediaJSON, fastSeeds[4], true},
		{MediaJSON, fastSeeds[5], false}, // 2023-02-29
		{MediaJSON, fastSeeds[6], false}, // 24:00
		{MediaJSON, fastSeeds[7], false}, // second 60
		{MediaJSON, fastSeeds[8], true},
		{MediaJSON, fastSeeds[9], false},  // year 0
		{MediaJSON, fastSeeds[10], false}, // lowercase t and z: Parse refuses
		{MediaJSON, fastSeeds[11], false}, // too long
		{MediaJSON, fastSeeds[12], true},
		{MediaNDJSON, fastSeeds[13], false}, // id twice
		{MediaJSON, fastSeeds[14], false},   // reserved name
		{MediaJSON, fastSeeds[15], false},   // trailing data
		{MediaJSON, fastSeeds[16], false},   // no records
		{MediaJSON, recBody(50, "dev"), true},
		{"application/json; charset=utf-8", string(benchNDJSON(3)), false}, // NDJSON sent as JSON
		{MediaNDJSON, fastSeeds[18], true},
	} {
		for _, stamped := range []bool{false, true} {
			var at time.Time
			if stamped {
				at = now
			}
			fr, ok := a.fastPrepare(tt.ct, []byte(tt.body), "t", now, "k", true, at)
			if ok != tt.take {
				t.Errorf("%d: fast path took it: %v, want %v: %s", i, ok, tt.take, tt.body)
				continue
			}
			recs, err := Parse(testSchema, tt.ct, []byte(tt.body), 0)
			if !ok {
				continue
			}
			if err != nil {
				t.Fatalf("%d: Parse: %v", i, err)
			}
			p, err := a.prepare(recs, "t", now, "k", true, at)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fr.lines, p.lines) || !bytes.Equal(fr.answer, p.answer) {
				t.Errorf("%d: fast path\n%s%s\nParse and prepare\n%s%s", i, fr.lines, fr.answer, p.lines, p.answer)
			}
		}
	}
	def := config.Default("").Schema
	ad := &API{cfg: Config{Cloud: "azure", Schema: def}, fast: newFastPlan(def, "azure")}
	for _, ct := range []string{MediaNDJSON} {
		if _, ok := ad.fastPrepare(ct, benchNDJSON(1000), "t", now, "", false, time.Time{}); !ok {
			t.Errorf("the benchmark's body (%s) does not take the fast path", ct)
		}
	}
}

// TestFastPathFreshIDs: records without an id and a request without an
// Idempotency-Key get distinct UUIDv7s in ascending order, in the answer
// and in the stored lines.
func TestFastPathFreshIDs(t *testing.T) {
	def := config.Default("").Schema
	a := &API{cfg: Config{Cloud: "aws", Schema: def}, fast: newFastPlan(def, "aws")}
	now := time.Now()
	fr, ok := a.fastPrepare(MediaNDJSON, benchNDJSON(600), "t", now, "", false, time.Time{})
	if !ok {
		t.Fatal("declined")
	}
	var ans struct{ IDs []string }
	if err := json.Unmarshal(fr.answer, &ans); err != nil || len(ans.IDs) != 600 || fr.records != 600 {
		t.Fatalf("answer %s: %v", fr.answer, err)
	}
	if !slices.IsSorted(ans.IDs) || len(slices.Compact(slices.Clone(ans.IDs))) != 600 {
		t.Error("ids not ascending and distinct")
	}
	for i, id := range ans.IDs {
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %d %q is not a UUIDv7", i, id)
		}
		if sec, nsec := u.Time().UnixTime(); time.Unix(sec, nsec).Sub(now).Abs() > time.Second {
			t.Errorf("id %d time %v, want about %v", i, time.Unix(sec, nsec), now)
		}
	}
	stored, err := record.StoredIDs(fr.lines)
	if err != nil || !slices.Equal(stored, ans.IDs) {
		t.Fatalf("stored ids %v (%v), answer %v", stored, err, ans.IDs)
	}
}

// TestFastPathFreshIDsNeverRepeat: requests stamped with the same
// millisecond, in one API and in two (two processes, or one restarted),
// get distinct ids: their counters start alike, so the random bits alone
// keep them apart, and no two generators may give the same bits.
func TestFastPathFreshIDsNeverRepeat(t *testing.T) {
	def := config.Default("").Schema
	now := time.Now()
	seen := map[string]int{}
	for proc := range 2 {
		a := &API{cfg: Config{Cloud: "aws", Schema: def}, fast: newFastPlan(def, "aws")}
		var wg sync.WaitGroup
		answers := make([][]byte, 8)
		for r := range answers {
			wg.Add(1)
			go func() { // concurrent requests take generators of their own
				defer wg.Done()
				fr, ok := a.fastPrepare(MediaNDJSON, benchNDJSON(100), "t", now, "", false, time.Time{})
				if !ok {
					t.Error("declined")
				}
				answers[r] = fr.answer
			}()
		}
		wg.Wait()
		for r, answer := range answers {
			var ans struct{ IDs []string }
			if err := json.Unmarshal(answer, &ans); err != nil || len(ans.IDs) != 100 {
				t.Fatalf("answer %s: %v", answer, err)
			}
			for _, id := range ans.IDs {
				if prev, dup := seen[id]; dup {
					t.Fatalf("process %d request %d repeats id %s of request %d", proc, r, id, prev)
				}
				seen[id] = proc*100 + r
			}
		}
	}
}

// TestStringEnd: the one-pass scan of a string literal ends where the
// reference scan does, refuses what it refuses, and says whether the
// literal holds an escape or a byte the stored form escapes.
func TestStringEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind strKind
	}{
		{`""`, 0},
		{`"plain text"`, 0},
		{`"dev-001", "x"`, 0},
		{`"a<b"`, strSpecial},
		{`"a>b"`, strSpecial},
		{`"a&b"`, strSpecial},
		{"\"\u2028\"", strSpecial},
		{"\"\u20ac\"", strSpecial}, // 0xe2 leads other characters too
		{"\"caf\u00e9\"", 0},
		{`"a\"b"`, strEscaped},
		{`"<\n"`, strEscaped},
		{`"\u00e9"`, strEscaped},
		{`"\x"`, 0},     // a bad escape
		{`"\u12"`, 0},   // a short one
		{"\"a\tb\"", 0}, // a control character
		{`"no end`, 0},
		{`"`, 0},
	} {
		end, kind := stringEnd([]byte(tc.in), 0)
		want := scanScalar([]byte(tc.in), 0)
		if end != want {
			t.Errorf("stringEnd(%q) = %d, want %d", tc.in, end, want)
		}
		if end >= 0 && kind != tc.kind {
			t.Errorf("stringEnd(%q) kind = %b, want %b", tc.in, kind, tc.kind)
		}
	}
}
