package ingest

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha256"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/record"
)

// The fast path reads a request body, validates every record and writes
// its stored NDJSON line in one pass, without building a record.Record
// (no map, no boxed values) and with a few allocations per request rather
// than per record. It takes the common shape of a body: flat objects
// (scalar values, keys without escapes) in NDJSON or a JSON array, string
// values without escapes, numbers and timestamps in their plain forms.
// Anything else, and every fault, makes it decline; the request then goes
// through Parse and prepare, which accept exactly the same bodies, give
// every error its message and produce the same bytes (FuzzFastPath checks
// this against them).

// maxFastFields bounds the schemas the fast path takes (one bit per field
// in a uint64, plus "id").
const maxFastFields = 63

// fastPlan is a schema compiled for the fast path.
type fastPlan struct {
	fields []config.Field
	// order is the members of a compact record line in the order
	// record.AppendCompact writes them.
	order []fastMember
	// required has the bits of the required fields.
	required uint64
	cloud    string
}

// colID marks the "id" member in fastMember.col.
const colID = -1

// fastMember is one member of a compact record line: `"name":` and what
// it holds (a field index, or colID).
type fastMember struct {
	key []byte
	col int
}

// newFastPlan compiles s, or returns nil when the fast path cannot take it.
func newFastPlan(s config.Schema, cloud string) *fastPlan {
	if len(s.Fields) > maxFastFields {
		return nil
	}
	p := &fastPlan{fields: s.Fields, cloud: cloud}
	for i, f := range s.Fields {
		if f.Required {
			p.required |= 1 << i
		}
	}
	for _, k := range record.CompactKeys(s) {
		m := fastMember{col: colID}
		if k != record.ColID {
			if m.col = slices.IndexFunc(s.Fields, func(f config.Field) bool { return f.Name == k }); m.col < 0 {
				return nil
			}
		}
		m.key, _ = record.AppendValue(nil, k)
		m.key = append(m.key, ':')
		p.order = append(p.order, m)
	}
	return p
}

// fastRequest is what the fast path makes of one request.
type fastRequest struct {
	lines   []byte // stored NDJSON: the shared line, then a line per record
	records int
	answer  []byte // the 202 body: {"ids":[...]}
}

// fastScratch holds one record's rendered values while it is read.
type fastScratch struct {
	vals   []byte
	spans  [][2]int32 // per field: its value in vals
	set    uint64     // fields with a value
	seen   uint64     // fields present (null included)
	id     []byte     // the client's id, or nil
	idSeen bool
}

// fastIDs makes the ids of records without a client id.
type fastIDs struct {
	derived bool
	key     []byte // Idempotency-Key || 0x00, for DerivedID
	at      time.Time
	// rng gives the random bits of fresh UUIDv7s (see idSource); nil
	// for derived ids.
	rng *rand.ChaCha8
	ms  uint64
	seq uint64
}

// idSources hands out the generators of fresh ids' random bits: ChaCha8
// (math/rand/v2), a cryptographically secure generator, each seeded with
// 32 bytes from crypto/rand when it is made, and used by one request at a
// time. Its output cannot be told from crypto/rand's without the seed, so
// ids are as unlikely to collide across requests, processes and restarts
// as with a crypto/rand read per id, at a fraction of the cost. The zero
// value is ready.
type idSources struct{ pool sync.Pool }

