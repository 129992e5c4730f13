package logstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Default and largest number of entries a search returns.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// Query selects log entries. Empty fields do not filter.
type Query struct {
	// Text holds full-text terms, ANDed: words, or "quoted phrases". Terms
	// are matched literally against the message and the attributes.
	Text string
	// Exact matches on the indexed columns; Level is case-insensitive.
	Cloud, Component, TraceID, Level string
	// Since (inclusive) and Until (exclusive) bound the entry time.
	Since, Until time.Time
	// Limit is the most entries returned: 0 means DefaultLimit, more than
	// MaxLimit means MaxLimit.
	Limit int
}

// ParseQuery parses the search language of the API, the page and the CLI:
//
//	trace_id:abc component:load cloud:aws level:error since:2026-11-24T00:00:00Z some words "a phrase"
//
// Filters are key:value (the value may be quoted: component:"my part");
// since and until take RFC 3339 times, dates (2026-11-24) or durations
// back from now (15m, 2h); limit:N sets Limit. Everything else, including
// words with unknown key: prefixes, is full-text and searched literally.
// A filter given twice or without a value is an error.
func ParseQuery(s string) (Query, error) {
	var q Query
	var text []string
	seen := map[string]bool{}
	for _, t := range tokenize(s) {
		if t.key == "" {
			text = append(text, t.text())
			continue
		}
		if seen[t.key] {
			return Query{}, fmt.Errorf("logstore: query: %s given twice", t.key)
		}
		seen[t.key] = true
		if t.value == "" {
			return Query{}, fmt.Errorf("logstore: query: %s: needs a value", t.key)
		}
		var err error
		switch t.key {
		case "trace_id":
			q.TraceID = t.value
		case "cloud":
			q.Cloud = t.value
		case "component":
			q.Component = t.value
		case "level":
			q.Level = strings.ToUpper(t.value)
			if l, ok := levelAliases[q.Level]; ok {
				q.Level = l
			}
		case "since":
			q.Since, err = parseTime(t.value)
		case "until":
			q.Until, err = parseTime(t.value)
		case "limit":
			q.Limit, err = strconv.Atoi(t.value)
			if err == nil && q.Limit < 1 {
				err = fmt.Errorf("must be at least 1")
			}
			if err != nil {
				err = fmt.Errorf("limit %q: %w", t.value, err)
			}
		}
		if err != nil {
			return Query{}, fmt.Errorf("logstore: query: %w", err)
		}
	}
	q.Text = strings.Join(text, " ")
	return q, nil
}

// parseTime reads an RFC 3339 time, a date (UTC midnight) or a duration
// back from now.
func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-24T00:00:00Z), a date (2026-11-24) or a duration (15m)", v)
}

// levelAliases maps common spellings to slog's level names.
var levelAliases = map[string]string{"WARNING": "WARN", "ERR": "ERROR", "INFORMATION": "INFO", "DBG": "DEBUG"}

var filterKeys = map[string]bool{
	"trace_id": true, "cloud": true, "component": true, "level": true,
	"since": true, "until": true, "limit": true,
}

// token is one unit of the query language: a filter (key set) or a
// full-text term (a word, or a phrase when quoted).
type token struct {
	key    string
	value  string
	phrase bool
}

// text is the term as written back into Query.Text.
func (t token) text() string {
	if t.phrase {
		return `"` + t.value + `"`
	}
	return t.value
}

// tokenize splits s at white space; a double quote starts a phrase that
// runs to the next double quote (or the end). A word cannot start with a
// quote, and a phrase cannot contain one, so Query.Text re-tokenizes to the
// same terms.
func tokenize(s string) []token {
	var out []token
	i := 0
	readQuoted := func() string { // s[i] == '"'
		i++
		j := strings.IndexByte(s[i:], '"')
		if j < 0 {
			v := s[i:]
			i = len(s)
			return v
		}
		v := s[i : i+j]
		i += j + 1
		return v
	}
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			i += size
			continue
		}
		if s[i] == '"' {
			if v := readQuoted(); strings.TrimSpace(v) != "" {
				out = append(out, token{value: v, phrase: true})
			}
			continue
		}
		start, end := i, wordEnd(s, i)
		word := s[start:end]
		if k, v, ok := strings.Cut(word, ":"); ok && filterKeys[k] {
			if strings.HasPrefix(v, `"`) {
				i = start + len(k) + 1
				out = append(out, token{key: k, value: readQuoted()})
				continue
			}
			out = append(out, token{key: k, value: v})
		} else {
			out = append(out, token{value: word})
		}
		i = end
	}
	return out
}

// wordEnd returns the index of the first white space at or after i.
func wordEnd(s string, i int) int {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			return i
		}
		i += size
	}
	return i
}

// terms returns the full-text terms of a Query.Text.
func terms(text string) []string {
	var out []string
	for _, t := range tokenize(text) {
		if t.key != "" {
			out = append(out, t.key+":"+t.value)
			continue
		}
		out = append(out, t.value)
	}
	return out
}

// indexable reports whether the FTS tokenizer (unicode61) finds a token in
// term: a letter, a digit, or any non-ASCII character.
func indexable(term string) bool {
	for _, r := range term {
		if r >= 0x80 || unicode.IsLetter(r) || unicode.IsDigit(r) {
			return true
		}
	}
	return false
}

// ftsPhrase quotes a term as an FTS5 string: inside double quotes nothing
// is an operator, and a double quote is written twice. NUL, which would end
// the query string early, becomes a separator like the tokenizer makes it.
func ftsPhrase(term string) string {
	term = strings.ReplaceAll(term, "\x00", " ")
	return `"` + strings.ReplaceAll(term, `"`, `""`) + `"`
}
