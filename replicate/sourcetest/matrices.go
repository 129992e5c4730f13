package sourcetest

import "strings"

// The type matrices of the source databases, shared by their log-based
// and poll-mode conformance runs.
var (
	MariaDBMatrix  = Matrix{DDL: []string{mariaDBMatrixDDL}, Rows: mariaDBMatrixRows, Columns: mariaDBMatrixColumns}
	PostgresMatrix = Matrix{DDL: []string{pgMatrixDDL}, Rows: pgMatrixRows, Columns: pgMatrixColumns,
		Unportable: map[string][]string{"postgres": {"arr"}, "mysql": {"arr"}, "sqlite": {"arr"}}}
	SQLiteMatrix = Matrix{
		DDL: []string{`CREATE TABLE matrix (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, v VARCHAR(20), bo BOOLEAN)`},
		Rows: []string{
			"(%d, -9223372036854775808, -1.5, '', x'', '', 0)",
			"(%d, 9223372036854775807, 1.7976931348623157e308, 'text \U0001F680 ñ ''q''', x'00ff80c328', 'zzzzzzzzzzzzzzzzzzzz', 1)",
			"(%d, 0, 4.9406564584124654e-324, ' ', x'00', ' x ', 1)",
			"(%d" + strings.Repeat(", NULL", 6) + ")",
		},
		Columns: "id, i, r, t, b, v, bo",
	}
)

// Matrix is a source database's type matrix (see the Harness fields of
// the same names).
type Matrix struct {
	DDL        []string
	Rows       []string
	Columns    string
	Unportable map[string][]string
}

// With returns h with the matrix m.
func (m Matrix) With(h Harness) Harness {
	h.Matrix, h.MatrixRows, h.MatrixColumns, h.Unportable = m.DDL, m.Rows, m.Columns, m.Unportable
	return h
}

// mariaDBMatrixDDL has every MySQL/MariaDB column type, unsigned integers both
// after a YEAR column and before others, several character sets and
// collations, and the spatial types.
const mariaDBMatrixDDL = `CREATE TABLE matrix (
	id INT NOT NULL PRIMARY KEY,
	ti TINYINT, tiu TINYINT UNSIGNED, yr YEAR, siu SMALLINT UNSIGNED, b1 TINYINT(1), bo BOOL,
	si SMALLINT, mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
	bit1 BIT(1), bit9 BIT(9), bit64 BIT(64),
	d65 DECIMAL(65,30), d52 DECIMAL(5,2), d0 DECIMAL(10,0) UNSIGNED, fl FLOAT, db DOUBLE,
	dt DATE, dt0 DATETIME, dt6 DATETIME(6), ts0 TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), tm0 TIME,
	c CHAR(10), vc VARCHAR(255), tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT,
	l1 VARCHAR(20) CHARACTER SET latin1, vcb VARCHAR(20) COLLATE utf8mb4_bin, vci VARCHAR(20) COLLATE utf8mb4_general_ci,
	bn BINARY(4), vb VARBINARY(16), tb TINYBLOB, bl BLOB, lb LONGBLOB,
	en ENUM('a','b','c d'), st SET('x','y','z'), js JSON,
	g GEOMETRY NULL, pt POINT NULL, ls LINESTRING NULL, pg POLYGON NULL, mp MULTIPOINT NULL, gc GEOMETRYCOLLECTION NULL,
	after_u SMALLINT UNSIGNED
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`

const mariaDBMatrixColumns = "id, ti, tiu, yr, siu, b1, bo, si, mi, miu, i, iu, bi, biu, bit1, bit9, bit64, d65, d52, d0, fl, db, " +
	"dt, dt0, dt6, ts0, ts6, tm, tm0, c, vc, tt, tx, mt, lt, l1, vcb, vci, bn, vb, tb, bl, lb, en, st, js, g, pt, ls, pg, mp, gc, after_u"