func (s *idSources) get() *rand.ChaCha8 {
	if r, ok := s.pool.Get().(*rand.ChaCha8); ok {
		return r
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand never fails
	return rand.NewChaCha8(seed)
}

func (s *idSources) put(r *rand.ChaCha8) { s.pool.Put(r) }

// fastBuild is the state of one request on the fast path.
type fastBuild struct {
	p           *fastPlan
	maxRecords  int
	ids         fastIDs
	sc          fastScratch
	clientIDs   map[string]struct{}
	out, answer []byte
	n           int
}

// fastPrepare is the fast path of Parse followed by prepare. ok is false
// when it declines (see above); nothing it made is then used.
func (a *API) fastPrepare(contentType string, body []byte, trace string, now time.Time,
	idemKey string, hasKey bool, reqTime time.Time) (fr fastRequest, ok bool) {
	p := a.fast
	if p == nil {
		return fr, false
	}
	media, err := mediaType(contentType)
	if err != nil || !utf8.Valid(body) {
		return fr, false
	}
	fb := fastBuild{p: p, maxRecords: a.cfg.Limits.MaxRecords, ids: fastIDs{derived: hasKey, at: reqTime}}
	if hasKey {
		fb.ids.key = append(append(make([]byte, 0, len(idemKey)+21), idemKey...), 0)
	} else {
		fb.ids.ms = uint64(max(now.UnixMilli(), 0))
		fb.ids.rng = a.idSources.get()
		defer a.idSources.put(fb.ids.rng)
	}
	// Each record grows by its id and the keys of the fields it leaves
	// out; a line per record is a fair guess at the count.
	guess := bytes.Count(body, []byte{'\n'}) + 1
	perRecord := 48
	for _, m := range p.order {
		perRecord += len(m.key)
	}
	fb.out = a.bufs.get(len(body) + guess*perRecord + len(p.cloud) + len(trace) + 128)
	// The members every record of the request shares, once.
	fb.out = append(record.AppendShared(fb.out, record.Shared{Origin: p.cloud, TraceID: trace, IngestedAt: now}), '\n')
	fb.answer = append(a.bufs.get(39*guess+16), `{"ids":[`...)
	defer func() {
		if !ok { // nothing of it is used
			a.bufs.put(fb.out)
			a.bufs.put(fb.answer)
		}
	}()
	fb.sc = fastScratch{spans: make([][2]int32, len(p.fields)), vals: make([]byte, 0, 256)}

	if media == MediaNDJSON {
		for rest := body; len(rest) > 0; {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			if firstNonSpace(line) < 0 {
				continue
			}
			if !fb.add(line) {
				return fr, false
			}
		}
	} else {
		i := skipSpace(body, 0)
		if i >= len(body) {
			return fr, false
		}
		switch body[i] {
		case '{':
			if !fb.add(body[i:]) {
				return fr, false
			}
		case '[':
			i = skipSpace(body, i+1)
			if i < len(body) && body[i] == ']' {
				return fr, false // no records: Parse says so
			}
			for {
				end := flatObjectEnd(body, i)
				if end < 0 || !fb.add(body[i:end]) {
					return fr, false
				}
				i = skipSpace(body, end)
				if i >= len(body) {
					return fr, false
				}
				if body[i] == ']' {
					if skipSpace(body, i+1) != len(body) {
						return fr, false
					}
					break
				}
				if body[i] != ',' {
					return fr, false
				}
				i = skipSpace(body, i+1)
			}
		default:
			return fr, false
		}
	}
	if fb.n == 0 {
		return fr, false
	}
	fb.answer = append(fb.answer, "]}\n"...)
	return fastRequest{lines: fb.out, records: fb.n, answer: fb.answer}, true
}

// add reads, validates and renders one record.
func (fb *fastBuild) add(obj []byte) bool {
	p, sc := fb.p, &fb.sc
	if fb.maxRecords > 0 && fb.n >= fb.maxRecords {
		return false
	}
	if !p.scanRecord(obj, sc) {
		return false
	}
	answer := fb.answer
	if fb.n > 0 {
		answer = append(answer, ',')
	}
	answer = append(answer, '"')
	idAt := len(answer)
	if sc.id != nil {
		if fb.clientIDs == nil {
			fb.clientIDs = make(map[string]struct{})
		}
		if _, dup := fb.clientIDs[string(sc.id)]; dup {
			return false
		}
		fb.clientIDs[string(sc.id)] = struct{}{}
		answer = append(answer, sc.id...)
	} else {
		answer = fb.ids.appendNext(answer, fb.n)
	}
	id := answer[idAt:]
	fb.answer = append(answer, '"')
	out := append(fb.out, '{')
	first := true
	for _, m := range p.order {
		if m.col == colID {
			out = appendMember(out, &first, m.key)
			out = append(out, '"')
			out = append(out, id...)
			out = append(out, '"')
			continue
		}
		if sc.set&(1<<m.col) == 0 {
			continue
		}
		sp := sc.spans[m.col]
		out = appendMember(out, &first, m.key)
		out = append(out, sc.vals[sp[0]:sp[1]]...)
	}
	fb.out = append(out, '}', '\n')
	fb.n++
	return true
}

func appendMember(b []byte, first *bool, key []byte) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	return append(b, key...)
}

