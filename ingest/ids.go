package ingest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// MaxIdempotencyKey bounds the Idempotency-Key header's length.
const MaxIdempotencyKey = 200

// ValidIdempotencyKey reports whether k may be an Idempotency-Key: 1 to 200
// printable ASCII characters (space through tilde).
func ValidIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// DerivedID returns the id of the record at index (0-based, in request
// order) of a request sent with Idempotency-Key key and stamped with the
// time at (see HeaderRequestTime; the zero time when there is none).
//
// A stamped request gets time-ordered ids in the UUIDv7 layout (RFC 9562
// §5.7): the 48-bit Unix milliseconds of at, then the record's index as an
// 18-bit counter (RFC 9562 §6.2 method 1: rand_a and the six leading bits
// of rand_b), then 56 bits of SHA-256(key || 0x00 || decimal index). The
// ids of one request therefore ascend in record order and follow those of
// earlier requests, so inserts land at the right edge of a key index.
//
// An unstamped request gets a version 8 UUID made of the first 16 bytes of
// SHA-256(key || 0x00 || decimal index), not time-ordered.
//
// Either way every cloud derives the same ids from the same key and time,
// so a request retried on another cloud stores the same records.
func DerivedID(key string, at time.Time, index int) string {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(index), 10))
	var u uuid.UUID
	copy(u[:], h.Sum(nil))
	if at.IsZero() {
		u[6] = u[6]&0x0f | 0x80 // version 8
		u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
		return u.String()
	}
	ms := uint64(min(max(at.UnixMilli(), 0), 1<<48-1))
	c := uint64(index) & (1<<18 - 1)
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(c>>14)&0x0f // version 7, counter bits 17-14
	u[7] = byte(c >> 6)            // counter bits 13-6
	u[8] = 0x80 | byte(c&0x3f)     // variant, counter bits 5-0
	return u.String()
}

// RequestTime returns the time a request's ids are derived from: its
// HeaderRequestTime value (RFC 3339), else the time of an Idempotency-Key
// that is itself a UUIDv7, else the zero time. ok is false when the
// header is present but not one valid RFC 3339 time.
func RequestTime(header []string, key string) (at time.Time, ok bool) {
	if len(header) > 0 {
		if len(header) > 1 {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, header[0])
		if err != nil || t.UnixMilli() < 0 || t.UnixMilli() >= 1<<48 {
			return time.Time{}, false
		}
		return t, true
	}
	if u, err := uuid.Parse(key); err == nil && u.Version() == 7 && u.Variant() == uuid.RFC4122 && len(key) == 36 {
		sec, nsec := u.Time().UnixTime()
		return time.Unix(sec, nsec), true
	}
	return time.Time{}, true
}

// newID returns a fresh UUIDv7: time-ordered and random.
func newID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("ingest: new id: %w", err)
	}
	return u.String(), nil
}

// traceIDFrom returns the trace id of a valid W3C traceparent header, or ""
// when the header is absent or malformed (the specification says to ignore
// it then and start a new trace).
func traceIDFrom(traceparent string) string {
	const n = 2 + 1 + 32 + 1 + 16 + 1 + 2 // 55
	s := traceparent
	if len(s) < n || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return ""
	}
	version, traceID, parentID, flags := s[0:2], s[3:35], s[36:52], s[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return ""
	}
	if allZero(traceID) || allZero(parentID) {
		return ""
	}
	if len(s) != n && (version == "00" || s[n] != '-') {
		return ""
	}
	return traceID
}

// newTraceID returns 16 random bytes in lowercase hex.
func newTraceID() string {
	var b [16]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand never fails
		if b != [16]byte{} {
			return hex.EncodeToString(b[:])
		}
	}
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// allZero reports whether s is all '0' characters.
func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
