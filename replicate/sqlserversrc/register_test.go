package sqlserversrc

import (
	"slices"
	"testing"

	"github.com/intercloud/intercloud/replicate"
)

// The source is registered for sqlserver as an opt-in log source: the
// log mode finds it, but the default mode of SQL Server databases stays
// poll; its marker is the poll source's SQL Server marker.
func TestRegisteredOptIn(t *testing.T) {
	if !slices.Contains(replicate.SourceDialects(), "sqlserver") {
		t.Errorf("sqlserver not among the log source dialects %v", replicate.SourceDialects())
	}
	if replicate.HasLogSource("sqlserver") {
		t.Error("HasLogSource(sqlserver) is true: the default mode of SQL Server would become log")
	}
	m := replicate.MarkerFor("sqlserver")
	if m == nil {
		t.Fatal("no origin marker for sqlserver")
	}
	if _, ok := m.(replicate.OriginSetup); !ok {
		t.Errorf("the marker %T has no Setup (the mark table)", m)
	}
}