// flatObjectEnd returns the end of the flat JSON object starting at i (just
// past its '}'), found by skipping strings, or -1. The object's syntax is
// checked by scanRecord.
func flatObjectEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '{' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			for j++; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
		case '}':
			return j + 1
		case '{', '[':
			return -1
		}
	}
	return -1
}

// scanRecord reads one flat object (with nothing but whitespace around
// it), validates it against the schema and renders its field values into
// sc. It reports false for anything the fast path does not take.
func (p *fastPlan) scanRecord(obj []byte, sc *fastScratch) bool {
	sc.vals, sc.set, sc.seen, sc.id, sc.idSeen = sc.vals[:0], 0, 0, nil, false
	next := 0 // the field expected next
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return p.required == 0 && skipSpace(obj, i+1) == len(obj)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return false
		}
		j := i + 1
		for j < len(obj) && obj[j] != '"' {
			if obj[j] == '\\' || obj[j] < 0x20 {
				return false
			}
			j++
		}
		if j >= len(obj) {
			return false
		}
		key := obj[i+1 : j]
		i = skipSpace(obj, j+1)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		var end int
		var kind strKind
		if i < len(obj) && obj[i] == '"' {
			end, kind = stringEnd(obj, i)
		} else {
			end = scanScalar(obj, i)
		}
		if end < 0 {
			return false
		}
		raw := obj[i:end]
		if len(key) > 0 && key[0] == '_' {
			return false // reserved: Parse says so
		}
		if string(key) == record.ColID {
			if sc.idSeen {
				return false
			}
			sc.idSeen = true
			if !isNull(raw) {
				if raw[0] != '"' || !ValidID(string(raw[1:len(raw)-1])) {
					return false
				}
				sc.id = raw[1 : len(raw)-1]
			}
		} else {
			// Clients mostly send the fields in the schema's order: the
			// one after the last is tried first.
			fi := -1
			if next < len(p.fields) && p.fields[next].Name == string(key) {
				fi = next
			} else {
				for k := range p.fields {
					if p.fields[k].Name == string(key) {
						fi = k
						break
					}
				}
			}
			if fi < 0 || sc.seen&(1<<fi) != 0 {
				return false
			}
			sc.seen |= 1 << fi
			next = fi + 1
			if !isNull(raw) {
				start := len(sc.vals)
				var ok bool
				if sc.vals, ok = appendFieldValue(sc.vals, p.fields[fi], raw, kind); !ok {
					return false
				}
				sc.spans[fi] = [2]int32{int32(start), int32(len(sc.vals))}
				sc.set |= 1 << fi
			}
		}
		i = skipSpace(obj, end)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return skipSpace(obj, i+1) == len(obj) && sc.set&p.required == p.required
		default:
			return false
		}
	}
}

