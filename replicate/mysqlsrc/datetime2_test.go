package mysqlsrc

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestFormatDatetime2 packs DATETIME2 values as the server stores them
// (the binlog's bytes) and reads them back, zero month and day included.
func TestFormatDatetime2(t *testing.T) {
	pack := func(y, mo, d, h, mi, s, micro int64, dec int) uint64 {
		ymd := (y*13+mo)<<5 | d
		hms := h<<12 | mi<<6 | s
		v := uint64((ymd<<17 | hms) + datetime2Offset)
		fracBytes := (dec + 1) / 2
		f := micro
		switch fracBytes {
		case 1:
			f /= 10000
		case 2:
			f /= 100
		}
		return v<<(8*fracBytes) | uint64(f)
	}
	for _, tc := range []struct {
		y, mo, d, h, mi, s, micro int64
		dec                       int
		want                      string
	}{
		{2024, 1, 0, 10, 0, 0, 0, 0, "2024-01-00 10:00:00"},
		{2024, 0, 15, 0, 0, 0, 0, 0, "2024-00-15 00:00:00"},
		{0, 0, 0, 0, 0, 0, 0, 0, "0000-00-00 00:00:00"},
		{0, 0, 0, 0, 0, 0, 0, 6, "0000-00-00 00:00:00.000000"},
		{2024, 1, 0, 10, 0, 0, 500000, 3, "2024-01-00 10:00:00.500"},
		{2024, 1, 2, 3, 4, 5, 678000, 3, "2024-01-02 03:04:05.678"},
		{1000, 1, 1, 0, 0, 0, 0, 0, "1000-01-01 00:00:00"},
		{9999, 12, 31, 23, 59, 59, 999999, 6, "9999-12-31 23:59:59.999999"},
		{2038, 1, 19, 3, 14, 7, 120000, 1, "2038-01-19 03:14:07.1"},
		{2038, 1, 19, 3, 14, 7, 120000, 2, "2038-01-19 03:14:07.12"},
		{2038, 1, 19, 3, 14, 7, 123400, 4, "2038-01-19 03:14:07.1234"},
		{2038, 1, 19, 3, 14, 7, 123450, 5, "2038-01-19 03:14:07.12345"},
	} {
		if got := formatDatetime2(pack(tc.y, tc.mo, tc.d, tc.h, tc.mi, tc.s, tc.micro, tc.dec), tc.dec); got != tc.want {
			t.Errorf("%s: got %s", tc.want, got)
		}
		if n := datetime2Len(uint16(tc.dec)); n < 5 || n > 8 {
			t.Errorf("length %d", n)
		}
	}
}

// formatDatetime2Ref is formatDatetime2 as fmt prints it, the reference
// for the digit-by-digit formatting.
func formatDatetime2Ref(raw uint64, dec int) string {
	fracBytes := (dec + 1) / 2
	frac := int64(raw & (1<<(8*fracBytes) - 1))
	switch fracBytes {
	case 1:
		frac *= 10000
	case 2:
		frac *= 100
	}
	packed := int64(raw>>(8*fracBytes)) - datetime2Offset
	if packed < 0 {
		packed = -packed
	}
	ymd, hms := packed>>17, packed%(1<<17)
	ym := ymd >> 5
	year, month, day := ym/13, ym%13, ymd%(1<<5)
	hour, minute, second := hms>>12, (hms>>6)%(1<<6), hms%(1<<6)
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", year, month, day, hour, minute, second)
	if dec > 0 {
		s += fmt.Sprintf(".%06d", frac)[:dec+1]
	}
	return s
}

// TestFormatDatetime2MatchesFmt compares the formatting with fmt's on
// every precision over random stored bytes (damaged values, negative
// packed integers and fractions past 999,999 included) and the bounds.
func TestFormatDatetime2MatchesFmt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for dec := 0; dec <= 6; dec++ {
		bits := 8 * datetime2Len(uint16(dec))
		raws := []uint64{0, 1<<bits - 1, datetime2Offset << (8 * ((dec + 1) / 2)), (datetime2Offset - 1) << (8 * ((dec + 1) / 2))}
		for range 50000 {
			raws = append(raws, rng.Uint64()&(1<<bits-1))
		}
		for _, raw := range raws {
			if got, want := formatDatetime2(raw, dec), formatDatetime2Ref(raw, dec); got != want {
				t.Fatalf("raw %#x dec %d: got %q, want %q", raw, dec, got, want)
			}
		}
	}
}

func BenchmarkFormatDatetime2(b *testing.B) {
	raw := uint64((((2026*13+11)<<5|30)<<17|(12<<12|34<<6|56))+datetime2Offset)<<24 | 123456
	for _, f := range []struct {
		name string
		fn   func(uint64, int) string
	}{{"digits", formatDatetime2}, {"fmt", formatDatetime2Ref}} {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = f.fn(raw, 6)
			}
		})
	}
}
