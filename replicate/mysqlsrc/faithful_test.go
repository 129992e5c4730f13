package mysqlsrc_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
	"github.com/intercloud/intercloud/sqldb"
)

// Tables shaped like those of a well-known MySQL sample database (a DVD
// rental store), with the types a default mapping gets wrong when it is
// not faithful: TINYINT(1), DATETIME, GEOMETRY, ENUM, SET, MEDIUMINT
// UNSIGNED.
const (
	customerDDL = `CREATE TABLE customer (
	customer_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
	first_name VARCHAR(45) NOT NULL,
	active TINYINT(1) NOT NULL DEFAULT 1,
	create_date DATETIME NOT NULL,
	last_update TIMESTAMP NULL DEFAULT NULL,
	PRIMARY KEY (customer_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
	addressDDL = `CREATE TABLE address (
	address_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
	address VARCHAR(50) NOT NULL,
	location GEOMETRY NOT NULL,
	PRIMARY KEY (address_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
	filmTextDDL = `CREATE TABLE film_text (
	film_id SMALLINT NOT NULL,
	rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G',
	special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes') DEFAULT NULL,
	views MEDIUMINT UNSIGNED NULL,
	PRIMARY KEY (film_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
)

// pgText reads one text value from PostgreSQL.
func pgText(t testing.TB, db *sqldb.DB, query string, args ...any) string {
	t.Helper()
	var s *string
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if s == nil {
		return "NULL"
	}
	return *s
}

// TestFaithfulMapping replicates MariaDB tables to PostgreSQL through the
// full load and the binlog and reads the target's catalogue and values
// with PostgreSQL's own text output: TINYINT(1) stays an integer (a 5
// stays 5), DATETIME is a timestamp without zone, GEOMETRY is bytea with
// the WKB exactly (EWKB with the SRID when there is one), ENUM and SET are
// text with a CHECK of their members, MEDIUMINT UNSIGNED has the bound
// 16777215, and ADD COLUMN ... NOT NULL DEFAULT gives the rows already on
// the target the default.
func TestFaithfulMapping(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	src, dst := sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, e.pgURL(t))
	for _, ddl := range []string{customerDDL, addressDDL, filmTextDDL} {
		sourcetest.Exec(t, src, ddl)
	}
	fill := func(base int) {
		sourcetest.Exec(t, src, `INSERT INTO customer VALUES (?, 'MARY', 1, '2006-02-14 22:04:36', '2006-02-15 04:57:20'),
			(?, 'PATRICIA', 0, '1000-01-01 00:00:00', NULL), (?, 'LINDA', 5, '9999-12-31 23:59:59', '2038-01-19 03:14:07')`, base+1, base+2, base+3)
		sourcetest.Exec(t, src, `INSERT INTO address VALUES (?, '47 MySakila Drive', ST_GeomFromText('POINT(-112.8185647 49.6999986)')),
			(?, 'srid', ST_GeomFromText('POINT(1 2)', 4326)),
			(?, 'poly', ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(5 5,7 5,7 7,5 7,5 5))'))`, base+1, base+2, base+3)
		sourcetest.Exec(t, src, `INSERT INTO film_text VALUES (?, 'PG-13', 'Trailers,Deleted Scenes', 16777215),
			(?, 'NC-17', '', 0), (?, NULL, NULL, NULL)`, base+1, base+2, base+3)
	}
	fill(0)
	r := sourcetest.Start(t, replicate.Config{Name: "faithful", Source: src, Target: dst, Tables: []string{"customer", "address", "film_text"}})
	sourcetest.WaitFor(t, "full load", 60*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	fill(100)
	waitCaughtUp(t, r, src)

	// The catalogue: types and checks as PostgreSQL reports them.
	for col, want := range map[string]string{
		"customer.active": "smallint", "customer.create_date": "timestamp without time zone",
		"customer.last_update": "timestamp with time zone", "address.location": "bytea",
		"film_text.rating": "character varying", "film_text.special_features": "character varying",
		"film_text.views": "integer",
	} {
		tbl, c, _ := strings.Cut(col, ".")
		if got := pgText(t, dst, `SELECT data_type FROM information_schema.columns WHERE table_name = $1 AND column_name = $2`, tbl, c); got != want {
			t.Errorf("%s is %s on the target, want %s", col, got, want)
		}
	}
	checks := pgText(t, dst, `SELECT string_agg(pg_get_constraintdef(oid), ' ; ' ORDER BY 1) FROM pg_constraint WHERE conrelid = 'film_text'::regclass AND contype = 'c'`)
	for _, want := range []string{"16777215", "'PG-13'", "'Behind the Scenes'"} {
		if !strings.Contains(checks, want) {
			t.Errorf("film_text's checks lack %s: %s", want, checks)
		}
	}
	if strings.Contains(checks, "4294967295") {
		t.Errorf("MEDIUMINT UNSIGNED checked against the INT bound: %s", checks)
	}
	if _, err := dst.ExecContext(context.Background(), `INSERT INTO film_text (film_id, rating) VALUES (999, 'X')`); err == nil {
		t.Errorf("the target takes an ENUM value that is no member")
	}
	if _, err := dst.ExecContext(context.Background(), `INSERT INTO film_text (film_id, special_features) VALUES (998, 'Trailers,Bloopers')`); err == nil {
		t.Errorf("the target takes a SET value with a non-member")
	}

	// The values, full load (1..3) and binlog (101..103) alike.
	for _, base := range []int{0, 100} {
		for id, want := range map[int]string{
			1: "1|2006-02-14 22:04:36|2006-02-15 04:57:20+00",
			2: "0|1000-01-01 00:00:00|NULL",
			3: "5|9999-12-31 23:59:59|2038-01-19 03:14:07+00",
		} {
			got := pgText(t, dst, `SELECT concat_ws('|', active::text, create_date::text, coalesce(last_update::text, 'NULL')) FROM customer WHERE customer_id = $1`, base+id)
			if got != want {
				t.Errorf("customer %d: %s, want %s", base+id, got, want)
			}
		}
		for id, want := range map[int]string{
			1: "PG-13|Trailers,Deleted Scenes|16777215",
			2: "NC-17||0",
			3: "NULL|NULL|NULL",
		} {
			got := pgText(t, dst, `SELECT concat_ws('|', coalesce(rating, 'NULL'), coalesce(special_features, 'NULL'), coalesce(views::text, 'NULL')) FROM film_text WHERE film_id = $1`, base+id)
			if got != want {
				t.Errorf("film_text %d: %s, want %s", base+id, got, want)
			}
		}
		// WKB as MariaDB itself writes it, SRID 0 ...
		for _, id := range []int{1, 3} {
			var want string
			if err := src.QueryRowContext(context.Background(), `SELECT LOWER(HEX(ST_AsWKB(location))) FROM address WHERE address_id = ?`, base+id).Scan(&want); err != nil {
				t.Fatal(err)
			}
			if got := pgText(t, dst, `SELECT encode(location, 'hex') FROM address WHERE address_id = $1`, base+id); got != want {
				t.Errorf("address %d: location %s, want %s", base+id, got, want)
			}
		}
		// ... and EWKB with SRID 4326 (0x10e6) for POINT(1 2).
		const ewkb = "0101000020e6100000000000000000f03f0000000000000040"
		if got := pgText(t, dst, `SELECT encode(location, 'hex') FROM address WHERE address_id = $1`, base+2); got != ewkb {
			t.Errorf("address %d: location %s, want %s", base+2, got, ewkb)
		}
	}

	// ADD COLUMN ... NOT NULL DEFAULT during CDC: the rows already on the
	// target get the default, as the source's did.
	sourcetest.Exec(t, src, `ALTER TABLE customer ADD COLUMN note VARCHAR(30) NOT NULL DEFAULT 'n/a'`)
	sourcetest.Exec(t, src, `INSERT INTO customer (customer_id, first_name, create_date, note) VALUES (200, 'NEW', '2020-01-01 00:00:00', 'given')`)
	waitCaughtUp(t, r, src)
	if got := pgText(t, dst, `SELECT string_agg(note, ',' ORDER BY customer_id) FROM customer`); got != "n/a,n/a,n/a,n/a,n/a,n/a,given" {
		t.Errorf("notes on the target: %s", got)
	}
	if got := pgText(t, dst, `SELECT is_nullable || ' ' || coalesce(column_default, 'no default') FROM information_schema.columns WHERE table_name = 'customer' AND column_name = 'note'`); got != "NO 'n/a'::character varying" {
		t.Errorf("customer.note on the target: %s", got)
	}
	mustValidate(t, src, dst, "customer", "address", "film_text")
}

// TestUnportableType: a column whose type has no portable counterpart
// (MariaDB's INET6) stops its table with an error naming table, column and
// type, and is never replicated as something else.
func TestUnportableType(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB")
	}
	e := newEnv(t, false)
	src := sourcetest.Open(t, e.mysqlURL(t, ""))
	dst := sourcetest.Open(t, sqliteURL(t))
	sourcetest.Exec(t, src, `CREATE TABLE hosts (id INT PRIMARY KEY, addr INET6)`)
	sourcetest.Exec(t, src, `INSERT INTO hosts VALUES (1, '::1')`)
	r := sourcetest.Start(t, replicate.Config{Name: "inet", Source: src, Target: dst, Tables: []string{"hosts"}})
	if err := r.Wait(t); !errors.Is(err, replicate.ErrPermanent) {
		t.Errorf("Run: %v, want a permanent error", err)
	}
	msg := r.Stream.Status().LastError
	for _, want := range []string{`"hosts"`, `"addr"`, "inet6"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %s", msg, want)
		}
	}
	if _, err := dst.Dialect.Describe(context.Background(), dst, "hosts"); err == nil {
		t.Errorf("the table was created on the target")
	}
}