// appendFieldValue validates one non-null raw value of field f and appends
// its stored form, as fieldValue and record.AppendValue would; kind is
// what stringEnd found in a string literal. ok is false when the value is
// invalid (Parse reports it).
func appendFieldValue(b []byte, f config.Field, raw []byte, kind strKind) ([]byte, bool) {
	switch f.Type {
	case config.TypeString:
		if raw[0] != '"' {
			return b, false
		}
		if kind&strEscaped == 0 {
			// No escape: the literal's inside is its text (valid UTF-8,
			// no control character: the scan refused those).
			s := raw[1 : len(raw)-1]
			if len(s) > f.MaxLen() {
				return b, false
			}
			if kind&strSpecial != 0 {
				// "<", ">", "&", U+2028 and U+2029 are escaped in the
				// stored form.
				b, _ = record.AppendValue(b, string(s))
				return b, true
			}
			return append(b, raw...), true
		}
	case config.TypeNumber:
		if n, ok := shortDecimal(raw); ok {
			return append(b, n...), true
		}
	case config.TypeInteger:
		if v, ok := plainInteger(raw); ok {
			return strconv.AppendInt(b, v, 10), true
		}
	case config.TypeBoolean:
		switch string(raw) {
		case "true", "false":
			return append(b, raw...), true
		}
		return b, false
	case config.TypeTimestamp:
		if canonicalUTC(raw) {
			return append(b, raw...), true
		}
	}
	// The other forms (escapes, exponents, long numbers, offsets): the
	// reference conversion.
	v, err := fieldValue(f, raw)
	if err != nil {
		return b, false
	}
	b, err = record.AppendValue(b, v)
	return b, err == nil
}

// strKind says what a string literal holds besides plain text.
type strKind uint8

const (
	// strEscaped: a backslash escape.
	strEscaped strKind = 1 << iota
	// strSpecial: a byte the stored form escapes ("<", ">", "&") or the
	// first byte of U+2028 or U+2029 (0xe2, which other characters share).
	strSpecial
)

// Byte classes of stringEnd; plain text is 0.
const (
	clsQuote = 1 + iota
	clsControl
	clsBackslash
	clsSpecial
)

// strClass classes the bytes of a string literal's inside.
var strClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = clsControl
	}
	t['"'] = clsQuote
	t['\\'] = clsBackslash
	t['<'], t['>'], t['&'], t[0xe2] = clsSpecial, clsSpecial, clsSpecial, clsSpecial
	return t
}()

// stringEnd returns the end of the JSON string literal starting at b[i]
// (a '"'), just past its closing quote, and what it holds, reading the
// literal once; or -1 for a control character, a bad escape or no end.
// UTF-8 is not checked (the body was).
func stringEnd(b []byte, i int) (int, strKind) {
	var kind strKind
	for j := i + 1; ; j++ {
		for j < len(b) && strClass[b[j]] == 0 {
			j++
		}
		if j >= len(b) {
			return -1, 0
		}
		switch strClass[b[j]] {
		case clsQuote:
			return j + 1, kind
		case clsBackslash:
			// Escapes are rare: the literal is checked again with them.
			return scanScalar(b, i), strEscaped
		case clsSpecial:
			kind |= strSpecial
		default: // a control character
			return -1, 0
		}
	}
}

// shortDecimal returns the stored form of a JSON number without exponent
// with at most 15 significant digits and a magnitude of 0 or at least
// 1e-6: the number itself without the trailing zeros of its fraction (nor
// a bare "."). Every decimal of up to 15 significant digits is the
// shortest one that reads back as its nearest float64 (15 is the float64's
// DBL_DIG), and numbers from 1e-6 up to 1e15 are written without exponent,
// so this is what strconv's shortest formatting of the parsed value gives.
func shortDecimal(raw []byte) ([]byte, bool) {
	i := 0
	if raw[0] == '-' {
		i = 1
	}
	digits, sig, lead, dot := 0, 0, 0, -1
	for j := i; j < len(raw); j++ {
		c := raw[j]
		switch {
		case c >= '0' && c <= '9':
			digits++
			if sig > 0 || c != '0' {
				sig++
			} else if dot >= 0 {
				lead++ // a zero after the point before any other digit
			}
		case c == '.' && dot < 0:
			dot = j
		default:
			return nil, false
		}
	}
	if digits == 0 || sig > 15 || sig > 0 && lead >= 6 {
		return nil, false // long, or below 1e-6: strconv's own way
	}
	if dot < 0 {
		return raw, true
	}
	end := len(raw)
	for end > dot+1 && raw[end-1] == '0' {
		end--
	}
	if end == dot+1 {
		end = dot
	}
	return raw[:end], true
}

