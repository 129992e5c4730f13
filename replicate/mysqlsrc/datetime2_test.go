package mysqlsrc

import "testing"

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
