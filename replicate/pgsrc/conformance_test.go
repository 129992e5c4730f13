package pgsrc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
)

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

// TestConformance runs the source conformance suite on PostgreSQL.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and MariaDB")
	}
	c := startCluster(t)
	my := peers.StartMariaDB(t)
	var n int
	sourcetest.Run(t, sourcetest.Harness{
		Source: func(t *testing.T) *sqldb.DB { return c.newDB(t, "src") },
		Targets: map[string]func(t *testing.T) *sqldb.DB{
			"postgres": func(t *testing.T) *sqldb.DB { return c.newDB(t, "dst") },
			"mysql": func(t *testing.T) *sqldb.DB {
				n++
				root := open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/", my.Port))
				exec(t, root, fmt.Sprintf("CREATE DATABASE dst%d", n))
				return open(t, fmt.Sprintf("mysql://root@127.0.0.1:%d/dst%d", my.Port, n))
			},
			"sqlite": func(t *testing.T) *sqldb.DB { return sqliteDB(t, "dst") },
		},
		Matrix:        []string{pgMatrixDDL},
		MatrixRows:    pgMatrixRows,
		MatrixColumns: pgMatrixColumns,
		Unportable:    map[string][]string{"postgres": {"arr"}, "mysql": {"arr"}, "sqlite": {"arr"}},
		AddColumnDDL:  "ALTER TABLE items ADD COLUMN note varchar(30) NOT NULL DEFAULT 'n/a'",
		LeastPrivilege: func(t *testing.T, db *sqldb.DB) *sqldb.DB {
			// The owner prepares the publication and replica identity; the
			// stream's user has SELECT and the REPLICATION attribute only.
			var name string
			if err := db.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			exec(t, db, `ALTER TABLE items REPLICA IDENTITY FULL`)
			exec(t, db, `DO $$ BEGIN
				IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'intercloud') THEN CREATE PUBLICATION intercloud; END IF;
				IF NOT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'intercloud' AND tablename = 'items') THEN
					ALTER PUBLICATION intercloud ADD TABLE items; END IF; END $$`)
			role := "least_" + name
			exec(t, c.root, `CREATE ROLE `+role+` LOGIN REPLICATION PASSWORD 'pw'`)
			exec(t, db, `GRANT SELECT ON items TO `+role)
			return open(t, fmt.Sprintf("postgres://%s:pw@127.0.0.1:%d/%s?sslmode=disable", role, c.p.Port, name))
		},
	})
}

// TestSourcetestChild is the child process of the suite's kill test.
func TestSourcetestChild(t *testing.T) { sourcetest.Child(t) }
