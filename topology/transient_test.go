package topology

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/intercloud/intercloud/internal/permanent"
)

// TestStartTransient: what Start waits for (a store that does not answer,
// a connection cut) and what fails it at once (a store that is wrong).
func TestStartTransient(t *testing.T) {
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	denied := &mysql.MySQLError{Number: 1045, Message: "Access denied"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"mysql invalid connection", fmt.Errorf("mysqlsrc: describe records: %w", mysql.ErrInvalidConn), true},
		{"store does not answer", &StartError{Key: "clouds.aws.sql", Err: refused}, true},
		{"credentials refused", &StartError{Key: "clouds.aws.sql", Err: denied}, false},
		{"binlog format", &StartError{Key: "clouds.aws.sql", Err: permanent.Mark(errors.New("binlog_format is STATEMENT"))}, false},
		{"two stores down", errors.Join(&StartError{Err: refused}, &StartError{Err: refused}), true},
		{"one down, one wrong", errors.Join(&StartError{Err: refused}, &StartError{Err: denied}), false},
		{"start error without cause", &StartError{Key: "k"}, false},
		{"plain error", errors.New("no such table"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := startTransient(tc.err); got != tc.want {
				t.Fatalf("startTransient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