// plainInteger reads a JSON integer of at most 18 digits (no fraction or
// exponent), which always fits an int64.
func plainInteger(raw []byte) (int64, bool) {
	i, neg := 0, false
	if raw[0] == '-' {
		i, neg = 1, true
	}
	if i >= len(raw) || len(raw)-i > 18 {
		return 0, false
	}
	var v int64
	for ; i < len(raw); i++ {
		c := raw[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// canonicalUTC reports whether a JSON string literal is a valid RFC 3339
// timestamp already in the stored form: YYYY-MM-DDTHH:MM:SS, then a
// fraction of 1 to 9 digits not ending in 0 or none, then Z, in the years
// 0001 to 9999. Its stored form is then the literal itself.
func canonicalUTC(raw []byte) bool {
	n := len(raw)
	if n < 22 || raw[0] != '"' || raw[n-1] != '"' || raw[n-2] != 'Z' {
		return false
	}
	s := raw[1 : n-2] // without quotes and Z
	if len(s) < 19 {
		return false
	}
	num := func(at, width int) int {
		v := 0
		for _, c := range s[at : at+width] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
		minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return false
	}
	if day > daysIn(month, year) {
		return false
	}
	if frac := s[19:]; len(frac) > 0 {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' || frac[len(frac)-1] == '0' {
			return false
		}
		for _, c := range frac[1:] {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// appendNext appends the id of the record at index that has no client id:
// DerivedID of the request's key, or a fresh UUIDv7 (time-ordered: the
// request's milliseconds and a counter, then random bits).
func (g *fastIDs) appendNext(b []byte, index int) []byte {
	var u [16]byte
	if g.derived {
		key := strconv.AppendInt(g.key, int64(index), 10)
		sum := sha256.Sum256(key)
		copy(u[:], sum[:16])
		if g.at.IsZero() {
			u[6] = u[6]&0x0f | 0x80
			u[8] = u[8]&0x3f | 0x80
		} else {
			setV7(&u, uint64(min(max(g.at.UnixMilli(), 0), 1<<48-1)), uint64(index)&(1<<18-1))
		}
		return appendUUID(b, &u)
	}
	// 56 random bits (rand_b below the counter); the rest is time,
	// counter, version and variant.
	r := g.rng.Uint64()
	u[9], u[10], u[11], u[12], u[13], u[14], u[15] = byte(r>>48), byte(r>>40), byte(r>>32), byte(r>>24), byte(r>>16), byte(r>>8), byte(r)
	seq := nextV7(&g.ms, &g.seq)
	setV7(&u, g.ms, seq)
	return appendUUID(b, &u)
}

// setV7 writes the UUIDv7 layout: 48-bit milliseconds, version 7, an
// 18-bit counter in rand_a and the top of rand_b, the variant.
func setV7(u *[16]byte, ms, c uint64) {
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(c>>14)&0x0f
	u[7] = byte(c >> 6)
	u[8] = 0x80 | byte(c&0x3f)
}

// nextV7 is a per-request counter for fresh UUIDv7s; it moves to the next
// millisecond when the counter would overflow.
func nextV7(ms, seq *uint64) uint64 {
	c := *seq
	*seq++
	if *seq >= 1<<18 {
		*ms++
		*seq = 0
	}
	return c
}

// appendUUID appends u in the 8-4-4-4-12 hex form.
func appendUUID(b []byte, u *[16]byte) []byte {
	const hexd = "0123456789abcdef"
	var t [36]byte
	t[8], t[13], t[18], t[23] = '-', '-', '-', '-'
	for i, at := range uuidHexAt {
		c := u[i]
		t[at], t[at+1] = hexd[c>>4], hexd[c&0xf]
	}
	return append(b, t[:]...)
}

// uuidHexAt is where each byte of a UUID goes in its 8-4-4-4-12 form.
var uuidHexAt = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}
