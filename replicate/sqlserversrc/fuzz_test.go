package sqlserversrc

import (
	"errors"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/replicate"
)

// FuzzPositionLSN: a position (a checkpoint read back from a target) is
// 20 hex digits or "", or refused with a permanent error; a parsed LSN
// formats back to a position that parses to it, in the same log order.
func FuzzPositionLSN(f *testing.F) {
	for _, s := range []string{"", "0000002A000001F00003", "0000002a000001f00003", "FFFFFFFFFFFFFFFFFFFF", "0x0000002A000001F00003", "42", "0000002A000001F0000", "mysql-bin.000001:4", "0000002A000001F0000G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := PositionLSN(replicate.Position(s))
		if err != nil {
			if !errors.Is(err, replicate.ErrPermanent) || !strings.Contains(err.Error(), "bad position") {
				t.Fatalf("%q: error %v is not a permanent bad-position error", s, err)
			}
			return
		}
		p := l.Position()
		if s != "" && !strings.EqualFold(string(p), s) {
			t.Fatalf("%q formats back as %q", s, p)
		}
		back, err := PositionLSN(p)
		if err != nil || back != l || back.Compare(l) != 0 {
			t.Fatalf("%q: %q parses back to %v, %v", s, p, back, err)
		}
	})
}
