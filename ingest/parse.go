package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/record"
)

// Media types a request body may have.
const (
	MediaJSON   = "application/json"
	MediaNDJSON = "application/x-ndjson"
)

// member is one key and its raw value in a JSON object, in input order.
type member struct {
	key string
	raw json.RawMessage
}

// rawRecord is one syntactically valid JSON object of a request.
type rawRecord struct {
	index   int
	line    int // 1-based line of an NDJSON body; 0 for application/json
	members []member
}

// where names the record in messages: "record 3" or "line 5 (record 3)".
func (r *rawRecord) where() string {
	if r.line > 0 {
		return fmt.Sprintf("line %d (record %d)", r.line, r.index)
	}
	return fmt.Sprintf("record %d", r.index)
}

// Parse reads a request body of the given Content-Type and validates every
// record against schema. It returns the records in input order: ID is the
// client's "id" or empty, Fields are typed (string, float64, int64, bool,
// time.Time in UTC) and a field sent as null is absent. Origin, TraceID and
// IngestedAt are left for the caller.
//
// Records are numbered from 0 in messages; NDJSON lines from 1. Every error
// is an *apierr.Error: 415 for a Content-Type other than application/json
// or application/x-ndjson (charset, if given, must be utf-8); 400 for an
// empty body, malformed JSON, invalid UTF-8, trailing data or a duplicate
// key; 413 for more than maxRecords records (maxRecords <= 0: no bound);
// 422 for a record that breaks the schema. Syntax is checked for the whole
// body before the schema, so a body with both kinds of fault gets the 400.
func Parse(schema config.Schema, contentType string, body []byte, maxRecords int) ([]record.Record, error) {
	media, err := mediaType(contentType)
	if err != nil {
		return nil, err
	}
	var raws []rawRecord
	if media == MediaNDJSON {
		raws, err = splitNDJSON(body, maxRecords)
	} else {
		raws, err = splitJSON(body, maxRecords)
	}
	if err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "the body holds no records")
	}
	out := make([]record.Record, len(raws))
	ids := make(map[string]int)
	for i := range raws {
		rec, err := validate(schema, &raws[i])
		if err != nil {
			return nil, err
		}
		if rec.ID != "" {
			if j, dup := ids[rec.ID]; dup {
				return nil, invalid("%s (id %q): the id repeats record %d", raws[i].where(), rec.ID, j)
			}
			ids[rec.ID] = i
		}
		out[i] = rec
	}
	return out, nil
}

// mediaType checks the Content-Type header and returns its media type.
func mediaType(contentType string) (string, error) {
	if strings.TrimSpace(contentType) == "" {
		return "", apierr.New(http.StatusUnsupportedMediaType, apierr.CodeUnsupportedType,
			"a Content-Type of %s or %s is required", MediaJSON, MediaNDJSON)
	}
	media, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", apierr.New(http.StatusUnsupportedMediaType, apierr.CodeUnsupportedType,
			"unreadable Content-Type %q: use %s or %s", clip(contentType, 100), MediaJSON, MediaNDJSON)
	}
	if media != MediaJSON && media != MediaNDJSON {
		return "", apierr.New(http.StatusUnsupportedMediaType, apierr.CodeUnsupportedType,
			"Content-Type %q is not supported: use %s or %s", clip(media, 100), MediaJSON, MediaNDJSON)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return "", apierr.New(http.StatusUnsupportedMediaType, apierr.CodeUnsupportedType,
			"charset %q is not supported: bodies are UTF-8", clip(cs, 40))
	}
	return media, nil
}

