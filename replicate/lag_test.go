package replicate

import (
	"testing"
	"time"
)

func TestHonestLag(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	since := now.Add(-70 * time.Second)
	for _, tc := range []struct {
		name           string
		in             Status
		source, target time.Duration
		state          string
	}{
		{"streaming keeps the last lags",
			Status{Phase: PhaseCDC, SourceLag: time.Second, TargetLag: 2 * time.Second, PendingChanges: -1},
			time.Second, 2 * time.Second, "streaming"},
		{"source down: both grow",
			Status{Phase: PhaseCDC, SourceLag: time.Second, TargetLag: 2 * time.Second, PendingChanges: -1,
				ReconnectingSince: since, Unreachable: "source"},
			71 * time.Second, 72 * time.Second, "reconnecting since 2026-11-24T09:58:50Z (source unreachable)"},
		{"target down: target lag grows, changes counted",
			Status{Phase: PhaseCDC, SourceLag: time.Second, TargetLag: 2 * time.Second, PendingChanges: 6400,
				ReconnectingSince: since, Unreachable: "target"},
			time.Second, 72 * time.Second, "reconnecting since 2026-11-24T09:58:50Z, 6400 changes pending (target unreachable)"},
		{"target down, nothing pending: no lag",
			Status{Phase: PhaseCDC, PendingChanges: 0, ReconnectingSince: since, Unreachable: "target"},
			0, 0, "reconnecting since 2026-11-24T09:58:50Z, 0 changes pending (target unreachable)"},
		{"bytes when changes are unknown",
			Status{Phase: PhaseCDC, PendingChanges: -1, SourceBacklogBytes: 3_100_000, ReconnectingSince: since, Unreachable: "target"},
			0, 70 * time.Second, "reconnecting since 2026-11-24T09:58:50Z, 3.1 MB of change log pending (target unreachable)"},
		{"stopped", Status{Phase: "stopped", LastError: "boom", PendingChanges: -1}, 0, 0, "stopped: boom"},
		{"full load", Status{Phase: PhaseSnapshot, Table: "records", PendingChanges: -1}, 0, 0, "full load of records"},
	} {
		st := tc.in
		honestLag(&st, now)
		if st.SourceLag != tc.source || st.TargetLag != tc.target || st.State != tc.state {
			t.Errorf("%s: source %v target %v state %q; want %v %v %q", tc.name, st.SourceLag, st.TargetLag, st.State, tc.source, tc.target, tc.state)
		}
	}
}
