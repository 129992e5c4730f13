package objects

import (
	"fmt"
	"net/url"
	"strings"
)

// A key made of segments that KeySegment escaped reads the same in a URL
// path: the object at key is served at "/"+key, and KeyOfPath maps that
// path (in any spelling of its escapes) back to key. This is the one
// mapping between object keys and URL paths.

// KeySegment escapes a value (a metric name, a group) into one key
// segment that is also one URL path segment: letters, digits, '-', '_'
// and '.' stay; every other byte is percent-encoded (upper-case hex), and
// so are the dots of a value made only of dots, and the empty value is
// "%00". A '/' in the value stays inside the segment as %2F.
func KeySegment(s string) string {
	if s == "" {
		return "%00"
	}
	var b strings.Builder
	onlyDots := strings.Trim(s, ".") == ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' && !onlyDots {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// KeyOfPath returns the key a URL path names, given as sent (escaped,
// url.URL.EscapedPath): without its leading '/', each '/'-separated
// segment unescaped and escaped again with KeySegment. So "/a%2Fb/x.json",
// "/a%2fb/x.json" and "/%61%2Fb/x.json" all name the key "a%2Fb/x.json",
// which KeySegment("a/b") + "/x.json" made. A path with a malformed
// escape or an empty segment names no key (ErrInvalidKey).
func KeyOfPath(escaped string) (string, error) {
	rest, ok := strings.CutPrefix(escaped, "/")
	if !ok || rest == "" {
		return "", fmt.Errorf("%w: the path %q names no key", ErrInvalidKey, escaped)
	}
	segs := strings.Split(rest, "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil {
			return "", fmt.Errorf("%w: malformed escape in path segment %q", ErrInvalidKey, seg)
		}
		if v == "" {
			return "", fmt.Errorf("%w: empty path segment (leading, trailing or doubled '/')", ErrInvalidKey)
		}
		segs[i] = KeySegment(v)
	}
	return strings.Join(segs, "/"), nil
}