// splitJSON reads one JSON object or an array of objects.
func splitJSON(body []byte, maxRecords int) ([]rawRecord, error) {
	if off := invalidUTF8(body); off >= 0 {
		line, col := position(body, off)
		return nil, malformed("invalid UTF-8 at line %d, column %d", line, col)
	}
	start := firstNonSpace(body)
	if start < 0 {
		return nil, apierr.New(http.StatusBadRequest, apierr.CodeMalformed, "the body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raws []rawRecord
	switch body[start] {
	case '{':
		r := rawRecord{index: 0}
		if err := readObject(dec, &r); err != nil {
			return nil, syntaxError(body, 0, r.where(), err)
		}
		raws = append(raws, r)
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, syntaxError(body, start, "array", err)
		}
		for {
			at := int(dec.InputOffset())
			if !dec.More() {
				break
			}
			r := rawRecord{index: len(raws)}
			if maxRecords > 0 && len(raws) >= maxRecords {
				return nil, tooMany(maxRecords)
			}
			if err := readObject(dec, &r); err != nil {
				return nil, syntaxError(body, at, r.where(), err)
			}
			raws = append(raws, r)
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntaxError(body, int(dec.InputOffset()), "array", err)
		}
	default:
		line, col := position(body, start)
		return nil, malformed("line %d, column %d: expected a JSON object or an array of objects", line, col)
	}
	if _, err := dec.Token(); err != io.EOF {
		off := int(dec.InputOffset())
		if err != nil {
			off = max(0, off-1)
		}
		line, col := position(body, skipSpace(body, off))
		return nil, malformed("trailing data after the JSON value at line %d, column %d", line, col)
	}
	return raws, nil
}

// splitNDJSON reads one object per line; blank lines are skipped.
func splitNDJSON(body []byte, maxRecords int) ([]rawRecord, error) {
	var raws []rawRecord
	for lineNo, rest := 1, body; len(rest) > 0; lineNo++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if firstNonSpace(line) < 0 {
			continue
		}
		r := rawRecord{index: len(raws), line: lineNo}
		if off := invalidUTF8(line); off >= 0 {
			return nil, malformed("%s: invalid UTF-8 at column %d", r.where(), off+1)
		}
		if maxRecords > 0 && len(raws) >= maxRecords {
			return nil, tooMany(maxRecords)
		}
		if scanFlatObject(line, &r) {
			raws = append(raws, r)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := readObject(dec, &r); err != nil {
			return nil, lineSyntaxError(line, r.where(), err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, malformed("%s: trailing data after the object (one object per line)", r.where())
		}
		raws = append(raws, r)
	}
	return raws, nil
}

// errNotObject says a record is a JSON value other than an object.
type errNotObject struct{ got string }

func (e errNotObject) Error() string { return "expected a JSON object, got " + e.got }

// errDuplicate says an object repeats a key.
type errDuplicate struct{ key string }

func (e errDuplicate) Error() string { return fmt.Sprintf("duplicate key %q", clip(e.key, 80)) }

// readObject reads one JSON object from dec into r.members, rejecting
// duplicate keys. Values stay raw for validate.
func readObject(dec *json.Decoder, r *rawRecord) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errNotObject{got: describeToken(tok)}
	}
	seen := make(map[string]struct{}, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("expected an object key, got %s", describeToken(tok))
		}
		if _, dup := seen[key]; dup {
			return errDuplicate{key: key}
		}
		seen[key] = struct{}{}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		r.members = append(r.members, member{key: key, raw: raw})
	}
	_, err = dec.Token() // '}'
	return err
}

func describeToken(tok any) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// syntaxError turns a decoder error on an application/json body into a 400
// naming the record and the position. at is where the value being read
// starts (after whitespace and a separating comma).
func syntaxError(body []byte, at int, where string, err error) error {
	line, col := position(body, errorOffset(body, at))
	return malformed("%s: %s at line %d, column %d", where, describeErr(err), line, col)
}

// lineSyntaxError is syntaxError for one NDJSON line.
func lineSyntaxError(line []byte, where string, err error) error {
	return malformed("%s: %s at column %d", where, describeErr(err), errorOffset(line, 0)+1)
}

// errorOffset finds the offset of a syntax error in the value starting at
// (or after whitespace and one comma from) at. A decoder that mixes Token
// and Decode reports unreliable offsets, so the value is scanned afresh by
// a plain Decode, whose offsets are exact.
func errorOffset(b []byte, at int) int {
	at = skipSpace(b, min(at, len(b)))
	if at < len(b) && b[at] == ',' {
		at = skipSpace(b, at+1)
	}
	var raw json.RawMessage
	err := json.NewDecoder(bytes.NewReader(b[at:])).Decode(&raw)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return min(at+int(se.Offset)-1, len(b))
	}
	if err != nil { // unexpected end
		return len(b)
	}
	return at // the value itself is well formed: the fault is its kind or a key
}

