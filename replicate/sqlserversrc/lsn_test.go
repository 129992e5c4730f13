package sqlserversrc

import (
	"errors"
	"testing"

	"github.com/intercloud/intercloud/replicate"
)

func TestLSN(t *testing.T) {
	b := []byte{0x00, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x03}
	l, err := ParseLSN(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Position(); got != "0000002A000001F00003" {
		t.Errorf("position %q", got)
	}
	if got := l.String(); got != "0x0000002A000001F00003" {
		t.Errorf("string %q", got)
	}
	back, err := PositionLSN(l.Position())
	if err != nil || back != l {
		t.Errorf("round trip: %v %v", back, err)
	}
	if lower, err := PositionLSN("0000002a000001f00003"); err != nil || lower != l {
		t.Errorf("lower-case hex: %v %v", lower, err)
	}
	if z, err := PositionLSN(""); err != nil || !z.IsZero() {
		t.Errorf("empty position: %v %v", z, err)
	}
	if z, err := ParseLSN(nil); err != nil || !z.IsZero() {
		t.Errorf("NULL LSN: %v %v", z, err)
	}
	if _, err := ParseLSN(make([]byte, 9)); err == nil {
		t.Error("9-byte LSN accepted")
	}
	for _, bad := range []replicate.Position{"0x0000002A000001F00003", "0000002A000001F0000", "0000002A000001F0000300", "zz00002A000001F00003", "42"} {
		if _, err := PositionLSN(bad); err == nil || !errors.Is(err, replicate.ErrPermanent) {
			t.Errorf("position %q: %v, want a permanent error", bad, err)
		}
	}
	// Log order is byte order, most significant first: the VLF sequence
	// number, then the log block, then the slot.
	order := []replicate.Position{"", "00000000000000000001", "0000002A000001F00003", "0000002A000001F10000", "0000002B000000000000", "FFFFFFFFFFFFFFFFFFFF"}
	for i := range order {
		for j := range order {
			a, _ := PositionLSN(order[i])
			c, _ := PositionLSN(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(c); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
}
