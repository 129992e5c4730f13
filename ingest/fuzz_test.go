package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/record"
)

// FuzzParse checks that Parse never panics, that every error is an API
// error with a client status, and that whatever it accepts, written back as
// JSON, is accepted again with the same ids and values.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		good,
		"[" + good + "," + good + "]",
		`{"id":"x:1","device":"d","metric":"m","value":-1.5e-3,"count":-42,"ok":false,"ts":"2025-01-02T03:04:05.999999999-07:00"}`,
		`{"device":"\ud83d\ude00\u00e9\\","metric":"\"\n","value":0,"ts":"2025-01-02t03:04:05z"}`,
		`{"device":"d","device":"d"}`,
		`[{"device":"a\ud800"},5,"x"]`,
		`{"count":1e3,"value":1e400}`,
		"\xff\xfe",
		"",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s+"\n"+s), true)
	}
	const maxRecords = 50
	statuses := map[int]bool{400: true, 413: true, 415: true, 422: true}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		ct := MediaJSON
		if ndjson {
			ct = MediaNDJSON
		}
		recs, err := Parse(testSchema, ct, body, maxRecords)
		if err != nil {
			var e *apierr.Error
			if !errors.As(err, &e) || !statuses[e.Status] || e.Message == "" {
				t.Fatalf("error %T %v is not a client API error", err, err)
			}
			return
		}
		if len(recs) == 0 || len(recs) > maxRecords {
			t.Fatalf("accepted %d records", len(recs))
		}
		again, err := Parse(testSchema, MediaJSON, reencode(t, recs), maxRecords)
		if err != nil {
			t.Fatalf("accepted records do not re-validate: %v", err)
		}
		for i := range recs {
			if !sameRecord(recs[i], again[i]) {
				t.Fatalf("record %d changed: %#v then %#v", i, recs[i], again[i])
			}
		}
	})
}

// reencode writes records back as a JSON array of input objects.
func reencode(t *testing.T, recs []record.Record) []byte {
	objs := make([]map[string]any, len(recs))
	for i, r := range recs {
		m := map[string]any{}
		for k, v := range r.Fields {
			if ts, ok := v.(time.Time); ok {
				v = ts.Format(time.RFC3339Nano)
			}
			m[k] = v
		}
		if r.ID != "" {
			m["id"] = r.ID
		}
		objs[i] = m
	}
	b, err := json.Marshal(objs)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	return b
}

func sameRecord(a, b record.Record) bool {
	if a.ID != b.ID || len(a.Fields) != len(b.Fields) {
		return false
	}
	for k, v := range a.Fields {
		w, ok := b.Fields[k]
		if !ok {
			return false
		}
		if ts, isTime := v.(time.Time); isTime {
			wt, ok := w.(time.Time)
			if !ok || !ts.Equal(wt) || wt.Location() != time.UTC {
				return false
			}
			continue
		}
		if s, isString := v.(string); isString && strings.ContainsRune(s, 0) {
			return false // never accepted
		}
		if v != w {
			return false
		}
	}
	return true
}

// FuzzParseString checks parseString's fast path against encoding/json:
// the same text, or the same refusal.
func FuzzParseString(f *testing.F) {
	for _, s := range []string{`"plain"`, `"é😀"`, `"a\"b"`, `"\u0041"`, "\"\xff\"", "\"a\x01\"", `""`, `"\ud800"`, `"x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := parseString(raw)
		var want string
		werr := json.Unmarshal(raw, &want)
		if err == nil && (werr != nil || got != want) {
			t.Fatalf("parseString(%q) = %q, encoding/json %q (%v)", raw, got, want, werr)
		}
		if err != nil && werr == nil && !loneSurrogate(raw) && strings.IndexByte(want, 0) < 0 {
			t.Fatalf("parseString(%q) refused (%v) what encoding/json reads as %q", raw, err, want)
		}
	})
}

// FuzzScanFlatObject checks the fast NDJSON object reader against
// encoding/json: every line it accepts, readObject accepts with the same
// members (keys, raw values, order).
func FuzzScanFlatObject(f *testing.F) {
	for _, s := range []string{good, `{}`, ` { "a" : 1 , "b":"x\"y\u00e9" ,"c":null,"d":true,"e":false,"f":-0.5e+3} `,
		`{"a":1,"a":2}`, `{"a":[1]}`, `{"a":{"b":1}}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a\"":1}`, `{"a":1}x`, `{"a":1,}`, `{"a" 1}`, `{"a":tru}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if invalidUTF8(line) >= 0 {
			return
		}
		var fast rawRecord
		if !scanFlatObject(line, &fast) {
			if len(fast.members) != 0 {
				t.Fatalf("refused %q but left members %v", line, fast.members)
			}
			return
		}
		var slow rawRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := readObject(dec, &slow); err != nil {
			t.Fatalf("fast reader accepted %q, encoding/json: %v", line, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("fast reader accepted %q with trailing data", line)
		}
		if len(fast.members) != len(slow.members) {
			t.Fatalf("%q: %d members, encoding/json %d", line, len(fast.members), len(slow.members))
		}
		for i := range fast.members {
			if fast.members[i].key != slow.members[i].key || !bytes.Equal(fast.members[i].raw, slow.members[i].raw) {
				t.Fatalf("%q member %d: %q=%s, encoding/json %q=%s", line, i, fast.members[i].key, fast.members[i].raw, slow.members[i].key, slow.members[i].raw)
			}
		}
	})
}

