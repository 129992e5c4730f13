package frontdoor

import (
	"crypto/rand"
	"encoding/hex"
)

// validTraceparent reports whether s is a W3C Trace Context traceparent
// header value this front door can pass on:
// version "-" trace-id "-" parent-id "-" flags, lowercase hex, with the
// forbidden version ff and all-zero ids rejected. A version above 00 may
// carry more fields after the flags, as the specification allows; they
// must be lowercase hex and dashes too.
func validTraceparent(s string) bool {
	const n = 2 + 1 + 32 + 1 + 16 + 1 + 2 // 55
	if len(s) < n || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	version, traceID, parentID, flags := s[0:2], s[3:35], s[36:52], s[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return false
	}
	if allZero(traceID) || allZero(parentID) {
		return false
	}
	if version == "00" {
		return len(s) == n
	}
	if len(s) == n {
		return true
	}
	// Later fields of a future version are kept only while they look like
	// the known ones (lowercase hex and dashes).
	if s[n] != '-' {
		return false
	}
	for i := n + 1; i < len(s); i++ {
		if c := s[i]; c != '-' && !lowerHex(s[i:i+1]) {
			return false
		}
	}
	return true
}

// newTraceparent returns a version 00 traceparent with a fresh random trace
// id and parent id, flagged as sampled.
func newTraceparent() string {
	var b [24]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		if !allZeroBytes(b[:16]) && !allZeroBytes(b[16:]) {
			break
		}
	}
	out := make([]byte, 0, 55)
	out = append(out, "00-"...)
	out = hex.AppendEncode(out, b[:16])
	out = append(out, '-')
	out = hex.AppendEncode(out, b[16:])
	out = append(out, "-01"...)
	return string(out)
}

// traceIDOf returns the trace id of a valid traceparent.
func traceIDOf(traceparent string) string {
	if len(traceparent) < 35 {
		return ""
	}
	return traceparent[3:35]
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

func allZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
