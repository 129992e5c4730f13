package replicate_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercloud/intercloud/replicate"
)

// The stream options every source fills the same way: defaults, and the
// tables read (named ones must be captured; none means all).
func TestStreamOptions(t *testing.T) {
	o := replicate.StreamOptions{}.WithDefaults()
	if o.MaxBatch != replicate.DefaultBatchSize || o.Poll != replicate.DefaultPoll {
		t.Fatalf("defaults %+v", o)
	}
	if o := (replicate.StreamOptions{MaxBatch: 7, Poll: time.Second}).WithDefaults(); o.MaxBatch != 7 || o.Poll != time.Second {
		t.Fatalf("set values changed: %+v", o)
	}
	captured := map[string]int{"a": 1, "b": 2}
	tests := []struct {
		tables []string
		want   []string
		err    string
	}{
		{nil, []string{"a", "b"}, ""},
		{[]string{"b"}, []string{"b"}, ""},
		{[]string{"a", "c"}, nil, `table "c" is not captured`},
	}
	for _, tt := range tests {
		got, err := replicate.StreamTables(replicate.StreamOptions{Tables: tt.tables}, captured)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: error %v, want %q", tt.tables, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(slices.Sorted(maps.Keys(got)), tt.want) {
			t.Errorf("%v: %v, %v; want %v", tt.tables, got, err, tt.want)
		}
	}
}
