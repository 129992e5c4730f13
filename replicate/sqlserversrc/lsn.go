package sqlserversrc

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/intercloud/intercloud/replicate"
)

// LSN is a SQL Server log sequence number, binary(10) as CDC returns it
// (__$start_lsn, sys.fn_cdc_get_max_lsn): big-endian, so byte order is
// log order.
type LSN [10]byte

// ParseLSN reads an LSN from CDC's binary(10) (nil or empty is the zero
// LSN, as fn_cdc_get_max_lsn returns NULL before any capture).
func ParseLSN(b []byte) (LSN, error) {
	var l LSN
	switch len(b) {
	case 0:
		return l, nil
	case len(l):
		copy(l[:], b)
		return l, nil
	}
	return l, fmt.Errorf("sqlserversrc: an LSN is 10 bytes, got %d", len(b))
}

// PositionLSN reads a position: 20 hex digits ("" is the zero LSN, the
// beginning of the log).
func PositionLSN(p replicate.Position) (LSN, error) {
	var l LSN
	if p == "" {
		return l, nil
	}
	b, err := hex.DecodeString(string(p))
	if err != nil || len(b) != len(l) {
		return l, replicate.Permanent(fmt.Errorf("sqlserversrc: bad position %q: want an LSN as 20 hex digits", string(p)))
	}
	copy(l[:], b)
	return l, nil
}

// Position is the LSN as a position: 20 upper-case hex digits (the way
// SQL Server prints binary(10) without its 0x).
func (l LSN) Position() replicate.Position {
	return replicate.Position(strings.ToUpper(hex.EncodeToString(l[:])))
}

// String is the LSN as SQL Server prints it (0x...).
func (l LSN) String() string { return "0x" + string(l.Position()) }

// IsZero reports whether l is the zero LSN.
func (l LSN) IsZero() bool { return l == LSN{} }

// Compare orders LSNs in log order (-1, 0, +1).
func (l LSN) Compare(o LSN) int { return bytes.Compare(l[:], o[:]) }

// Bytes is the LSN as a binary(10) argument.
func (l LSN) Bytes() []byte { return bytes.Clone(l[:]) }