// fastSeeds are bodies for FuzzFastPath: the common shapes the fast path
// takes and the edges where it must decline or agree with Parse.
var fastSeeds = []string{
	good,
	"[" + good + " , " + good + "]",
	good + "\r\n\n" + good + "\n",
	`{"id":"c-1","device":"<a&b>","metric":"\u2028 x","value":-0,"count":-42,"ok":false,"ts":"2025-01-02T03:04:05.999999999-07:00"}`,
	`{"device":"d","metric":"m","value":123456789012345,"count":123456789012345678,"ts":"2024-02-29T23:59:59.1Z"}`,
	`{"device":"d","metric":"m","value":1234567890123456,"count":1234567890123456789,"ts":"2023-02-29T00:00:00Z"}`,
	`{"device":"d","metric":"m","value":0.000001,"ts":"2025-01-02T24:00:00Z"}`,
	`{"device":"d","metric":"m","value":1e21,"ts":"2025-01-02T03:04:60Z"}`,
	`{"device":"d","metric":"m","value":1.5,"ts":"2025-01-02T03:04:05.120Z"}`,
	`{"device":"d","metric":"m","value":1.5,"ts":"0000-01-02T03:04:05Z"}`,
	`{"device":"d","metric":"m","value":1.5,"ts":"2025-01-02t03:04:05z"}`,
	`{"device":"0123456789abcdefg","metric":"m","value":1.5,"ts":"2025-01-02T03:04:05Z"}`,
	`{"device":"é","metric":"m","value":1.5,"ts":"2025-01-02T03:04:05Z","count":null,"ok":true}`,
	`{"id":"x","device":"d","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}` + "\n" + `{"id":"x","device":"d","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}`,
	`{"id":null,"_x":1,"device":"d","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}`,
	`[{"device":"d","metric":"m","value":1,"ts":"2025-01-02T03:04:05Z"}]]`,
	`[]`,
	`{}`,
	`{"device":"d","metric":"m","value":0.0000012,"ts":"2025-01-02T03:04:05Z"}` + "\n" +
		`{"device":"d","metric":"m","value":-0.00000012,"ts":"2025-01-02T03:04:05Z"}` + "\n" +
		`{"device":"d","metric":"m","value":-0.000,"ts":"2025-01-02T03:04:05Z"}` + "\n" +
		`{"device":"d","metric":"m","value":10.50,"ts":"2025-01-02T03:04:05Z"}` + "\n" +
		`{"device":"d","metric":"m","value":0.000001,"ts":"2025-01-02T03:04:05Z"}` + "\n" +
		`{"device":"d","metric":"m","value":99999999999999.9,"ts":"2025-01-02T03:04:05Z"}`,
}

// FuzzFastPath checks the one-pass fast path against Parse and prepare:
// whatever it takes, they take too and render to the same bytes (stored
// lines and the 202 answer with the same derived ids).
func FuzzFastPath(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s), false, true)
		f.Add([]byte(s), true, false)
	}
	a := &API{cfg: Config{Cloud: "aws", Schema: testSchema, Limits: config.Ingest{MaxRecords: 50}}, fast: newFastPlan(testSchema, "aws")}
	now := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	f.Fuzz(func(t *testing.T, body []byte, ndjson, stamped bool) {
		ct := MediaJSON
		if ndjson {
			ct = MediaNDJSON
		}
		var at time.Time
		if stamped {
			at = now.Add(-time.Second)
		}
		fr, ok := a.fastPrepare(ct, body, trace, now, "key-1", true, at)
		if !ok {
			return // declining is always allowed: Parse then answers
		}
		recs, err := Parse(testSchema, ct, body, 50)
		if err != nil {
			t.Fatalf("the fast path took %q, Parse refuses it: %v", body, err)
		}
		p, err := a.prepare(recs, trace, now, "key-1", true, at)
		if err != nil {
			t.Fatal(err)
		}
		if fr.records != p.records || !bytes.Equal(fr.lines, p.lines) || !bytes.Equal(fr.answer, p.answer) {
			t.Fatalf("%q:\nfast %d records\n%s%s\nslow %d records\n%s%s", body, fr.records, fr.lines, fr.answer, p.records, p.lines, p.answer)
		}
	})
}
