package mysqlsrc

import (
	"fmt"
	"slices"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// rowsDecoder decodes rows events as the binlog library does, except
// their DATETIME2 values (MySQL 5.6+ and MariaDB's DATETIME), which it
// formats from their bytes: the library builds those with time.Date, which
// turns a zero month or day ('2024-01-00 10:00:00', stored under a
// permissive sql_mode) into the nearest real time (2023-12-31 10:00:00).
// Here each such value is read as raw bytes (the library's BIT decoding of
// the same length, on a copy of the table map) and formatted field by
// field, as the server prints it, so the zero-date policy sees what was
// stored.
//
// The copy is made once per table map event (by table id and event) and
// kept while the rows events of its statement follow. One rowsDecoder
// serves one binlog reader: decode is called from its one parsing
// goroutine.
type rowsDecoder struct {
	maps map[uint64]rawMap
}

// rawMap is a table map event and its copy that reads DATETIME2 columns
// as raw bytes (raw is nil when it has none).
type rawMap struct {
	orig *replication.TableMapEvent
	raw  *replication.TableMapEvent
	cols []int // the DATETIME2 columns
}

// maxRawMaps bounds the table maps a rowsDecoder keeps (table ids change
// with every reopened table over a long stream).
const maxRawMaps = 1024

func newRowsDecoder() *rowsDecoder { return &rowsDecoder{maps: map[uint64]rawMap{}} }

// rawFor returns the raw copy of a table map event, making it once.
func (d *rowsDecoder) rawFor(orig *replication.TableMapEvent) rawMap {
	if m, ok := d.maps[orig.TableID]; ok && m.orig == orig {
		return m
	}
	m := rawMap{orig: orig}
	for i, tp := range orig.ColumnType {
		if tp == mysql.MYSQL_TYPE_DATETIME2 && i < len(orig.ColumnMeta) {
			m.cols = append(m.cols, i)
		}
	}
	if len(m.cols) > 0 {
		raw := *orig
		raw.ColumnType = slices.Clone(orig.ColumnType)
		raw.ColumnMeta = slices.Clone(orig.ColumnMeta)
		for _, i := range m.cols {
			raw.ColumnType[i] = mysql.MYSQL_TYPE_BIT
			raw.ColumnMeta[i] = uint16(datetime2Len(orig.ColumnMeta[i])) << 8 // whole bytes
		}
		m.raw = &raw
	}
	if len(d.maps) >= maxRawMaps {
		clear(d.maps)
	}
	d.maps[orig.TableID] = m
	return m
}

// decode is the binlog library's RowsEventDecodeFunc.
func (d *rowsDecoder) decode(e *replication.RowsEvent, data []byte) error {
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return err
	}
	orig := e.Table
	if orig == nil {
		return e.DecodeData(pos, data)
	}
	m := d.rawFor(orig)
	if m.raw == nil {
		return e.DecodeData(pos, data)
	}
	e.Table = m.raw
	err = e.DecodeData(pos, data)
	e.Table = orig
	if err != nil {
		return err
	}
	for _, row := range e.Rows {
		for _, i := range m.cols {
			if i >= len(row) {
				continue
			}
			if v, ok := row[i].(int64); ok {
				row[i] = formatDatetime2(uint64(v), int(orig.ColumnMeta[i]))
			}
		}
	}
	return nil
}

// datetime2Len is the stored length of a DATETIME2 of dec fractional
// digits: 5 bytes and 0-3 of fraction.
func datetime2Len(dec uint16) int { return 5 + int(dec+1)/2 }

// datetime2Offset is what the server adds to a DATETIME2's packed integer
// part (so that the stored bytes sort as the values).
const datetime2Offset = 0x8000000000

// formatDatetime2 formats the packed DATETIME2 raw (datetime2Len(dec)
// bytes, big-endian) as the server prints it: "YYYY-MM-DD HH:MM:SS" and,
// for dec > 0, "." and dec digits; zero fields stay zero.
func formatDatetime2(raw uint64, dec int) string {
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
	if year > 9999 || frac > 999999 || dec > 6 {
		// Out of the server's range (a damaged value): as fmt prints it.
		s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", year, month, day, hour, minute, second)
		if dec > 0 {
			s += fmt.Sprintf(".%06d", frac)[:dec+1]
		}
		return s
	}
	// Every field but the year is below 100 (month < 13, day and hour
	// < 32, minute and second < 64), so two digits each.
	var b [len("YYYY-MM-DD HH:MM:SS.ffffff")]byte
	b[0], b[1], b[2], b[3] = digit(year/1000), digit(year/100), digit(year/10), digit(year)
	b[4], b[7], b[10], b[13], b[16] = '-', '-', ' ', ':', ':'
	b[5], b[6] = digit(month/10), digit(month)
	b[8], b[9] = digit(day/10), digit(day)
	b[11], b[12] = digit(hour/10), digit(hour)
	b[14], b[15] = digit(minute/10), digit(minute)
	b[17], b[18] = digit(second/10), digit(second)
	n := 19
	if dec > 0 {
		b[19] = '.'
		for i, div := 0, int64(100000); i < dec; i, div = i+1, div/10 {
			b[20+i] = digit(frac / div)
		}
		n = 20 + dec
	}
	return string(b[:n])
}

// digit is the last decimal digit of v (v >= 0).
func digit(v int64) byte { return byte('0' + v%10) }
