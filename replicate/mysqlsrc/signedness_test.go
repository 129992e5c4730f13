package mysqlsrc_test

import (
	"context"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/sourcetest"
)

// filmDDL is shaped like the film table of a well-known MySQL sample
// database: a YEAR column before unsigned integers of every width.
const filmDDL = `CREATE TABLE film (
	film_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
	title VARCHAR(128) NOT NULL,
	release_year YEAR DEFAULT NULL,
	language_id TINYINT UNSIGNED NOT NULL,
	rental_duration TINYINT UNSIGNED NOT NULL DEFAULT 3,
	length SMALLINT UNSIGNED DEFAULT NULL,
	views MEDIUMINT UNSIGNED DEFAULT NULL,
	rentals INT UNSIGNED DEFAULT NULL,
	bytes BIGINT UNSIGNED DEFAULT NULL,
	delta SMALLINT DEFAULT NULL,
	PRIMARY KEY (film_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`

// TestYearBeforeUnsigned replicates, through the full load and the
// binlog, unsigned integers at their maxima and at 2^(bits-1) that follow
// a YEAR column: MariaDB gives YEAR a bit of the binlog's signedness
// metadata, which must not shift the sign of the columns after it. The
// target is read with PostgreSQL's own text output.
func TestYearBeforeUnsigned(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and PostgreSQL")
	}
	e := newEnv(t, true)
	src, dst := sourcetest.Open(t, e.mysqlURL(t, "")), sourcetest.Open(t, e.pgURL(t))
	sourcetest.Exec(t, src, filmDDL)
	const insert = `INSERT INTO film (film_id, title, release_year, language_id, rental_duration, length, views, rentals, bytes, delta) VALUES `
	rows := []string{
		"(%d, 'ACADEMY DINOSAUR', 2006, 255, 255, 65535, 16777215, 4294967295, 18446744073709551615, -32768)",
		"(%d, 'ACE GOLDFINGER', 1901, 128, 128, 40000, 8388608, 2147483648, 9223372036854775808, 32767)",
		"(%d, 'ADAPTATION HOLES', 2155, 0, 0, 0, 0, 0, 0, 0)",
		"(%d, 'AFFAIR PREJUDICE', NULL, 1, 3, NULL, NULL, NULL, NULL, NULL)",
	}
	want := []string{
		"2006|255|255|65535|16777215|4294967295|18446744073709551615|-32768",
		"1901|128|128|40000|8388608|2147483648|9223372036854775808|32767",
		"2155|0|0|0|0|0|0|0",
		"NULL|1|3|NULL|NULL|NULL|NULL|NULL",
	}
	for i, r := range rows {
		sourcetest.Exec(t, src, insert+sprintf(r, i+1))
	}
	r := sourcetest.Start(t, replicate.Config{Name: "film", Source: src, Target: dst, Tables: []string{"film"}})
	sourcetest.WaitFor(t, "full load", 60*time.Second, func() bool { return r.Stream.Status().Phase == replicate.PhaseCDC })
	for i, row := range rows {
		sourcetest.Exec(t, src, insert+sprintf(row, 65535-i)) // through the binlog
	}
	sourcetest.Exec(t, src, `UPDATE film SET length = 65534, rentals = 4294967294 WHERE film_id = 65532`)
	waitCaughtUp(t, r, src)
	check := func(id int, want string) {
		t.Helper()
		var got string
		q := `SELECT concat_ws('|', coalesce(release_year::text, 'NULL'), language_id::text, rental_duration::text,
			coalesce(length::text, 'NULL'), coalesce(views::text, 'NULL'), coalesce(rentals::text, 'NULL'),
			coalesce(bytes::text, 'NULL'), coalesce(delta::text, 'NULL')) FROM film WHERE film_id = $1`
		if err := dst.QueryRowContext(context.Background(), q, id).Scan(&got); err != nil {
			t.Fatalf("film %d on the target: %v", id, err)
		}
		if got != want {
			t.Errorf("film %d on the target: got %s, want %s", id, got, want)
		}
	}
	for i, w := range want {
		check(i+1, w) // full load
		if 65535-i != 65532 {
			check(65535-i, w) // binlog
		}
	}
	check(65532, "NULL|1|3|65534|NULL|4294967294|NULL|NULL")
	if n := sourcetest.Count(t, dst, `SELECT count(*) FROM film`); n != 8 {
		t.Errorf("target has %d films, want 8", n)
	}
}
