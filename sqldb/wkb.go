package sqldb

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A Spatial column's portable value is a geometry's well-known binary
// (WKB, OGC 06-103r4) exactly; a geometry with a spatial reference other
// than 0 is extended WKB as PostGIS writes it: the SRID flag set in the
// type word and the SRID after it. These helpers move between that form
// and a WKB with its SRID.

const ewkbSRIDFlag = 0x20000000

// EWKB returns the portable value of a geometry given as WKB and its SRID.
func EWKB(srid uint32, wkb []byte) ([]byte, error) {
	order, typ, err := wkbHeader(wkb)
	if err != nil {
		return nil, err
	}
	if srid == 0 || typ&ewkbSRIDFlag != 0 {
		return append([]byte(nil), wkb...), nil
	}
	out := make([]byte, 0, len(wkb)+4)
	out = append(out, wkb[0])
	out = order.AppendUint32(out, typ|ewkbSRIDFlag)
	out = order.AppendUint32(out, srid)
	return append(out, wkb[5:]...), nil
}

// SplitEWKB returns the SRID (0 when none) and the plain WKB of a
// portable geometry value.
func SplitEWKB(b []byte) (uint32, []byte, error) {
	order, typ, err := wkbHeader(b)
	if err != nil {
		return 0, nil, err
	}
	if typ&ewkbSRIDFlag == 0 {
		return 0, b, nil
	}
	if len(b) < 9 {
		return 0, nil, errors.New("sqldb: extended WKB too short for its SRID")
	}
	srid := order.Uint32(b[5:9])
	out := make([]byte, 0, len(b)-4)
	out = append(out, b[0])
	out = order.AppendUint32(out, typ&^ewkbSRIDFlag)
	return srid, append(out, b[9:]...), nil
}

type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

func wkbHeader(b []byte) (byteOrder, uint32, error) {
	if len(b) < 5 {
		return nil, 0, fmt.Errorf("sqldb: %d bytes are no WKB geometry", len(b))
	}
	var order byteOrder
	switch b[0] {
	case 0:
		order = binary.BigEndian
	case 1:
		order = binary.LittleEndian
	default:
		return nil, 0, fmt.Errorf("sqldb: WKB byte order %#x is neither 0 nor 1", b[0])
	}
	return order, order.Uint32(b[1:5]), nil
}