func describeErr(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of JSON input"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "invalid JSON: " + se.Error()
	}
	var no errNotObject
	var dup errDuplicate
	if errors.As(err, &no) || errors.As(err, &dup) {
		return err.Error()
	}
	return "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

// validate checks one raw record against the schema.
func validate(schema config.Schema, r *rawRecord) (record.Record, error) {
	rec := record.Record{Fields: make(map[string]any, len(schema.Fields))}
	where := r.where()
	for _, m := range r.members {
		if m.key == record.ColID {
			id, err := parseID(m.raw)
			if err != nil {
				return record.Record{}, invalid("%s: field \"id\": %s", where, err)
			}
			rec.ID = id
		}
	}
	if rec.ID != "" {
		where = fmt.Sprintf("%s (id %q)", where, rec.ID)
	}
	for _, m := range r.members {
		if m.key == record.ColID {
			continue
		}
		name := clip(m.key, 80)
		if strings.HasPrefix(m.key, "_") {
			return record.Record{}, invalid("%s: field %q: names starting with _ are reserved", where, name)
		}
		f, ok := schema.Field(m.key)
		if !ok {
			return record.Record{}, invalid("%s: unknown field %q", where, name)
		}
		if isNull(m.raw) {
			continue // absent; a required one is reported below
		}
		v, err := fieldValue(f, m.raw)
		if err != nil {
			return record.Record{}, invalid("%s: field %q: %s", where, name, err)
		}
		rec.Fields[f.Name] = v
	}
	for _, f := range schema.Fields {
		if _, ok := rec.Fields[f.Name]; f.Required && !ok {
			return record.Record{}, invalid("%s: missing required field %q", where, f.Name)
		}
	}
	return rec, nil
}

// parseID checks a client-supplied id; null means none.
func parseID(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	if kindOf(raw) != "a string" {
		return "", fmt.Errorf("expected a string, got %s", kindOf(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("unreadable string: %v", err)
	}
	if !ValidID(s) {
		return "", fmt.Errorf("must be 1 to %d characters of A-Z a-z 0-9 . _ : -", record.MaxIDLength)
	}
	return s, nil
}

// ValidID reports whether s may be a client-supplied record id: 1 to 64
// characters from [A-Za-z0-9._:-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > record.MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// MaxNumber bounds the magnitude of a number field. The aggregates of a
// bucket (count, sum, min, max, mean) then stay finite whatever arrives:
// a bucket holds at most 2^63-1 records (its count is an int64), and
// (2^63-1) × 1e288 ≈ 9.2e306 is below the largest float64 (≈ 1.8e308), so
// no sum of accepted values, partial or total, can overflow to ±Inf. A
// larger magnitude is a 422. Integer fields keep the whole int64 range.
const MaxNumber = 1e288

// fieldValue types one non-null raw value by the field's schema type.
func fieldValue(f config.Field, raw json.RawMessage) (any, error) {
	kind := kindOf(raw)
	switch f.Type {
	case config.TypeNumber:
		if kind != "a number" {
			return nil, fmt.Errorf("expected a number, got %s", kind)
		}
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("%s is not a finite 64-bit number", clip(string(raw), 40))
		}
		if math.Abs(v) > MaxNumber {
			return nil, fmt.Errorf("%s is outside ±%g, the range whose sums stay finite", clip(string(raw), 40), MaxNumber)
		}
		return v, nil
	case config.TypeInteger:
		if kind != "a number" {
			return nil, fmt.Errorf("expected an integer, got %s", kind)
		}
		return parseInteger(string(raw))
	case config.TypeBoolean:
		if kind != "a boolean" {
			return nil, fmt.Errorf("expected a boolean, got %s", kind)
		}
		return raw[0] == 't', nil
	case config.TypeTimestamp:
		if kind != "a string" {
			return nil, fmt.Errorf("expected an RFC 3339 timestamp string, got %s", kind)
		}
		s, err := parseString(raw)
		if err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !strictRFC3339(s) {
			return nil, fmt.Errorf("%q is not an RFC 3339 timestamp (like 2025-01-02T15:04:05Z)", clip(s, 40))
		}
		if u := t.UTC(); u.Year() < 1 || u.Year() > 9999 {
			return nil, fmt.Errorf("%q is outside the years 0001 to 9999 in UTC", clip(s, 40))
		}
		return t.UTC(), nil
	case config.TypeString:
		if kind != "a string" {
			return nil, fmt.Errorf("expected a string, got %s", kind)
		}
		s, err := parseString(raw)
		if err != nil {
			return nil, err
		}
		if limit := f.MaxLen(); len(s) > limit {
			return nil, fmt.Errorf("%d bytes is longer than the limit of %d", len(s), limit)
		}
		return s, nil
	}
	return nil, fmt.Errorf("the schema's type %q is unknown", f.Type)
}

// parseInteger reads an exact integer within int64. Forms like 1.0 or 1e3
// that denote an integer exactly are accepted.
func parseInteger(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return v, nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is out of range for a 64-bit integer", clip(s, 40))
	}
	f, ferr := strconv.ParseFloat(s, 64)
	const limit = 1 << 53 // every integer up to here is exact in a float64
	if ferr != nil || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, fmt.Errorf("%s is not an integer", clip(s, 40))
	}
	if f > limit || f < -limit {
		return 0, fmt.Errorf("%s is out of the exact range of a non-decimal integer; write it without fraction or exponent", clip(s, 40))
	}
	return int64(f), nil
}