// TestPostGIS replicates MariaDB geometries into a PostgreSQL database
// that has the PostGIS extension, through the full load and the binlog:
// the target column is a PostGIS geometry holding exactly the source's
// geometry and SRID (read back with PostGIS's own functions), and
// validate agrees. Without PostGIS (peers installs it) the test skips, or
// fails when peers are required.
func TestPostGIS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	dstURL := e.pgURL(t)
	u, err := url.Parse(dstURL)
	if err != nil {
		t.Fatal(err)
	}
	e.pg.CreatePostGIS(t, strings.TrimPrefix(u.Path, "/"))
	src, dst := sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, dstURL)
	sourcetest.Exec(t, src, addressDDL)
	fill := func(base int) {
		sourcetest.Exec(t, src, `INSERT INTO address VALUES (?, 'point', ST_GeomFromText('POINT(-112.8185647 49.6999986)')),
			(?, 'srid', ST_GeomFromText('POINT(1 2)', 4326)),
			(?, 'poly', ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(5 5,7 5,7 7,5 7,5 5))')),
			(?, 'multi', ST_GeomFromText('MULTILINESTRING((0 0,1 1),(2 2,3 3))', 3857))`, base+1, base+2, base+3, base+4)
	}
	fill(0)
	r := sourcetest.Start(t, replicate.Config{Name: "postgis", Source: src, Target: dst, Tables: []string{"address"}})
	sourcetest.WaitFor(t, "full load", 60*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	fill(100)
	sourcetest.Exec(t, src, `UPDATE address SET location = ST_GeomFromText('LINESTRING(0 0,1 2)', 4326) WHERE address_id = 1`)
	waitCaughtUp(t, r, src)
	if got := pgText(t, dst, `SELECT udt_name FROM information_schema.columns WHERE table_name = 'address' AND column_name = 'location'`); got != "geometry" {
		t.Fatalf("target column type %s, want geometry", got)
	}
	want := map[int]string{
		1: "4326 LINESTRING(0 0,1 2)", // updated during CDC
		2: "4326 POINT(1 2)", 3: "0 POLYGON((0 0,10 0,10 10,0 10,0 0),(5 5,7 5,7 7,5 7,5 5))", 4: "3857 MULTILINESTRING((0 0,1 1),(2 2,3 3))",
		101: "0 POINT(-112.8185647 49.6999986)", 102: "4326 POINT(1 2)",
	}
	for id, w := range want {
		if got := pgText(t, dst, `SELECT ST_SRID(location) || ' ' || ST_AsText(location) FROM address WHERE address_id = $1`, id); got != w {
			t.Errorf("address %d on the target: %s, want %s", id, got, w)
		}
	}
	mustValidate(t, src, dst, "address")
}
