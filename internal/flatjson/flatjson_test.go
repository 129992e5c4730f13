package flatjson

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"unicode/utf8"
)

func TestObject(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string // key=raw of each member; nil: refused
	}{
		{`{}`, []string{}},
		{` { "a" : 1 , "b":"x\"y\u00e9" ,"c":null,"d":true,"e":false,"f":-0.5e+3} `, []string{"a=1", `b="x\"y\u00e9"`, "c=null", "d=true", "e=false", "f=-0.5e+3"}},
		{`{"a":1,"a":2}`, []string{"a=1", "a=2"}}, // repeated keys are the caller's to refuse
		{`{"a":[1]}`, nil},
		{`{"a":{"b":1}}`, nil},
		{`{"a":01}`, nil},
		{`{"a":1.}`, nil},
		{`{"a":"\x"}`, nil},
		{`{"a\"":1}`, nil},
		{`{"a":1}x`, nil},
		{`{"a":1,}`, nil},
		{`{"a" 1}`, nil},
		{`{"a":tru}`, nil},
		{`{"a":"` + "\x01" + `"}`, nil},
		{`[1]`, nil},
		{``, nil},
	} {
		var got []string
		ok := Object([]byte(tc.line), func(key, raw []byte) bool {
			got = append(got, string(key)+"="+string(raw))
			return true
		})
		if ok != (tc.want != nil) || ok && len(got) != len(tc.want) {
			t.Errorf("%q: %v %q, want %q", tc.line, ok, got, tc.want)
			continue
		}
		for i := range got {
			if ok && got[i] != tc.want[i] {
				t.Errorf("%q: member %d = %q, want %q", tc.line, i, got[i], tc.want[i])
			}
		}
	}
	// fn's false stops the scan.
	n := 0
	if Object([]byte(`{"a":1,"b":2}`), func(_, _ []byte) bool { n++; return false }) || n != 1 {
		t.Errorf("a refusing fn: ok, %d calls", n)
	}
}

// FuzzObject checks Object against encoding/json: every line it accepts
// (of valid UTF-8) is one valid JSON object whose members, read by encoding/json's
// tokenizer, are the keys and values Object gave, in order.
func FuzzObject(f *testing.F) {
	for _, s := range []string{`{}`, ` {"a":1,"b":"x\"y","c":null,"d":true,"e":false,"f":-0.5e+3} `, `{"a":[1]}`, `{"a":01}`, `{"a":"\u12"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		type member struct{ key, raw string }
		var got []member
		if !Object(line, func(key, raw []byte) bool {
			if cap(line)-cap(raw) < 0 || !bytes.Equal(line[cap(line)-cap(raw):cap(line)-cap(raw)+len(raw)], raw) {
				t.Fatalf("%q: raw %q is not at its offset", line, raw)
			}
			got = append(got, member{string(key), string(raw)})
			return true
		}) || !utf8.Valid(line) {
			return // encoding/json reads invalid UTF-8 as U+FFFD: callers check it
		}
		if !json.Valid(line) {
			t.Fatalf("accepted %q, which is not JSON", line)
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("%q: not an object", line)
		}
		for i := 0; dec.More(); i++ {
			tok, err := dec.Token()
			if err != nil || i >= len(got) || tok != got[i].key {
				t.Fatalf("%q: member %d key %v (%v), Object gave %v", line, i, tok, err, got)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil || string(raw) != got[i].raw {
				t.Fatalf("%q: member %d value %s (%v), Object gave %q", line, i, raw, err, got[i].raw)
			}
		}
		if _, err := dec.Token(); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("%q: trailing data", line)
		}
	})
}
