package ingest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

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
// order) of a request sent with Idempotency-Key key: a version 8 UUID made
// of the first 16 bytes of SHA-256(key || 0x00 || decimal index), with the
// version and variant bits set. Every cloud derives the same id, so a
// request retried on another cloud stores the same records.
func DerivedID(key string, index int) string {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(index), 10))
	var u uuid.UUID
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
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