var mariaDBMatrixRows = []string{
	// minima
	"(%d, -128, 0, 1901, 0, 0, 0, -32768, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, b'0', b'0', b'0', " +
		"'-99999999999999999999999999999999999.999999999999999999999999999999', -999.99, 0, -1.5, -1.7976931348623157e308, " +
		"'1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01', '1970-01-01 00:00:01.000000', '-838:59:59.000000', '-838:59:59', " +
		"'a', '', '', '', '', '', 'café', 'Ab', 'aB', x'00000000', x'00', x'', x'00', x'00ff80', " +
		"'a', '', '[]', ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(-1.5 2.25)'), ST_GeomFromText('LINESTRING(0 0,1 1,2 0)'), " +
		"ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(5 5,7 5,7 7,5 7,5 5))'), ST_GeomFromText('MULTIPOINT(1 1,2 2)'), " +
		"ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(0 0,1 1))'), 0)",
	// maxima
	"(%d, 127, 255, 2155, 65535, 5, 1, 32767, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, " +
		"b'1', b'111111111', b'1111111111111111111111111111111111111111111111111111111111111111', " +
		"'99999999999999999999999999999999999.999999999999999999999999999999', 999.99, 9999999999, 3.5, 1.7976931348623157e308, " +
		"'9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2038-01-19 03:14:07.999999', '838:59:59.000000', '838:59:59', " +
		"'zzzzzzzzzz', REPEAT('\U0001F600', 255), REPEAT('t', 255), 'text \U0001F680 ñ', REPEAT('m', 70000), REPEAT('l', 100000), " +
		"'ÿ', 'b', 'B', x'ffffffff', x'fffe00c328', x'c328', REPEAT(x'00ff', 1000), REPEAT(x'c3', 70000), " +
		"'c d', 'x,y,z', '{\"k\": [1, 2.5, \"\\u00e9\"], \"a\": null}', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), ST_GeomFromText('POINT(180 -90)'), " +
		"ST_GeomFromText('LINESTRING(-1e10 1e-10,3 4)'), ST_GeomFromText('POLYGON((0 0,1 0,0 1,0 0))'), ST_GeomFromText('MULTIPOINT(0 0)'), " +
		"ST_GeomFromText('GEOMETRYCOLLECTION EMPTY'), 65535)",
	// zeros, empties, negative zero, denormals, short times
	"(%d, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 1, b'1', b'100000000', b'1000000000000000000000000000000000000000000000000000000000000001', " +
		"'0.000000000000000000000000000001', -0.01, 1, 0, 4.9406564584124654e-324, " +
		"'2024-02-29', '2024-02-29 12:00:00', '2024-02-29 12:00:00.5', '2024-02-29 12:00:00', '2024-02-29 12:00:00.000001', '-00:00:01.5', '25:00:00', " +
		"' ', 'x y ', '''', 'a\\\\b', '\"', '\\n', '', '', '', x'01', x'0000', x'00', x'', x'', " +
		"'b', 'y', '{}', NULL, NULL, NULL, NULL, NULL, NULL, 1)",
	// NULLs
	"(%d" + strings.Repeat(", NULL", 52) + ")",
}

const pgMatrixDDL = `CREATE TABLE matrix (
	id integer PRIMARY KEY,
	si smallint, i integer, bi bigint,
	n65 numeric(65,30), n52 numeric(5,2), r real, d double precision,
	b boolean, dt date, ts timestamp(6), tz timestamptz(6), tm time(6), iv interval,
	tx text, vc varchar(20), ch char(5), by bytea, js json, jb jsonb, u uuid, ip inet,
	arr integer[]
)`

const pgMatrixColumns = "id, si, i, bi, n65, n52, r, d, b, dt, ts, tz, tm, iv, tx, vc, ch, by, js, jb, u, ip, arr"

var pgMatrixRows = []string{
	"(%d, -32768, -2147483648, -9223372036854775808, '-99999999999999999999999999999999999.999999999999999999999999999999', -999.99, -1.5, -1.7976931348623157e308, " +
		"false, '0001-01-01', '0001-01-01 00:00:00', '1970-01-01 00:00:00+00', '00:00:00', '-838:59:59', '', '', 'a', '\\x', '[]', '[]', " +
		"'00000000-0000-0000-0000-000000000000', '0.0.0.0', '{}')",
	"(%d, 32767, 2147483647, 9223372036854775807, '99999999999999999999999999999999999.999999999999999999999999999999', 999.99, 3.5, 1.7976931348623157e308, " +
		"true, '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999+00', '23:59:59.999999', '838:59:59', " +
		"'text \U0001F680 ñ', 'zzzzzzzzzzzzzzzzzzzz', 'abcde', '\\x00ff80c328', '{\"b\": [1, 2.5], \"a\": null}', '{\"k\": \"é\"}', " +
		"'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1', '{1,2,3}')",
	"(%d, 0, 0, 0, '0.000000000000000000000000000001', -0.01, 0, 4.9406564584124654e-324, " +
		"true, '2024-02-29', '2024-02-29 12:00:00.5', '2024-02-29 12:00:00.000001+00', '12:00:00.5', '-00:00:01.5', " +
		"'''', ' ', ' ', '\\x00', '{}', '{}', '123e4567-e89b-12d3-a456-426614174000', '10.0.0.1', NULL)",
	"(%d" + strings.Repeat(", NULL", 22) + ")",
}
