package sqldb_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/intercloud/intercloud/sqldb"
)

// plainDialect keeps no statements prepared.
type plainDialect struct{ sqldb.Dialect }

// cachingDialect says its driver keeps statements prepared.
type cachingDialect struct{ sqldb.Dialect }

func (cachingDialect) CachesStatements() bool { return true }

// TestStatementChunks checks the sizes of consecutive multi-row
// statements: powers of two up to 256 for a driver that keeps statements
// prepared (so any n uses a few texts), the fewest statements otherwise,
// and always every row once.
func TestStatementChunks(t *testing.T) {
	for _, tc := range []struct {
		d       sqldb.Dialect
		n, most int
		want    []int
	}{
		{cachingDialect{}, 1000, 300, []int{256, 256, 256, 128, 64, 32, 8}},
		{cachingDialect{}, 1000, 100, []int{64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 32, 8}},
		{cachingDialect{}, 7, 300, []int{4, 2, 1}},
		{cachingDialect{}, 1, 300, []int{1}},
		{plainDialect{}, 1000, 300, []int{300, 300, 300, 100}},
		{plainDialect{}, 5, 300, []int{5}},
		{plainDialect{}, 0, 300, nil},
	} {
		t.Run(fmt.Sprintf("%T/%d/%d", tc.d, tc.n, tc.most), func(t *testing.T) {
			rows := make([]int, tc.n)
			for i := range rows {
				rows[i] = i
			}
			var sizes []int
			next := 0
			for chunk := range sqldb.StatementChunks(tc.d, rows, tc.most) {
				if len(chunk) == 0 || chunk[0] != next {
					t.Fatalf("chunk %v does not start at row %d", chunk, next)
				}
				next += len(chunk)
				sizes = append(sizes, len(chunk))
			}
			if next != tc.n || !slices.Equal(sizes, tc.want) {
				t.Fatalf("sizes %v (%d rows), want %v", sizes, next, tc.want)
			}
		})
	}
}