// parseString decodes a JSON string, refusing NUL and escaped lone UTF-16
// surrogates (which would decode to U+FFFD, silently changing the text).
func parseString(raw json.RawMessage) (string, error) {
	// Most strings have no escape and no control character: their text is
	// the literal's inside, when that is valid UTF-8.
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		plain := true
		for _, c := range raw[1 : n-1] {
			if c < 0x20 || c == '\\' || c == '"' {
				plain = false
				break
			}
		}
		if plain && utf8.Valid(raw[1:n-1]) {
			return string(raw[1 : n-1]), nil
		}
	}
	if loneSurrogate(raw) {
		return "", errors.New("the string holds an escaped lone UTF-16 surrogate (not valid UTF-8 text)")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("unreadable string: %v", err)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("the string holds a NUL character")
	}
	if !utf8.ValidString(s) {
		return "", errors.New("the string is not valid UTF-8")
	}
	return s, nil
}

// loneSurrogate reports whether a JSON string literal has a \uD800-\uDFFF
// escape that is not a high surrogate followed by a low one.
func loneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 >= len(raw) || raw[i+1] != 'u' {
			i++ // skip the escaped character (it may be a backslash)
			continue
		}
		c, ok := hex4(raw, i+2)
		if !ok {
			return false // invalid JSON; the decoder reports it
		}
		i += 5
		switch {
		case c >= 0xDC00 && c <= 0xDFFF:
			return true
		case c >= 0xD800 && c <= 0xDBFF:
			if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return true
			}
			lo, ok := hex4(raw, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return rune(v), err == nil
}

// strictRFC3339 rejects forms time.Parse lets through but RFC 3339 does
// not allow: a lowercase "t"/"z" is fine per the RFC, but the date and time
// separator must be present and the seconds two digits.
func strictRFC3339(s string) bool {
	// YYYY-MM-DDTHH:MM:SS at least.
	if len(s) < len("2006-01-02T15:04:05Z") {
		return false
	}
	for i, c := range []byte(s[:19]) {
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != 'T' && c != 't' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// kindOf names the JSON kind of a raw value.
func kindOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func malformed(format string, a ...any) *apierr.Error {
	return apierr.New(http.StatusBadRequest, apierr.CodeMalformed, format, a...)
}

func invalid(format string, a ...any) *apierr.Error {
	return apierr.New(http.StatusUnprocessableEntity, apierr.CodeInvalid, format, a...)
}

func tooMany(maxRecords int) *apierr.Error {
	return apierr.New(http.StatusRequestEntityTooLarge, apierr.CodeTooLarge,
		"more than %d records in one request", maxRecords)
}

// invalidUTF8 returns the offset of the first invalid UTF-8 byte, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// position turns a byte offset into a 1-based line and column (in bytes).
func position(b []byte, off int) (line, col int) {
	off = min(off, len(b))
	line = 1 + bytes.Count(b[:off], []byte("\n"))
	col = off + 1
	if i := bytes.LastIndexByte(b[:off], '\n'); i >= 0 {
		col = off - i
	}
	return line, col
}

func firstNonSpace(b []byte) int {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return -1
	}
	return i
}

// clip shortens s for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
