package retry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intercloud/intercloud/internal/deadend"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/retry"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
)

func TestCap(t *testing.T) {
	p := retry.Policy{Base: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := p.Cap(i + 1); got != w*time.Millisecond {
			t.Errorf("Cap(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	// No overflow however many retries.
	if got := p.Cap(1 << 20); got != time.Second {
		t.Errorf("Cap(1<<20) = %v", got)
	}
	var zero retry.Policy
	if zero.Cap(1) != retry.DefaultBase || zero.Cap(100) != retry.DefaultMax {
		t.Errorf("zero policy: Cap(1) %v, Cap(100) %v", zero.Cap(1), zero.Cap(100))
	}
}

func TestDelayJitter(t *testing.T) {
	p := retry.Policy{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for n := 1; n <= 6; n++ {
		c := p.Cap(n)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(n)
			if d < c/2 || d > c {
				t.Fatalf("Delay(%d) = %v, outside [%v, %v]", n, d, c/2, c)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("Delay(%d): only %d distinct values in 200: no jitter", n, len(seen))
		}
	}
}

func TestSleepStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := (retry.Policy{Base: time.Hour, Max: time.Hour}).Sleep(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep did not return at once")
	}
}

func TestTransient(t *testing.T) {
	// A real refused connection.
	refused := deadend.Refused(t)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", fmt.Errorf("load: %w", refused), true},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), false},
		{"store unavailable", fmt.Errorf("get: %w", errors.Join(objects.ErrUnavailable, errors.New("503"))), true},
		{"mysql deadlock", &gomysql.MySQLError{Number: 1213}, true},
		{"mysql shutting down", &gomysql.MySQLError{Number: 1053}, true},
		{"mysql too many connections", &gomysql.MySQLError{Number: 1040}, true},
		{"mysql connection lost", fmt.Errorf("q: %w", gomysql.ErrInvalidConn), true},
		{"mysql data too long", &gomysql.MySQLError{Number: 1406}, false},
		{"postgres admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"postgres too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"postgres serialization", &pgconn.PgError{Code: "40001"}, true},
		{"postgres string too long", &pgconn.PgError{Code: "22001"}, false},
		{"plain error", errors.New("bad object"), false},
	} {
		if got := retry.Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
